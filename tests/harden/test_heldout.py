"""Leave-family-out evaluation of hardening: the held-out attack families never reach
the generator or any training row, the evaluation sets are made of them, and the
clean corpus keeps the budget's rows away from training."""

from __future__ import annotations

import random

import pytest

from promptguard.classifier.corpus.rows import Row
from promptguard.harden.attack_space import FACTORS, HELD_OUT, AttackSpace, Construction, Holdout
from promptguard.harden.cleanset import FEWSHOT_FAMILIES, clean_corpus, library_prompts
from promptguard.harden.evaluation import heldout_attacks
from promptguard.harden.retrain import _touches, attack_rows
from promptguard.harden.validator import validate

NO_FOUND = {"train": {"prose": [], "code": []}, "calib": {"prose": [], "code": []}, "test": {"prose": [], "code": []}}


def test_default_holdout_is_the_declared_families_and_parse_rejects_nonsense():
    h = Holdout.default()
    declared = {f"{f}.{k}={v}" for f, ks in HELD_OUT.items() for k, vs in ks.items() for v in vs}
    assert set(h.names()) == declared and len(declared) >= 4
    assert {n.split(".")[0] for n in declared} == {"demo", "inject"}
    more = Holdout.parse("inject.carrier=table")
    assert "inject.carrier=table" in more.names() and declared <= set(more.names())
    with pytest.raises(ValueError, match="unknown factor"):
        Holdout.parse("inject.colour=red")
    with pytest.raises(ValueError, match="no value"):
        Holdout.parse("inject.carrier=fax")
    every = ",".join(f"demo.position={v}" for v in FACTORS["demo"]["position"])
    with pytest.raises(ValueError, match="nothing left"):
        Holdout.parse(every)


def test_action_space_never_produces_a_held_out_family():
    holdout = Holdout.parse("inject.carrier=table")
    space = AttackSpace(holdout=holdout)
    rng = random.Random(5)
    for _ in range(300):
        c = space.random_construction(rng)
        assert not holdout.touches(c), c
    # the generator samples through the same mask
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from promptguard.harden.generator import Generator

    g = Generator(seed=2)
    cs, _, _ = g.sample(space, 100)
    for c in cs:
        assert not holdout.touches(c), c


def test_heldout_attacks_are_valid_and_each_uses_its_family():
    holdout = Holdout.default()
    got = heldout_attacks(holdout, 2, seed=3)
    names = [n for n, _ in got]
    assert set(names) == set(holdout.names())
    for name, a in got:
        assert name in holdout.touches(a.construction)
        assert validate(a).ok


def test_rows_of_held_out_families_never_reach_training():
    holdout = Holdout.default()
    _, _, value = Holdout.split_name("inject.carrier=calendar")
    held = Row("x", 1, "context", "synthetic", "o", "l", category=f"attack-space/override/none/{value}")
    kept = Row("x", 1, "context", "synthetic", "o", "l", category="attack-space/override/none/email")
    other = Row("x", 1, "context", "synthetic", "o", "l", category="planted/calendar")
    assert _touches(held, holdout) and not _touches(kept, holdout) and not _touches(other, holdout)
    # what the loop trains the classifier on is named by its factors, so the filter applies to it
    space = AttackSpace(holdout=Holdout.none())
    rng = random.Random(1)
    for _ in range(80):
        c = space.random_construction(rng, "inject", force={"carrier": "calendar", "obfuscation": "none"})
        try:
            a = space.build(c)
        except Exception:  # noqa: BLE001 - an impossible rendering: try another
            continue
        if not validate(a).ok:
            continue
        rows = attack_rows(a, space.build(c, poison=False), "t")
        assert rows and all(_touches(r, holdout) for r in rows if r.label == 1)
        break
    else:
        pytest.fail("no valid calendar injection rendered")


def test_clean_corpus_gate_and_test_rows_are_never_train_rows():
    prompts = clean_corpus(0, fewshot=4, system=30, documents=0, code=0, multilingual=30, found=NO_FOUND)
    splits = {p.split for p in prompts}
    assert splits == {"train", "gate", "test"}
    fewshot = [p for p in prompts if p.category == "fewshot"]
    train_fams = {p.family for p in fewshot if p.split == "train"}
    held_fams = {p.family for p in fewshot if p.split != "train"}
    # whole task families are held out, so the budget is checked on task types no round trained on
    assert train_fams and held_fams and not train_fams & held_fams
    assert held_fams == {f for f, (_, w) in FEWSHOT_FAMILIES.items() if w == "held"}
    # multilingual: a catalogue's package is the unit
    ml = [p for p in prompts if p.category == "multilingual"]
    by_pkg: dict[str, set[str]] = {}
    for p in ml:
        by_pkg.setdefault(p.family, set()).add("train" if p.split == "train" else "held")
    assert all(len(s) == 1 for s in by_pkg.values())
    # every prompt says where it came from
    assert all(p.source and p.licence for p in prompts)
    assert len({p.id for p in prompts}) == len(prompts)


def test_library_is_split_by_file(tmp_path):
    for i in range(8):
        (tmp_path / f"p{i}.txt").write_text(f"Summarise the note number {i} in one sentence.\n", encoding="utf-8")
    lib = library_prompts([tmp_path], seed=0)
    assert len(lib) == 8 and {p.split for p in lib} == {"train", "gate"}
    assert all(p.category == "library" and p.path for p in lib)
    one = library_prompts([tmp_path / "p0.txt"])
    assert [p.split for p in one] == ["gate"]


def test_construction_helpers_are_consistent():
    c = Construction.make("inject", 1, carrier="calendar", payload_family="override", payload_variant=0,
                          obfuscation="none", position="start", format="completion")
    assert Holdout.default().touches(c) == ["inject.carrier=calendar"]
