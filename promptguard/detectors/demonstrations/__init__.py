"""Demonstration integrity: BadChain-style backdoored few-shot / CoT demonstrations.

Public surface (documented in docs/demonstrations.md):
`find_trigger_candidates`, `query_carries_trigger`, `analyze_demonstrations`, the
result types, and `DemonstrationsDetector` (registered as ``demonstrations``).
"""

from __future__ import annotations

from .analysis import (
    CACHE,
    DemonstrationReport,
    DemoVerdict,
    TemplateCache,
    TriggerCandidate,
    TriggerSpan,
    analyze_demonstrations,
    find_trigger_candidates,
    query_carries_trigger,
)

__all__ = [
    "CACHE",
    "DemoVerdict",
    "DemonstrationReport",
    "DemonstrationsDetector",
    "TemplateCache",
    "TriggerCandidate",
    "TriggerSpan",
    "analyze_demonstrations",
    "find_trigger_candidates",
    "query_carries_trigger",
]


def __getattr__(name: str):
    if name == "DemonstrationsDetector":
        from .detector import DemonstrationsDetector

        return DemonstrationsDetector
    raise AttributeError(name)
