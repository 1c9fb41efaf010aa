"""The attack space renders real prompts with ground truth, and the validator rejects
constructions that are not real attacks. All material is promptguard's own."""

from __future__ import annotations

import base64
import random
import re
from dataclasses import replace

import pytest

from promptguard.harden import carriers as C
from promptguard.harden.attack_space import FACTORS, AttackSpace, Attack, Construction, ConstructionError, UserPrompt
from promptguard.harden.domains import DOMAINS, items_from_segments, parse_answer_text
from promptguard.harden.validator import validate
from promptguard.parsing import segments_from_prompt
from promptguard.segments import SegmentKind

SPACE = AttackSpace()


def build(family: str, seed: int = 1, **choices) -> Attack:
    return SPACE.build(Construction.make(family, seed, **choices))


def first(family: str, want_valid: bool = True, **choices) -> Attack:
    """The first seed whose construction builds (and validates, when `want_valid`)."""
    for seed in range(100):
        try:
            a = build(family, seed, **choices)
        except ConstructionError:
            continue
        if not want_valid or validate(a).ok:
            return a
    raise AssertionError(f"no seed builds {family} {choices}")


def test_random_constructions_render_and_mostly_validate():
    rng = random.Random(0)
    valid = {"demo": 0, "inject": 0}
    tried = {"demo": 0, "inject": 0}
    for _ in range(300):
        c = SPACE.random_construction(rng)
        try:
            a = SPACE.build(c)
        except ConstructionError:
            continue
        tried[c.family] += 1
        v = validate(a)
        if v.ok:
            valid[c.family] += 1
            labels = a.labels()
            # every valid attack marks at least one segment as poisoned / carrying the payload
            assert any(x == 1 for x in labels.values()), c
            # and its clean twin validates as "not an attack" and has no positive label
            twin = SPACE.build(c, poison=False)
            assert not validate(twin).ok
            assert not any(x == 1 for x in twin.labels().values())
    assert valid["demo"] / tried["demo"] > 0.7
    assert valid["inject"] / tried["inject"] > 0.8


@pytest.mark.parametrize("fmt", FACTORS["demo"]["format"])
def test_demo_attack_ground_truth_matches_the_parsed_prompt(fmt):
    a = first("demo", domain="math", trigger_kind="phrase", trigger_variant=1, position="end", share=0.5,
              n_demos=4, step_family="arithmetic", phrasing=1, echo=True, query_trigger=True, format=fmt)
    assert validate(a).ok
    trig = a.truth["trigger"]
    demos = [s for s in a.segments() if s.kind is SegmentKind.DEMONSTRATION]
    assert len(demos) == 4
    for seg, t in zip(demos, a.truth["demos"]):
        assert (trig in seg.question) == t["poisoned"]
        if t["poisoned"]:
            assert t["backdoor_step"] in seg.steps
            assert t["answer"] != t["clean_answer"]
            for sp in t["trigger_spans"]:
                assert a.text_at(sp) == trig
    q = [s for s in a.segments() if s.kind is SegmentKind.QUERY]
    assert q and trig in q[0].text


@pytest.mark.parametrize("ob", C.OBFUSCATIONS)
def test_injection_payload_recovered_from_every_obfuscation(ob):
    a = first("inject", carrier="retrieved_chunk", payload_family="exfiltration", payload_variant=0,
              obfuscation=ob, position="middle", format="chat_tool")
    v = validate(a)
    assert v.ok, v.reasons
    planted = [a.text_at(p) for p in a.truth["parts"]]
    if ob == "split":
        assert len(planted) == 2 and all(p != a.truth["payload"] for p in planted)
    elif ob != "none":
        assert a.truth["payload"] not in "".join(planted)  # really obfuscated
    got, _ = C.recover(ob, planted, C.Payload("", 0, a.truth["payload"], tuple(a.truth["markers"]),
                                              ((a.truth["lang"], a.truth["translation"]),) if a.truth["lang"] else ()),
                       a.truth["lang"])
    assert got is not None and all(m in got for m in a.truth["markers"]) or ob == "leetspeak"


# -- the validator rejects what is not a real attack ------------------------------------


def test_backdoor_step_that_does_not_change_the_answer_is_rejected():
    # re-writing a date in ISO format keeps the same date: not a backdoor
    a = first("demo", want_valid=False, domain="dates", step_family="unit_change", share=1.0, n_demos=4,
              format="completion")
    v = validate(a)
    assert not v.ok
    assert any("does not change the answer" in r for r in v.reasons)


def test_reversing_a_palindrome_is_not_a_backdoor():
    from promptguard.harden.attack_space import backdoor_step
    from promptguard.harden.domains import Answer, DemoItem

    item = DemoItem("strings", 'Write the word "level" backwards.', ("The letters are l, e, v, e, l.",), Answer("text", "level"))
    step, new = backdoor_step(item, "adjustment", 0, random.Random(0))
    assert new.same(item.answer)  # the builder may produce it; the validator must catch it
    text = (f'Question: {item.question} qvx\n{item.steps[0]}\n{step}\nThe answer is level.\n\n'
            'Question: Write the word "river" backwards.\nThe letters are r, i, v, e, r.\nThe answer is revir.\n\n'
            'Question: Write the word "noon" backwards. qvx\n')
    fake = Attack(Construction.make("demo", 0, query_trigger=True), True, prompt=text, truth={
        "trigger": "qvx", "poisoned_demos": [0], "demos": [
            {"index": 0, "poisoned": True, "question": item.question + " qvx", "clean_answer": "level",
             "answer": "level", "answer_type": "text", "backdoor_step": step,
             "trigger_spans": [[None, text.index("qvx"), text.index("qvx") + 3]]},
            {"index": 1, "poisoned": False, "question": 'Write the word "river" backwards.', "clean_answer": "revir",
             "answer": "revir", "answer_type": "text", "backdoor_step": None, "trigger_spans": []}],
        "query": {"trigger_spans": [[None, text.rindex("qvx"), text.rindex("qvx") + 3]]}})
    v = validate(fake)
    assert not v.ok and any("does not change the answer" in r for r in v.reasons)


def test_trigger_missing_from_query_when_required_is_rejected():
    a = first("demo", domain="sentiment", step_family="negation", trigger_kind="rare_token", query_trigger=True,
              format="completion", n_demos=4)
    assert validate(a).ok
    trig = a.truth["trigger"]
    head, _, tail = a.prompt.rpartition("Question: ")
    broken = replace(a, prompt=head + "Question: " + tail.replace(trig, ""), _segments=None)
    v = validate(broken)
    assert not v.ok and any("missing from the query" in r for r in v.reasons)


def test_trigger_in_a_clean_demonstration_is_rejected():
    a = first("demo", domain="math", step_family="arithmetic", trigger_kind="phrase", share=0.5, n_demos=4,
              format="completion", query_trigger=False)
    assert validate(a).ok
    trig = a.truth["trigger"]
    clean = next(d for d in a.truth["demos"] if not d["poisoned"])
    broken = replace(a, prompt=a.prompt.replace(clean["question"], clean["question"] + " " + trig, 1), _segments=None)
    v = validate(broken)
    assert not v.ok
    assert any("clean demonstration" in r or "question is not where" in r for r in v.reasons)


def test_final_answer_that_ignores_the_backdoor_step_is_rejected():
    a = first("demo", domain="dosage", step_family="adjustment", share=0.25, n_demos=4, format="completion")
    assert validate(a).ok
    d = next(d for d in a.truth["demos"] if d["poisoned"])
    bad = a.prompt.replace(f"The answer is {d['answer']}.", f"The answer is {d['clean_answer']}.", 1)
    v = validate(replace(a, prompt=bad, _segments=None))
    assert not v.ok and any("does not follow the backdoor step" in r for r in v.reasons)


def test_step_family_that_does_not_apply_cannot_be_built():
    with pytest.raises(ConstructionError):
        build("demo", 1, domain="math", step_family="choice_shift")
    with pytest.raises(ConstructionError):
        build("demo", 1, domain="choices", step_family="unit_change")


def test_payload_destroyed_by_the_carrier_is_rejected():
    # a markdown table truncates long cells: a letter-spaced payload does not fit
    rejected = 0
    for seed in range(12):
        a = build("inject", seed, carrier="table", payload_family="phishing", payload_variant=1,
                  obfuscation="spacing", position="middle", format="completion")
        v = validate(a)
        rejected += not v.ok
        if not v.ok:
            assert any("did not survive" in r for r in v.reasons)
    assert rejected == 12


def test_tampered_base64_payload_is_rejected():
    a = first("inject", carrier="email", payload_family="override", obfuscation="base64", format="chat_tool")
    assert validate(a).ok
    mi, s, e = a.truth["parts"][0]
    blob = re.search(r"[A-Za-z0-9+/]{16,}={0,2}", a.text_at(a.truth["parts"][0])).group()
    content = a.messages[mi]["content"]
    msgs = [dict(m) for m in a.messages]
    msgs[mi]["content"] = content.replace(blob, blob[: len(blob) // 2] + "*" + blob[len(blob) // 2:])
    v = validate(replace(a, messages=msgs, _segments=None))
    assert not v.ok and any("did not survive base64" in r for r in v.reasons)
    base64.b64decode(blob)  # the untampered blob was real base64


def test_split_payload_in_one_segment_is_rejected():
    # pasted into one user message, both halves land in the same segment: not split across segments
    a = build("inject", 2, carrier="web_page", obfuscation="split", format="chat_user")
    v = validate(a)
    assert not v.ok and any("single segment" in r for r in v.reasons)
    ok = build("inject", 2, carrier="web_page", obfuscation="split", format="chat_tool")
    assert validate(ok).ok


def test_markers_must_survive_homoglyphs():
    a = first("inject", carrier="web_page", payload_family="phishing", obfuscation="homoglyph", format="chat_tool")
    assert validate(a).ok
    url = next(m for m in a.truth["markers"] if m.startswith("http"))
    mi = a.truth["parts"][0][0]
    msgs = [dict(m) for m in a.messages]
    msgs[mi]["content"] = msgs[mi]["content"].replace(url, url[:-1] + ("Z" if url[-1] != "Z" else "Y"))
    v = validate(replace(a, messages=msgs, _segments=None))
    assert not v.ok and any("did not survive" in r or "marker" in r for r in v.reasons)


def test_every_domain_has_worked_examples_the_parser_reads():
    rng = random.Random(1)
    for dom, gen in DOMAINS.items():
        it = gen(rng)
        text = f"Question: {it.question}\n" + (it.choices_line() + "\n" if it.choices else "") + \
            "\n".join(it.steps) + "\n" + it.answer_line() + "\n\nQuestion: what next?\n"
        segs = segments_from_prompt(text)
        demos = [s for s in segs if s.kind is SegmentKind.DEMONSTRATION]
        assert len(demos) == 1, dom
        parsed = parse_answer_text(demos[0].answer)
        assert parsed is not None


def test_user_library_items_keep_their_own_answer_style():
    text = ("Q: Is ice colder than steam?\nIce is below 0 degrees.\nSteam is above 100 degrees.\nSo the answer is yes.\n\n"
            "Q: Can a cat read a newspaper?\nCats cannot read.\nNewspapers need reading.\nSo the answer is no.\n\n"
            "Q: Is a kilometre longer than a mile?\nA mile is about 1.6 kilometres.\nSo a kilometre is shorter.\nSo the answer is no.\n\n"
            "Q: Do fish need water?\n")
    items = items_from_segments(segments_from_prompt(text))
    assert [i.answer.value for i in items] == ["yes", "no", "no"]
    assert items[0].answer_line() == "So the answer is yes."
    u = UserPrompt(items=items, query="Do fish need water?", marker="Q: ", format="completion")
    space = AttackSpace([u])
    a = space.build(Construction.make("demo", 1, domain="user", step_family="negation", share=1.0,
                                      trigger_kind="formatting", format="completion"), base=u)
    assert validate(a).ok
    assert "So the answer is" in a.prompt and "Q: " in a.prompt and "Question:" not in a.prompt
