"""Hypothesis profiles for the property suites.

``dev`` (the default) keeps a local run quick; CI sets ``ci`` through ``HYPOTHESIS_PROFILE``
(``scripts/test`` does when ``CI`` is set); ``nightly`` digs deeper:
``HYPOTHESIS_PROFILE=nightly bash scripts/test property_tests``. Tests that pin their own
``max_examples`` keep it. Trio tests run without Hypothesis' per-example deadline: timing on a
loaded 2-core machine is not what these properties are about.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=150, deadline=None, print_blob=True)
settings.register_profile("nightly", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
