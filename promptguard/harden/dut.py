"""`DetectorUnderTest`: whatever the generator attacks, as one small interface.

The generator only needs "is this prompt flagged?". A `DetectorUnderTest` wraps
a real `Guard` (the policy's detectors and thresholds decide: anything but
`allow` is flagged; a detector error is decided by the policy's `on_error`), a
list of detectors under a policy, or any callable `segments -> score` with a
threshold. Results are cached per rendered prompt, because the loop asks about
the same prompt more than once (reward, then retraining, then reports).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..segments import Segment

__all__ = ["Verdict", "DetectorUnderTest", "prompt_key"]


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    score: float
    # which detectors (or rules) fired, for reports
    fired: tuple[str, ...] = field(default_factory=tuple)


def prompt_key(segments: Sequence[Segment]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for s in segments:
        h.update(f"{s.kind.value}|{s.index}|{s.prompt}|".encode())
        h.update(s.text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


class DetectorUnderTest:
    """`flagged(segments)` / `verdict(segments)` for a guard or any scorer."""

    def __init__(
        self,
        fn: Callable[[Sequence[Segment]], Verdict | float],
        threshold: float = 0.5,
        name: str = "custom",
        cache_size: int = 50_000,
    ) -> None:
        self._fn = fn
        self.threshold = float(threshold)
        self.name = name
        self._cache: OrderedDict[str, Verdict] = OrderedDict()
        self._cache_size = cache_size

    # -- constructors ----------------------------------------------------------------
    @classmethod
    def from_guard(cls, guard: Any, name: str | None = None) -> "DetectorUnderTest":
        """Flagged when the guard's decision is anything but allow."""
        from ..policy import Action

        def run(segments: Sequence[Segment]) -> Verdict:
            res = guard.check(list(segments))
            fired = tuple(sorted({f"{f.detector}/{f.rule}" if f.rule else f.detector for f in res.decision.reasons}))
            if res.decision.errors:
                fired += tuple(f"error:{e[:60]}" for e in res.decision.errors)
            score = max((f.score for f in res.findings), default=0.0)
            return Verdict(res.action is not Action.ALLOW, score, fired)

        names = ",".join(getattr(d, "name", "?") for d in getattr(guard, "detectors", []))
        return cls(run, name=name or f"guard[{names}]")

    @classmethod
    def from_policy(cls, policy: Any = None, detectors: Sequence[Any] | None = None) -> "DetectorUnderTest":
        from ..guard import Guard

        return cls.from_guard(Guard(policy, detectors=detectors))

    @classmethod
    def from_callable(cls, fn: Callable[[Sequence[Segment]], float], threshold: float = 0.5,
                      name: str = "custom") -> "DetectorUnderTest":
        return cls(fn, threshold, name)

    # -- use ---------------------------------------------------------------------------
    def verdict(self, segments: Sequence[Segment]) -> Verdict:
        key = prompt_key(segments)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        out = self._fn(segments)
        if not isinstance(out, Verdict):
            sc = float(out)
            out = Verdict(sc >= self.threshold, sc)
        self._cache[key] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def flagged(self, segments: Sequence[Segment]) -> bool:
        return self.verdict(segments).flagged

    def score(self, segments: Sequence[Segment]) -> float:
        return self.verdict(segments).score

    def __repr__(self) -> str:
        return f"DetectorUnderTest({self.name})"


