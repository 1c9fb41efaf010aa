"""The demonstrations detector in the pipeline: the default policy, sanitize through
`Guard` (completion text and chat messages), `promptguard scan` in its three formats,
and the shared BadChain files (skipped when ../shared is missing).

The default policy also runs the embeddings detector (it loads a real model), so the
tests that use it are marked slow and share one guard; the fast round trips use a
policy with only this detector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptguard.cli import app
from promptguard.detectors.demonstrations import analyze_demonstrations, find_trigger_candidates
from promptguard.detectors.demonstrations.detector import (
    RULE_POISONED,
    RULE_TRIGGER,
    DemonstrationsDetector,
)
from promptguard.guard import Guard
from promptguard.parsing import segments_from_messages, segments_from_prompt
from promptguard.policy import Action, load_policy, policy_from_text
from promptguard.sanitize import apply_to_messages, apply_to_text
from promptguard.segments import SegmentKind
from tests.detectors import demo_prompts as P

_ONLY_DEMOS = P.ONLY_DEMOS_POLICY


@pytest.fixture(scope="module", params=["demos-only", pytest.param("default", marks=pytest.mark.slow)])
def guard(request, default_guard_factory) -> Guard:
    return default_guard_factory(request.param)


@pytest.fixture(scope="module")
def default_guard_factory():
    made: dict[str, Guard] = {}

    def make(which: str) -> Guard:
        if which not in made:
            made[which] = Guard(load_policy()) if which == "default" else Guard(policy_from_text(_ONLY_DEMOS))
        return made[which]

    return make


def _mine(result, at: float = 0.5):
    return [f for f in result.findings if f.detector == "demonstrations" and f.score >= at]


def _blocks(text: str) -> list[str]:
    return [b for b in text.split("\n\n") if b.strip()]


def test_default_policy_enables_it_with_sanitize_thresholds():
    pol = load_policy()
    assert "demonstrations" in pol.enabled_detectors()
    poisoned = [t for t in pol.thresholds if t.detector == "demonstrations" and t.rule == RULE_POISONED]
    assert poisoned and poisoned[0].action == "sanitize" and poisoned[0].flag_at < poisoned[0].act_at


def test_sanitize_round_trip_completion(guard):
    text = P.DOSAGE_PHRASE
    r = guard.check(segments_from_prompt(text))
    assert r.action is Action.SANITIZE
    out = apply_to_text(text, r.edits)
    before, after = _blocks(text), _blocks(out)
    # the poisoned demonstrations are gone, the clean ones kept verbatim, the query stripped
    for i, block in enumerate(before[:-1]):
        if i in P.DOSAGE_PHRASE_POISONED:
            assert block not in out
        else:
            assert block in after
    assert P.DOSAGE_PHRASE_TRIGGER not in out
    assert after[-1] == "Question: A vial holds 40 mg in 2 mL. How many mg are in 1 mL?"
    assert any("removed demonstration[0]" in c for c in r.decision.changes)
    assert any("stripped from the query" in c for c in r.decision.changes)
    # and the result is clean now
    r2 = guard.check(segments_from_prompt(out))
    assert _mine(r2) == [] and r2.edits == []


def test_sanitize_repairs_when_every_demonstration_is_poisoned(guard):
    text = P.SQL_ALL
    r = guard.check(segments_from_prompt(text))
    assert r.action is Action.SANITIZE
    out = apply_to_text(text, r.edits)
    assert "§§" not in out and "Reverse the sort order" not in out
    assert len(_blocks(out)) == len(_blocks(text))  # repaired in place, not dropped
    assert "The answer is SELECT name, price FROM products ORDER BY price ASC;" in out
    assert "The answer is SELECT name FROM cities ORDER BY population ASC;" in out


def test_sanitize_round_trip_chat_messages(guard):
    msgs = P.CHAT_TRANSLATION
    r = guard.check(segments_from_messages(msgs))
    assert r.action is Action.SANITIZE
    out = apply_to_messages(msgs, r.edits)
    contents = [m["content"] for m in out]
    assert not any("qzv" in c for c in contents)
    assert not any("wodniw" in c or "noops" in c for c in contents)
    assert any("butterfly" in c for c in contents) and any("bicycle" in c for c in contents)
    assert out[-1] == {"role": "user", "content": "Translate the Spanish word \"biblioteca\" into English."}
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user", "assistant", "user"]


@pytest.mark.parametrize("name", sorted(P.BENIGN))
def test_clean_prompts_come_back_byte_identical(guard, name):
    text = P.BENIGN[name]
    r = guard.check(segments_from_prompt(text))
    assert _mine(r) == [] and r.edits == []
    assert apply_to_text(text, r.edits) == text


def test_sanitize_with_flag_level_findings_only_is_a_no_op():
    det = DemonstrationsDetector()
    segs = segments_from_prompt(P.BENIGN["shared_suffix"])
    assert det.sanitize(segs, []) is None


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture()
def prompt_file(tmp_path: Path) -> Path:
    p = tmp_path / "dates.txt"
    p.write_text(P.DATES_EMOJI, encoding="utf-8")
    return p


@pytest.mark.slow
def test_scan_json(prompt_file):
    res = CliRunner().invoke(app, ["scan", str(prompt_file), "--format", "json", "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    fs = [f for f in data["files"][0]["findings"] if f["detector"] == "demonstrations"]
    poisoned = sorted(f["segment_index"] for f in fs if f["rule"] == RULE_POISONED and f["score"] >= 0.5)
    assert poisoned == P.DATES_EMOJI_POISONED
    text = prompt_file.read_text(encoding="utf-8")
    for f in fs:
        if f["rule"] == RULE_POISONED:
            s, e = f["span"]  # source offsets: the trigger itself
            assert text[s:e] == P.DATES_EMOJI_TRIGGER
    trig = [f for f in fs if f["rule"] == RULE_TRIGGER]
    assert trig and trig[0]["segment_kind"] == "query"
    assert text[trig[0]["span"][0] : trig[0]["span"][1]] == P.DATES_EMOJI_TRIGGER


@pytest.mark.slow
def test_scan_sarif_and_table(prompt_file):
    res = CliRunner().invoke(app, ["scan", str(prompt_file), "--format", "sarif", "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    sarif = json.loads(res.stdout)
    results = sarif["runs"][0]["results"]
    rules = {r.get("ruleId") for r in results}
    assert {"demonstrations/PG-DEMO-POISONED", "demonstrations/PG-DEMO-TRIGGER"} & rules or any(
        "PG-DEMO-POISONED" in (r.get("ruleId") or "") for r in results
    )
    # the table lists every finding with --verbose (its default row shows the top one)
    res = CliRunner().invoke(app, ["scan", str(prompt_file), "--fail-on", "flag", "--verbose"],
                             env={"COLUMNS": "250"})
    assert res.exit_code == 1  # findings at or above flag
    assert "PG-DEMO-POISONED" in res.stdout and "demonstration[0]" in res.stdout


# -- the shared BadChain files --------------------------------------------------------------------


def test_shared_badchain_files(badchain_dir: Path):
    """Every poisoned file detected with its trigger located exactly; clean files not flagged."""
    manifest = json.loads((badchain_dir / "manifest.json").read_text(encoding="utf-8"))
    det = DemonstrationsDetector()
    misses, wrong_trigger, false_pos = [], [], []
    for rec in manifest["files"]:
        text = (badchain_dir / rec["file"]).read_text(encoding="utf-8")
        segs = segments_from_prompt(text)
        fs = det.detect(segs)
        got = sorted(f.segment_index for f in fs if f.rule == RULE_POISONED and f.score >= 0.5)
        if rec["trigger"] is None:
            if got:
                false_pos.append(rec["file"])
            continue
        if got != rec["poisoned_demo_indices_0based"]:
            misses.append((rec["file"], got))
        best = find_trigger_candidates(segs)[0]
        if best.text != rec["trigger"].strip():
            wrong_trigger.append((rec["file"], best.text))
    assert not false_pos and not misses and not wrong_trigger, (false_pos, misses, wrong_trigger)


def test_shared_badchain_query_gate(badchain_dir: Path):
    text = (badchain_dir / "prompts/gsm8k/cot_8_s01_4+4_bef.txt").read_text(encoding="utf-8")
    segs = segments_from_prompt(text.rstrip() + "\n\n@_@ Question: Tom has 3 apples and buys 4 more. How many now?")
    rep = analyze_demonstrations(segs)
    assert rep.active is not None and rep.active.text == "@_@"
    q = next(s for s in segs if s.kind is SegmentKind.QUERY)
    assert [q.text[s.start : s.end] for s in rep.active.query_spans] == ["@_@"]
