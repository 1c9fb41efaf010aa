"""Policy: which detectors run, and how their findings become one decision.

A policy file (YAML) is validated at load time; a bad file fails loudly with its
line. Deciding is pure: findings in, `Decision` out. The most severe action over
all findings wins (block > sanitize > flag > allow).
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .audit.config import AuditConfig
from .findings import Finding
from .limits import Limits
from .segments import SegmentKind
from .yamlutil import load_yaml_file, load_yaml_text

__all__ = [
    "Action",
    "Threshold",
    "Policy",
    "Decision",
    "load_policy",
    "default_policy_path",
]


class Action(str, enum.Enum):
    ALLOW = "allow"
    FLAG = "flag"
    SANITIZE = "sanitize"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.value


_ACTION_RANK = {Action.ALLOW: 0, Action.FLAG: 1, Action.SANITIZE: 2, Action.BLOCK: 3}


# Findings that come from the faces, not from an input detector: thresholds may name them,
# `detectors:` may not (the answer audit is configured in the policy's `audit:` section).
FACE_FINDINGS = ("audit",)


# Detectors that existed once; a policy naming one gets told what replaced it.
RETIRED = {
    "hardened": "the stacked `hardened` head was removed: `promptguard harden` now retrains the policy's own "
                "classifier and demonstrations detector and writes a policy.yaml that loads them; re-run it "
                "(docs/hardening.md)",
}


def _known_detector(name: str) -> str:
    from .detectors.base import available

    if name in RETIRED and name not in available():
        raise ValueError(f"detector {name!r}: {RETIRED[name]}")
    if name in FACE_FINDINGS:
        raise ValueError(f"{name!r} is not an input detector: configure it in the policy's '{name}:' section "
                         f"and remove it from 'detectors:'")
    if name not in available():
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(available())}")
    return name


def _finding_source(name: str) -> str:
    return name if name in FACE_FINDINGS else _known_detector(name)


DetectorName = Annotated[str, AfterValidator(_known_detector)]
# what a threshold may name: a detector, or a face's own findings ("audit")
FindingSource = Annotated[str, AfterValidator(_finding_source)]


class Threshold(BaseModel):
    """When a finding is flagged and when it is acted on.

    The most specific matching entry applies: one naming detector, rule, sources and
    kinds beats one naming fewer of them (detector, then rule, then sources, then kinds
    weigh most).
    """

    model_config = ConfigDict(extra="forbid")

    detector: FindingSource | None = None
    rule: str | None = None  # glob: "PG-EXF-*"
    kinds: list[SegmentKind] | None = None
    # globs on the segment's source (`tools:*`, `response_format`, `name`, `tool:search`, ...)
    sources: list[str] | None = None
    flag_at: float = Field(default=0.5, ge=0.0, le=1.0)
    act_at: float = Field(default=0.85, ge=0.0, le=1.0)
    action: Literal["block", "sanitize", "flag"] = "block"

    @field_validator("act_at")
    @classmethod
    def _ordered(cls, v: float, info: ValidationInfo) -> float:
        flag_at = info.data.get("flag_at")
        if flag_at is not None and v < flag_at:
            raise ValueError(f"act_at ({v}) is below flag_at ({flag_at})")
        return v

    def matches(self, f: Finding) -> bool:
        if self.detector is not None and self.detector != f.detector:
            return False
        if self.rule is not None and not fnmatch.fnmatchcase(f.rule or "", self.rule):
            return False
        if self.kinds is not None and f.segment_kind not in self.kinds:
            return False
        if self.sources is not None and not any(fnmatch.fnmatchcase(f.source or "", p) for p in self.sources):
            return False
        return True

    @property
    def specificity(self) -> int:
        return ((self.detector is not None) * 8 + (self.rule is not None) * 4 + (self.sources is not None) * 2
                + (self.kinds is not None))

    def action_for(self, score: float) -> Action:
        if score >= self.act_at:
            return Action(self.action)
        if score >= self.flag_at:
            return Action.FLAG
        return Action.ALLOW


class DetectorConfig(BaseModel):
    """Options for one detector; everything but `enabled` and `skip_trusted` goes to its
    factory."""

    model_config = ConfigDict(extra="allow")
    enabled: bool = True
    # The guard hands this detector only the segments that are not trusted (see
    # `TrustSection`): for detectors that look for injected instructions and have nothing
    # to say about the application's own text.
    skip_trusted: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class ProxySection(BaseModel):
    """The policy's `proxy:` section."""

    model_config = ConfigDict(extra="forbid")

    # Which detectors check the model's answers, in every face that checks answers (the
    # proxy and the LangChain handler): `["*"]` for all of the policy's; unset, the
    # face's setting (default: `DEFAULT_ANSWER_DETECTORS`).
    answer_detectors: list[str] | None = None
    # What a request whose model will read text the face cannot see gets (the Responses
    # API's `previous_response_id`, `conversation`, stored prompt templates, item
    # references): `flag` (default; the record says what was not checked), `block`, or
    # `allow` (the record still says it).
    unseen_context: Literal["allow", "flag", "block"] = "flag"
    # The longest the proxy waits for the upstream's whole answer (headers, body, every
    # event of a stream), whatever the per-read timeout: a trickling upstream cannot hold
    # a request longer than this. Past it: 504, or a stream ends with an error event.
    upstream_deadline_s: float = Field(default=600.0, gt=0)


# What checks answers when neither the policy nor the face says: the detectors written for
# answers (rules with `kinds: [answer]`, and the exfiltration check).
DEFAULT_ANSWER_DETECTORS = ("rules", "exfiltration")


def answer_detector_names(policy: "Policy", default: Sequence[str] = DEFAULT_ANSWER_DETECTORS) -> list[str]:
    """The detectors that check answers under `policy` (see `ProxySection`)."""
    names = policy.proxy.answer_detectors
    return list(default if names is None else names)


# The faces a guard can serve, and which segment kinds each trusts when the policy's
# `trust:` section does not say: the scanner vets text someone else wrote (a prompt library:
# system prompts included), the proxy, the LangChain integration and a Guard called from an
# application's own code (`api`) trust that application's system prompt.
FACE_TRUST_DEFAULTS: dict[str, tuple[SegmentKind, ...]] = {
    "scanner": (),
    "proxy": (SegmentKind.INSTRUCTION,),
    "langchain": (SegmentKind.INSTRUCTION,),
    "api": (SegmentKind.INSTRUCTION,),
}
FACES = tuple(FACE_TRUST_DEFAULTS)


class TrustSection(BaseModel):
    """The policy's `trust:` section: per face, the segment kinds whose text is the
    application's own. Trusted text is checked only for what is wrong anywhere (invisible
    Unicode, homoglyphs, encoded payloads); rules marked `untrusted_only` and detectors
    with `skip_trusted` leave it alone. Unset: the face's default (`FACE_TRUST_DEFAULTS`).
    """

    model_config = ConfigDict(extra="forbid")

    scanner: list[SegmentKind] | None = None
    proxy: list[SegmentKind] | None = None
    langchain: list[SegmentKind] | None = None
    api: list[SegmentKind] | None = None

    def kinds(self, face: str) -> frozenset[SegmentKind]:
        if face not in FACE_TRUST_DEFAULTS:
            raise ValueError(f"unknown face {face!r}; known: {', '.join(FACES)}")
        kinds = getattr(self, face)
        return frozenset(FACE_TRUST_DEFAULTS[face] if kinds is None else kinds)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    name: str = "unnamed"
    description: str = ""
    # What happens when a detector raises: "block" fails closed, "allow" fails open.
    on_error: Literal["block", "flag", "allow"] = "block"
    detectors: dict[DetectorName, DetectorConfig] = Field(
        default_factory=lambda: {"rules": DetectorConfig()}
    )
    default: Threshold = Field(default_factory=Threshold)
    thresholds: list[Threshold] = Field(default_factory=list)
    # The answer audit (promptguard.audit; off unless the section says otherwise).
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig(mode="off"))
    proxy: ProxySection = Field(default_factory=lambda: ProxySection())
    trust: TrustSection = Field(default_factory=lambda: TrustSection())
    # bounds on the work of one check, in every face (promptguard.limits)
    limits: Limits = Field(default_factory=lambda: Limits())

    @field_validator("audit", mode="before")
    @classmethod
    def _audit_off_by_default(cls, v: Any) -> Any:
        # a policy's audit section without a mode is off: its calls cost the user money
        return {"mode": "off", **v} if isinstance(v, dict) and "mode" not in v else v

    # Where relative paths in the policy (rule sets, artifacts) are resolved from.
    base_dir: Path = Field(default=Path("."), exclude=True)

    def trusted_kinds(self, face: str = "api") -> frozenset[SegmentKind]:
        """The segment kinds `face` trusts under this policy (see `TrustSection`)."""
        return self.trust.kinds(face)

    def threshold_for(self, f: Finding) -> Threshold:
        best: Threshold | None = None
        for t in self.thresholds:
            if t.matches(f) and (best is None or t.specificity > best.specificity):
                best = t
        return best or self.default

    def action_for(self, f: Finding) -> Action:
        return self.threshold_for(f).action_for(f.score)

    def decide(
        self,
        findings: Iterable[Finding],
        *,
        errors: Iterable[str] = (),
        checks: Iterable[str] = (),
    ) -> "Decision":
        findings = list(findings)
        errors = list(errors)
        actions = [(f, self.action_for(f)) for f in findings]
        action = max((a for _, a in actions), key=lambda a: a.rank, default=Action.ALLOW)
        if errors:
            fail = Action(self.on_error)
            if fail.rank > action.rank:
                action = fail
        reasons = [f for f, a in actions if a.rank >= Action.FLAG.rank]
        per = {id(f): a for f, a in actions}
        reasons.sort(key=lambda f: (-per[id(f)].rank, -f.score))
        return Decision(
            action=action,
            findings=findings,
            reasons=reasons,
            actions=[per[id(f)] for f in reasons],
            errors=errors,
            checks=list(checks),
        )

    def enabled_detectors(self) -> dict[str, dict[str, Any]]:
        return {n: c.options for n, c in self.detectors.items() if c.enabled}


@dataclass
class Decision:
    action: Action
    findings: list[Finding] = field(default_factory=list)
    # findings at or above their flag threshold, most severe first, with the action each earned
    reasons: list[Finding] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    # filled in by the guard when the action is sanitize
    changes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def escalate(self, action: Action, why: str) -> None:
        if action.rank > self.action.rank:
            self.action = action
            self.errors.append(why)

    def summary(self) -> str:
        if not self.reasons:
            return self.action.value if not self.errors else f"{self.action.value}: {self.errors[0]}"
        f = self.reasons[0]
        who = f"{f.detector}/{f.rule}" if f.rule else f.detector
        return f"{self.action.value}: {who} on {f.segment_kind.value}[{f.segment_index}]: {f.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "reasons": [
                {"detector": f.detector, "rule": f.rule, "segment_kind": f.segment_kind.value,
                 "segment_index": f.segment_index, "score": round(f.score, 4), "action": a.value}
                for f, a in zip(self.reasons, self.actions)
            ],
            "errors": self.errors,
            "checks": self.checks,
            "changes": self.changes,
        }


def default_policy_path() -> Path:
    return Path(str(resources.files("promptguard") / "policies" / "default.yaml"))


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file (the packaged default when `path` is None)."""
    p = Path(path) if path is not None else default_policy_path()
    policy = load_yaml_file(p, Policy)
    policy.base_dir = p.resolve().parent
    return policy


def policy_from_text(text: str, base_dir: Path | None = None, name: str = "<string>") -> Policy:
    policy = load_yaml_text(text, Policy, name)
    policy.base_dir = base_dir or default_policy_path().parent
    return policy


__all__ += ["policy_from_text", "DetectorConfig", "ProxySection", "answer_detector_names", "FACE_FINDINGS",
            "DEFAULT_ANSWER_DETECTORS", "TrustSection", "FACES", "FACE_TRUST_DEFAULTS"]
