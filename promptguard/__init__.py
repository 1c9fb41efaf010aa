"""promptguard: a firewall for LLM prompts and pipelines.

Nothing heavy is imported here: models load when a policy enables the detector
that needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .findings import Finding, Severity
from .guard import Guard, GuardResult
from .parsing import ParseError, segments_from_messages, segments_from_prompt, segments_from_request
from .policy import Action, Decision, Policy, load_policy
from .sanitize import Edit
from .segments import Segment, SegmentKind

__all__ = [
    "__version__",
    "Action",
    "Decision",
    "Edit",
    "Finding",
    "Guard",
    "GuardResult",
    "ParseError",
    "Policy",
    "Segment",
    "SegmentKind",
    "Severity",
    "load_policy",
    "segments_from_messages",
    "segments_from_prompt",
    "segments_from_request",
]
