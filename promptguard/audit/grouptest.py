"""Group testing of trigger candidates: remove several in one probe, bisect on a change.

One probe that removes every candidate at once clears them all when the answer stays (the
common, clean case: one call, however many candidates). When it changes and the budget allows
bisection plus one verification, the suspects are halved: the probe removes the *lower-ranked*
half and keeps the higher-ranked half exactly in place. If the answer then stays, the trigger
is in the kept half, and that probe doubles as a benign control for it (other text was
removed, the suspect kept where it was, and the answer held). If it changes, the trigger is in
the removed half. A span located this way is finally removed alone: an unstable model can
change its answer when several spans go together and for none of them alone, and that must not
read as a trigger. With less budget the suspects are tried alone in rank order instead. A lone
suspect with no control from the search gets an explicit one from the caller (`control`).

Assumes one trigger per request (several would only make more probes change the answer) and
that removing text the answer does not depend on leaves it unchanged; a model for which this
does not hold shows it in the controls, and the verdict is then `inconclusive`.

    result = await group_test(candidates, remove, control, budget=3, solo_first=1)

`remove(items) -> Outcome` re-asks without `items`; `control(item) -> Outcome | None` re-asks
with a benign change that keeps `item` in place (None: no control applies or no budget).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["GroupResult", "Outcome", "Probe", "group_test"]

T = TypeVar("T")


class Outcome(str, enum.Enum):
    SAME = "same"  # the answer stayed
    DIFFERENT = "different"  # the answer changed
    UNKNOWN = "unknown"  # no comparable answer (error, empty, truncated) or no call made


@dataclass
class Probe(Generic[T]):
    removed: tuple[T, ...]
    outcome: Outcome
    role: str  # "solo" | "group" | "bisect" | "control"
    kept: tuple[T, ...] = ()  # suspects this probe kept in place (controls)
    call: Any = None  # what the caller attaches (the auditor: its AuditCall)


@dataclass
class GroupResult(Generic[T]):
    verdict: str  # "clean" | "localized" | "inconclusive" | "untested"
    culprit: T | None = None
    suspects: tuple[T, ...] = ()  # what a change was narrowed down to
    cleared: tuple[T, ...] = ()  # removed in a probe whose answer stayed
    probes: list[Probe[T]] = field(default_factory=list)
    changed_by: Probe[T] | None = None  # the smallest removal that changed the answer
    controlled_by: Probe[T] | None = None  # the probe that kept the culprit in place and held
    reason: str = ""

    @property
    def calls(self) -> int:
        return sum(1 for p in self.probes if p.outcome is not None)


async def group_test(items: Sequence[T], remove: Callable[[tuple[T, ...]], Awaitable[Outcome | None]],
                     control: Callable[[T], Awaitable[Outcome | None]] | None = None, *,
                     budget: int, solo_first: int = 0) -> GroupResult[T]:
    """Find which of `items` (best first) removes the change, within `budget` calls.

    `solo_first` top items are first tried alone (a strong candidate, e.g. one the answer
    echoes: if it is the trigger, that is one probe plus one control)."""
    res: GroupResult[T] = GroupResult("untested")
    left = budget
    cleared: list[T] = []
    rest = list(items)

    async def probe(removed: tuple[T, ...], role: str, kept: tuple[T, ...] = ()) -> Outcome | None:
        nonlocal left
        if left < 1:
            return None
        out = await remove(removed)
        if out is None:
            return None
        left -= 1
        res.probes.append(Probe(removed, out, role, kept))
        return out

    suspects: list[T] | None = None
    for item in list(rest[:solo_first]):
        out = await probe((item,), "solo")
        if out is None:
            break
        if out is Outcome.SAME:
            cleared.append(item)
            rest.remove(item)
        elif out is Outcome.DIFFERENT:
            suspects = [item]
            res.changed_by = res.probes[-1]
            break
        else:  # no comparable answer: keep it for the group probe
            break
    if suspects is None and rest:
        group = tuple(rest)
        out = await probe(group, "group")
        if out is Outcome.SAME:
            cleared.extend(group)
            res.cleared = tuple(cleared)
            res.verdict = "clean"
            res.reason = f"answer stable with {len(group)} span(s) removed in one probe"
            return res
        if out is Outcome.DIFFERENT:
            suspects = list(group)
            res.changed_by = res.probes[-1]
        elif out is Outcome.UNKNOWN and len(group) > 1:
            # removing everything left the model without a comparable answer (it rambled, or
            # the question lost its shape): try the best-ranked candidate alone
            one = await probe((group[0],), "solo")
            if one is Outcome.DIFFERENT:
                suspects = [group[0]]
                res.changed_by = res.probes[-1]
            else:
                if one is Outcome.SAME:
                    cleared.append(group[0])
                res.cleared = tuple(cleared)
                res.verdict = "inconclusive"
                res.reason = ("the group probe gave no comparable answer"
                              + ("; the best-ranked candidate alone kept the answer" if one is Outcome.SAME else ""))
                return res
        else:
            res.cleared = tuple(cleared)
            res.verdict = "inconclusive" if out is Outcome.UNKNOWN else ("clean" if cleared else "untested")
            res.reason = ("the group probe gave no comparable answer" if out is Outcome.UNKNOWN
                          else "no budget for the group probe")
            return res
    if suspects is None:
        res.cleared = tuple(cleared)
        res.verdict = "clean" if cleared else "untested"
        res.reason = f"answer stable with each of {len(cleared)} span(s) removed" if cleared else "nothing to test"
        return res

    control_probe: Probe[T] | None = None
    if len(suspects) > 1 and left >= math.ceil(math.log2(len(suspects))) + 1:
        # bisect: remove the lower-ranked half, keep the higher-ranked half in place
        while len(suspects) > 1:
            h = (len(suspects) + 1) // 2
            high, low = tuple(suspects[:h]), tuple(suspects[h:])
            out = await probe(low, "bisect", kept=high)
            if out is Outcome.SAME:
                cleared.extend(low)
                suspects = list(high)
                control_probe = res.probes[-1]
            elif out is Outcome.DIFFERENT:
                suspects = list(low)
                res.changed_by = res.probes[-1]
                control_probe = None
            else:
                res.verdict, res.suspects = "inconclusive", tuple(suspects)
                res.reason = ("a bisection probe gave no comparable answer" if out is Outcome.UNKNOWN else
                              f"removing {len(suspects)} span(s) together changes the answer; no budget left to narrow it down")
                res.cleared = tuple(cleared)
                return res
    elif len(suspects) > 1:
        # too little budget to bisect and verify: the best-ranked suspects alone, in order
        found = None
        for item in list(suspects):
            out = await probe((item,), "solo")
            if out is Outcome.DIFFERENT:
                found = item
                res.changed_by = res.probes[-1]
                break
            if out is Outcome.SAME:
                cleared.append(item)
                continue
            res.verdict, res.suspects = "inconclusive", tuple(x for x in suspects if x not in cleared)
            res.reason = (f"removing {len(suspects)} span(s) together changes the answer; no budget left to narrow it down"
                          if out is None else "a probe gave no comparable answer")
            res.cleared = tuple(cleared)
            return res
        if found is None:
            res.verdict, res.suspects, res.cleared = "inconclusive", tuple(suspects), tuple(cleared)
            res.reason = ("removing the spans together changes the answer, none alone does: "
                          "the model reacts to how much is removed, not to one span")
            return res
        suspects = [found]
    culprit = suspects[0]
    res.suspects = (culprit,)
    res.cleared = tuple(cleared)
    if control_probe is None and control is not None and left >= 1:
        out = await control(culprit)
        if out is not None:
            left -= 1
            res.probes.append(Probe((), out, "control", (culprit,)))
            if out is Outcome.SAME:
                control_probe = res.probes[-1]
            else:
                res.verdict, res.culprit = "inconclusive", None
                res.reason = ("the benign control moved the answer too: the model is unstable on this request"
                              if out is Outcome.DIFFERENT else "the benign control gave no comparable answer")
                return res
    if control_probe is None:
        res.verdict = "inconclusive"
        res.reason = "removing the span changes the answer, but no budget or benign control was left to confirm it"
        return res
    if res.changed_by is not None and tuple(res.changed_by.removed) != (culprit,):
        # localized by inference (a group changed, the rest of it did not): removing the span
        # alone must change the answer too, or the change came from removing several together
        out = await probe((culprit,), "verify")
        if out is not Outcome.DIFFERENT:
            res.verdict = "inconclusive"
            res.reason = ("no budget left to remove the located span alone" if out is None else
                          "removing the spans together changes the answer, the located one alone does not: "
                          "the model reacts to how much is removed, not to one span")
            return res
        res.changed_by = res.probes[-1]
    res.verdict, res.culprit, res.controlled_by = "localized", culprit, control_probe
    return res
