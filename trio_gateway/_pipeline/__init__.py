"""The hook pipeline: an API's chain built once, walked per request (see DESIGN.md §2, §6)."""

from __future__ import annotations

from .build import build_pipeline
from .chain import Chain, HookDefaults, build_chain
from .exchange import Exchange
from .policy import FailureKind
from .runner import (
    ApiPipeline,
    Builtin,
    Finisher,
    PipelineStatistics,
)

__all__ = [
    "ApiPipeline",
    "Builtin",
    "Chain",
    "Exchange",
    "FailureKind",
    "Finisher",
    "HookDefaults",
    "PipelineStatistics",
    "build_chain",
    "build_pipeline",
]
