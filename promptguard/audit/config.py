"""The audit's settings: the type of a policy's `audit:` section (validated with the
policy, so a typo fails at load time with its line).

```yaml
audit:
  mode: suspicion          # off | sampled | suspicion | always
  sample_rate: 0.0
  max_extra_calls: 3
  max_candidates: 6        # covered by one group probe, bisected on a change
  controls: [matched_span, shuffle_demos, repeat]
  max_concurrency: 4
  inline: true
  return_trusted_answer: false
```

Unknown keys are an error (a typo must not silently switch the audit off).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["AuditConfig", "AuditConfigError"]


class AuditConfigError(ValueError):
    pass


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "sampled", "suspicion", "always"] = "suspicion"
    # sampled: share of requests audited; suspicion: an extra random share of clean traffic
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    max_extra_calls: int = Field(default=3, ge=0, le=20)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    inline: bool = True
    return_trusted_answer: bool = False
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=256, ge=1)
    seed: int = 0
    # static findings at or above this score (from these detectors; empty = any) make a
    # request suspicious
    suspicion_min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    suspicion_detectors: list[str] = Field(default_factory=lambda: ["demonstrations"])
    # also suspect queries that share a rare n-gram with their demonstrations (no detector needed)
    suspect_shared_ngrams: bool = True
    # also suspect queries holding a rare token even without demonstrations (weight backdoors);
    # off by default: names and jargon make it fire on ordinary traffic
    suspect_rare_tokens: bool = False
    # weight backdoors: the answer echoes an odd query span in a step that does not follow from
    # the problem (needs the answer: `should_audit(..., answer=...)`); echo strength needed
    suspect_echo: bool = True
    echo_min: float = Field(default=0.75, ge=0.0, le=1.0)
    # ... or the query holds a code-like rare phrase ("per memo KX-7") of at least this oddness
    suspect_odd_phrases: bool = True
    odd_phrase_min: float = Field(default=0.75, ge=0.0, le=1.0)
    # an answer that shows its reasoning and does not echo the odd phrase clears it (a
    # backdoor that fires in reasoning cites its trigger); labels and short answers cannot
    echo_clears_reasoned: bool = True
    # trigger candidates per request; all are covered by one group probe (bisected on a change)
    max_candidates: int = Field(default=6, ge=1, le=16)
    # benign controls, tried in order, for a candidate whose removal changed the answer;
    # each keeps the candidate exactly in place (move_span does not: see docs/audit.md)
    controls: list[Literal["matched_span", "move_span", "shuffle_demos", "repeat"]] = Field(
        default_factory=lambda: ["matched_span", "shuffle_demos", "repeat"])
    # probe demonstrations too: drop the suspect ones (or all, "zero_shot") when no query span bites
    probe_demos: bool = True
    # the original answer was sampled (temperature > 0): ask again at temperature 0 for the baseline
    requery_sampled: bool = True
    # numeric tolerance and free-text similarity threshold for "same answer"
    rel_tol: float = Field(default=1e-4, ge=0.0)
    text_threshold: float = Field(default=0.9, ge=0.0, le=1.0)

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false
        return "off" if v is False else v

    @classmethod
    def from_policy(cls, policy: Any) -> "AuditConfig":
        """From a `Policy` (its typed `audit` section), a plain dict, or None (the defaults)."""
        section = getattr(policy, "audit", policy)
        if isinstance(section, AuditConfig):
            return section
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise AuditConfigError(f"policy 'audit' section must be a mapping, got {type(section).__name__}")
        try:
            return cls.model_validate(section)
        except ValidationError as e:
            problems = "; ".join(
                f"audit.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise AuditConfigError(f"invalid audit settings: {problems}") from None
