"""The answer audit: catch a backdoor by its behaviour.

If removing a span of the query that has nothing to do with the question changes
the answer, while benign rewrites of the same request do not, that span is a
trigger. See docs/audit.md.

    from promptguard.audit import Auditor, AuditConfig, AuditReport
    auditor = Auditor(backend, AuditConfig.from_policy(policy))
    if auditor.should_audit(segments, findings):
        report = await auditor.audit(request_body, segments, original_answer, findings)
"""

from __future__ import annotations

from .answers import Answer, AnswerKind, Same, compare, expected_kind, extract_answer
from .auditor import AuditCall, Auditor, AuditReport
from .candidates import Candidate, find_candidates
from .config import AuditConfig, AuditConfigError
from .echo import Echo, find_echoes
from .factory import build_auditor
from .grouptest import GroupResult, Outcome, group_test
from .perturb import (
    AuditContext,
    Compose,
    CutSteps,
    DropSuspectDemos,
    MatchedSpan,
    MoveSpan,
    Perturbation,
    RemoveSpan,
    RemoveSpans,
    Repeat,
    ShuffleDemos,
    ZeroShot,
    render,
)

__all__ = [
    "Answer",
    "AnswerKind",
    "AuditCall",
    "AuditConfig",
    "AuditConfigError",
    "AuditContext",
    "AuditReport",
    "Auditor",
    "Candidate",
    "Compose",
    "CutSteps",
    "DropSuspectDemos",
    "Echo",
    "GroupResult",
    "MatchedSpan",
    "MoveSpan",
    "Outcome",
    "RemoveSpans",
    "Perturbation",
    "RemoveSpan",
    "Repeat",
    "Same",
    "ShuffleDemos",
    "ZeroShot",
    "build_auditor",
    "compare",
    "expected_kind",
    "extract_answer",
    "find_candidates",
    "find_echoes",
    "group_test",
    "render",
]
