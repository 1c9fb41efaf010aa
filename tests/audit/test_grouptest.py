"""Group testing: coverage, bisection, controls, the budget. The oracle is a Python function
(which removal changes the answer): these tests are about the search, not about a model."""

from __future__ import annotations

import pytest

from promptguard.audit.grouptest import Outcome, group_test


def oracle(trigger: str | None, *, unstable_with: str | None = None, unknown: bool = False):
    calls: list[tuple[str, ...]] = []

    async def remove(items):
        calls.append(items)
        if unknown:
            return Outcome.UNKNOWN
        if unstable_with is not None and unstable_with in items:
            return Outcome.DIFFERENT
        return Outcome.DIFFERENT if trigger in items else Outcome.SAME

    async def control(item):
        calls.append(("control", item))
        return Outcome.DIFFERENT if unstable_with else Outcome.SAME

    return remove, control, calls


async def test_clean_request_one_probe_covers_every_candidate():
    remove, control, calls = oracle(None)
    res = await group_test(list("abcdef"), remove, control, budget=3)
    assert res.verdict == "clean" and calls == [tuple("abcdef")] and set(res.cleared) == set("abcdef")


@pytest.mark.parametrize("k,budget", [(1, 2), (2, 3), (3, 3), (4, 3), (6, 3), (8, 5)])
async def test_top_ranked_trigger_is_localized_within_budget(k, budget):
    items = [f"c{i}" for i in range(k)]
    remove, control, calls = oracle("c0")
    res = await group_test(items, remove, control, budget=budget)
    assert res.verdict == "localized" and res.culprit == "c0", res.reason
    assert res.calls <= budget and len(calls) <= budget
    # the control kept the culprit in place: either a bisection probe that removed the others, or
    # the explicit control
    assert res.controlled_by is not None and "c0" not in res.controlled_by.removed


@pytest.mark.parametrize("pos", range(4))
async def test_any_position_in_the_ranking_is_found_with_enough_budget(pos):
    items = ["a", "b", "c", "d"]
    remove, control, calls = oracle(items[pos])
    res = await group_test(items, remove, control, budget=4)
    assert res.verdict == "localized" and res.culprit == items[pos]
    assert len(calls) <= 4


async def test_budget_is_never_exceeded_and_a_short_budget_is_inconclusive():
    for budget in range(4):
        remove, control, calls = oracle("d")
        res = await group_test(list("abcd"), remove, control, budget=budget)
        assert len(calls) <= budget
        assert res.verdict != "localized" or budget >= 3
        if budget == 1:
            assert res.verdict == "inconclusive" and "narrow" in res.reason


async def test_solo_first_tries_the_strong_candidate_alone():
    remove, control, calls = oracle("b")
    res = await group_test(["b", "a", "c"], remove, control, budget=3, solo_first=1)
    assert res.verdict == "localized" and res.culprit == "b"
    assert calls == [("b",), ("control", "b")]
    # a strong candidate that is not the trigger is cleared, the rest go in one group
    remove, control, calls = oracle(None)
    res = await group_test(["b", "a", "c"], remove, control, budget=3, solo_first=1)
    assert res.verdict == "clean" and calls == [("b",), ("a", "c")]


async def test_a_change_that_needs_several_spans_together_is_not_a_trigger():
    """An unstable model: the answer moves only when both spans go (and with the first span
    kept, removing the second alone holds). Neither bisection nor the solo scan may call the
    first span a trigger."""
    for budget in (3, 6):
        calls = []

        async def remove(items, calls=calls):
            calls.append(items)
            return Outcome.DIFFERENT if set(items) >= {"a", "b"} else Outcome.SAME

        async def control(item):
            return Outcome.SAME

        res = await group_test(["a", "b"], remove, control, budget=budget)
        assert res.verdict == "inconclusive" and res.culprit is None, (budget, res.reason, calls)
        assert "not to one span" in res.reason


async def test_unstable_control_and_unknown_answers_never_localize():
    remove, control, calls = oracle("a", unstable_with="a")
    res = await group_test(["a"], remove, control, budget=3)
    assert res.verdict == "inconclusive" and res.culprit is None and "unstable" in res.reason
    remove, control, calls = oracle("a", unknown=True)
    res = await group_test(["a", "b"], remove, control, budget=3)
    assert res.verdict == "inconclusive" and res.culprit is None
    assert calls == [("a", "b"), ("a",)]  # no comparable answer with both gone: the best alone
