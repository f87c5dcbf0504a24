"""trio-gateway: an API gateway on Trio that runs Tyk plugins under structured concurrency."""

from __future__ import annotations

__version__ = "0.1.0"
