"""The ``python`` driver: native async/sync Python hooks and Tyk-style ``@Hook`` functions."""

from __future__ import annotations

from .driver import PythonDriver, PythonDriverStatistics, create

__all__ = ["PythonDriver", "PythonDriverStatistics", "create"]
