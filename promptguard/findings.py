"""Findings: what a detector says about one segment."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .segments import Segment, SegmentKind

__all__ = ["Severity", "Finding"]


class Severity(str, enum.Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def default_score(self) -> float:
        """Score a finding gets when its detector has no better-calibrated one."""
        return _SCORE[self]

    @classmethod
    def from_score(cls, score: float) -> "Severity":
        for sev in (cls.CRITICAL, cls.HIGH, cls.MEDIUM, cls.LOW):
            if score >= _SCORE[sev]:
                return sev
        return cls.INFO


_RANK = {s: i for i, s in enumerate(Severity)}
_SCORE = {
    Severity.INFO: 0.1,
    Severity.LOW: 0.35,
    Severity.MEDIUM: 0.6,
    Severity.HIGH: 0.85,
    Severity.CRITICAL: 0.97,
}


@dataclass(frozen=True)
class Finding:
    """One observation about one segment.

    `span` is a half-open range into the segment's text; `Segment.locate` maps it
    to the source (file offsets, or a message's content).
    """

    detector: str
    segment_kind: SegmentKind
    segment_index: int
    score: float
    severity: Severity
    message: str
    rule: str | None = None
    evidence: str = ""
    span: tuple[int, int] | None = None
    prompt: int = 0
    # Detector-specific structured evidence (nearest attack, trigger occurrences, ...).
    details: dict[str, Any] = field(default_factory=dict)
    # The segment's provenance (`Segment.source`: "tools:search", "name", ...), which
    # policy thresholds may match (`Threshold.sources`).
    source: str | None = None

    @classmethod
    def on(
        cls,
        segment: Segment,
        *,
        detector: str,
        score: float,
        message: str,
        severity: Severity | None = None,
        rule: str | None = None,
        span: tuple[int, int] | None = None,
        evidence: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> "Finding":
        score = float(min(1.0, max(0.0, score)))
        if evidence is None:
            evidence = segment.text[span[0] : span[1]] if span else ""
        return cls(
            detector=detector,
            segment_kind=segment.kind,
            segment_index=segment.index,
            score=score,
            severity=severity or Severity.from_score(score),
            message=message,
            rule=rule,
            evidence=evidence[:500],
            span=span,
            prompt=segment.prompt,
            details=dict(details or {}),
            source=segment.source,
        )

    @property
    def key(self) -> tuple[SegmentKind, int]:
        return (self.segment_kind, self.segment_index)

    def to_dict(self, segment: Segment | None = None) -> dict[str, Any]:
        """The stable JSON shape; with the segment, `span` becomes source offsets."""
        span: list[int] | None = list(self.span) if self.span else None
        d: dict[str, Any] = {
            "detector": self.detector,
            "rule": self.rule,
            "segment_kind": self.segment_kind.value,
            "segment_index": self.segment_index,
            "score": round(self.score, 4),
            "severity": self.severity.value,
            "message": self.message,
            "evidence": self.evidence,
            "span": span,
        }
        if segment is not None:
            loc = segment.locate(*(self.span or (0, len(segment.text))))
            if loc is not None:
                d["span"] = [loc.start, loc.end]
                d["message_index"] = loc.message_index
                if loc.field:
                    d["field"] = loc.field_name
        if self.prompt:
            d["prompt"] = self.prompt
        if self.details:
            d["details"] = self.details
        return d
