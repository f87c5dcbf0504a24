"""The ``python`` driver: native async/sync Python hooks (Tyk-style ``@Hook`` functions later)."""

from __future__ import annotations

from .driver import PythonDriver, PythonDriverStatistics, create

__all__ = ["PythonDriver", "PythonDriverStatistics", "create"]
