"""What a hardening round is judged on, and the false-positive budget gate.

- **Held-out families** (`heldout_attacks`): attacks of the families `Holdout` keeps
  out of the generator's action space and out of every training row, rendered with
  carrier material (`test` split of the found text) the loop never trains on. Recall
  on them — at the policy's own operating point, and at a fixed false-positive rate
  of the clean test split — is the score of a round: it says whether hardening on
  what the generator found helps on attacks nobody generated.
- **In-space validation** (`inspace_attacks`): fresh random attacks of the action
  space (never trained on), the recall the old loop reported; a guard against a
  round that buys its false positives back by missing attacks.
- **Clean corpus** (`cleanset`): false-positive rate per category on the `gate`
  split (the budget: a round over it is rejected) and on the `test` split (reported).

`gate` is the rule: per category, the round's false positives on the gate split may
not exceed round 0's (plus a per-category tolerance; none for few-shot files and the
user's library), few-shot files also not above the target rate unless round 0
already was; and in-space recall may not fall more than `recall_drop` below round 0.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .attack_space import Attack, AttackSpace, ConstructionError, Holdout, UserPrompt
from .cleanset import CleanPrompt
from .detector_set import Verdict
from .validator import validate

__all__ = ["Budget", "heldout_attacks", "inspace_attacks", "clean_metrics", "recall_metrics", "recall_at_fpr", "gate",
           "wilson"]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(max(0.0, c - h), 4), round(min(1.0, c + h), 4))


def _valid(space: AttackSpace, c) -> Attack | None:
    try:
        a = space.build(c)
    except ConstructionError:
        return None
    except Exception:  # noqa: BLE001 - a rendering the parser rejects is no attack
        return None
    return a if validate(a).ok else None


def heldout_attacks(holdout: Holdout, per_family: int, seed: int, library: Sequence[UserPrompt] = ()
                    ) -> list[tuple[str, Attack]]:
    """`per_family` valid attacks per held-out family (that value forced, the other
    factors drawn from the action space), carriers from the found text's `test` split."""
    space = AttackSpace(library, material="test", holdout=holdout)
    out: list[tuple[str, Attack]] = []
    for name in holdout.names():
        rng = random.Random(f"{seed}:{name}")
        got = tries = 0
        while got < per_family and tries < per_family * 40:
            tries += 1
            a = _valid(space, space.held_out_construction(rng, name))
            if a is not None:
                out.append((name, a))
                got += 1
    return out


def inspace_attacks(holdout: Holdout, n: int, seed: int, library: Sequence[UserPrompt] = ()) -> list[Attack]:
    """`n` valid attacks drawn uniformly from the action space (half of each family)."""
    space = AttackSpace(library, material="test", holdout=holdout)
    rng = random.Random(f"{seed}:inspace")
    out: list[Attack] = []
    tries = 0
    while len(out) < n and tries < n * 40:
        tries += 1
        fam = ("demo", "inject")[len(out) % 2]
        a = _valid(space, space.random_construction(rng, fam))
        if a is not None:
            out.append(a)
    return out


def clean_metrics(prompts: Sequence[CleanPrompt], verdicts: Sequence[Verdict]) -> dict[str, dict[str, Any]]:
    """False positives per category (and `all`, library files not included)."""
    by: dict[str, list[bool]] = {}
    for p, v in zip(prompts, verdicts):
        by.setdefault(p.category, []).append(v.flagged)
        if p.category != "library":
            by.setdefault("all", []).append(v.flagged)
    out = {}
    for c, xs in by.items():
        k, n = int(sum(xs)), len(xs)
        out[c] = {"n": n, "flagged": k, "rate": round(k / n, 4) if n else None, "ci95": wilson(k, n)}
    return out


def recall_metrics(names: Sequence[str], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Recall per held-out family and their mean (each family weighs the same)."""
    by: dict[str, list[bool]] = {}
    for n, v in zip(names, verdicts):
        by.setdefault(n, []).append(v.flagged)
    fams = {n: {"n": len(xs), "recall": round(sum(xs) / len(xs), 4)} for n, xs in sorted(by.items())}
    mean = round(float(np.mean([f["recall"] for f in fams.values()])), 4) if fams else None
    return {"mean": mean, "families": fams}


def recall_at_fpr(attack: Sequence[Verdict], clean: Sequence[Verdict], fprs: Sequence[float] = (0.01, 0.05),
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """Recall when every threshold is shifted by the same amount so that a fraction
    `fpr` of the clean prompts is flagged: detector sets compared at the same
    false-positive rate. With `names`, the mean over families (each weighs the same)."""
    cm = np.sort(np.array([v.margin for v in clean], dtype=float))[::-1]
    am = np.array([v.margin for v in attack], dtype=float)
    out: dict[str, Any] = {}
    for x in fprs:
        k = int(math.floor(x * len(cm) + 1e-9))
        t = float(np.nextafter(cm[k], np.inf)) if k < len(cm) else -np.inf
        t = max(t, -0.999)  # a prompt without findings is never counted as caught
        hit = am >= t
        if names is not None:
            fams: dict[str, list[bool]] = {}
            for n, h in zip(names, hit):
                fams.setdefault(n, []).append(bool(h))
            r = float(np.mean([np.mean(v) for v in fams.values()])) if fams else 0.0
        else:
            r = float(hit.mean()) if len(hit) else 0.0
        out[str(x)] = {"recall": round(r, 4), "threshold_shift": round(t, 4),
                       "clean_fpr": round(float((cm >= t).mean()), 4) if len(cm) else None}
    return out


@dataclass
class Budget:
    """The false-positive budget a round must keep on the gate split."""

    fewshot_target: float = 0.01  # few-shot/CoT files: at most this rate (unless round 0 already flagged more)
    # how much more than round 0 a round may flag, as a rate of the category's gate files
    tolerance: dict[str, float] = field(default_factory=lambda: {"fewshot": 0.0, "library": 0.0})
    default_tolerance: float = 0.01
    recall_drop: float = 0.05  # in-space validation recall may not fall more than this below round 0

    def limit(self, category: str, n: int, k0: int) -> int:
        """The most gate files of `category` a round may flag, given round 0 flagged `k0` of `n`."""
        tol = self.tolerance.get(category, self.default_tolerance)
        lim = k0 + int(math.floor(tol * n + 1e-9))
        if category == "fewshot":
            lim = min(lim, max(k0, int(math.floor(self.fewshot_target * n + 1e-9))))
        return lim

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def gate(metrics: dict[str, dict[str, Any]], round0: dict[str, dict[str, Any]], budget: Budget,
         inspace: float | None = None, inspace0: float | None = None) -> tuple[bool, list[str], dict[str, int]]:
    """(accepted, why not, limits per category) for a candidate's gate-split metrics."""
    reasons: list[str] = []
    limits: dict[str, int] = {}
    for cat, m in metrics.items():
        if cat == "all":
            continue
        k0 = round0.get(cat, {}).get("flagged", 0)
        lim = budget.limit(cat, m["n"], k0)
        limits[cat] = lim
        if m["flagged"] > lim:
            reasons.append(f"{cat}: {m['flagged']}/{m['n']} gate files flagged > {lim} allowed (round 0: {k0})")
    if inspace is not None and inspace0 is not None and inspace < inspace0 - budget.recall_drop:
        reasons.append(f"in-space recall {inspace:.3f} < round 0's {inspace0:.3f} - {budget.recall_drop}")
    return not reasons, reasons, limits
