"""The false-positive budget gate: a detector set that flags more held-out clean
prompts than round 0 did is rejected, on its own and inside a hardening round."""

from __future__ import annotations

import json

import pytest

from promptguard.detectors.demonstrations.fitting import save_weights
from promptguard.detectors.demonstrations.scoring import load_weights
from promptguard.harden.cleanset import clean_corpus
from promptguard.harden.detector_set import DetectorSet, Evaluator
from promptguard.harden.evaluation import Budget, clean_metrics, gate
from promptguard.policy import default_policy_path, load_policy

RULES = default_policy_path().parent / "rules" / "default.yaml"
NO_FOUND = {s: {"prose": [], "code": []} for s in ("train", "calib", "test")}


def _policy(tmp_path):
    """Rules + the demonstrations detector: the policy's fast detectors (no model)."""
    p = tmp_path / "base.yaml"
    p.write_text(
        "version: 1\nname: base\ndetectors:\n"
        f"  rules:\n    rulesets: ['{RULES}']\n"
        "  demonstrations:\n    report_at: 0.3\n"
        "thresholds:\n  - detector: demonstrations\n    flag_at: 0.5\n    act_at: 0.7\n    action: sanitize\n",
        encoding="utf-8")
    return p


def _overflagging_weights(path):
    """Weights that call every demonstration poisoned (a retraining gone wrong)."""
    w = load_weights("auto")
    bad = {part: {**feats, "bias": feats.get("bias", 0.0) + 25.0} for part, feats in w.items()}
    save_weights(bad, path, about="test: over-flags every demonstration")
    return str(path)


def test_budget_limits():
    b = Budget(fewshot_target=0.01)
    # few-shot: never above round 0 (no tolerance), and at most 1% unless round 0 already flagged more
    assert b.limit("fewshot", 200, 0) == 0
    assert b.limit("fewshot", 200, 5) == 5
    assert Budget(tolerance={"fewshot": 0.05}).limit("fewshot", 200, 0) == 2
    # other categories: round 0 plus 1% of the category's gate files
    assert b.limit("system", 300, 4) == 7
    # the user's library: never above round 0
    assert b.limit("library", 10, 0) == 0
    ok, why, _ = gate({"fewshot": {"n": 200, "flagged": 3}}, {"fewshot": {"n": 200, "flagged": 0}}, b)
    assert not ok and "fewshot: 3/200" in why[0]
    ok, why, _ = gate({"system": {"n": 100, "flagged": 2}}, {"system": {"n": 100, "flagged": 1}}, b, 0.5, 0.9)
    assert not ok and "in-space recall" in why[0]


def test_gate_rejects_a_set_that_overflags_held_out_clean_fewshot(tmp_path):
    base = load_policy(_policy(tmp_path))
    clean = [p for p in clean_corpus(0, fewshot=3, system=12, documents=0, code=0, multilingual=0, found=NO_FOUND)
             if p.split == "gate"]
    ev = Evaluator(base)
    d0 = DetectorSet(None, None, 0, "base")
    bad = DetectorSet(None, _overflagging_weights(tmp_path / "bad.json"), 1, "bad")
    m0 = clean_metrics(clean, ev.verdicts(d0, [p.segments() for p in clean]))
    m1 = clean_metrics(clean, ev.verdicts(bad, [p.segments() for p in clean]))
    assert m1["fewshot"]["flagged"] > m0["fewshot"]["flagged"]
    ok, why, _ = gate(m1, m0, Budget())
    assert not ok and any(w.startswith("fewshot:") for w in why)
    ok, why, _ = gate(m0, m0, Budget())
    assert ok, why


@pytest.mark.slow
def test_a_round_that_overflags_is_rejected_and_reported(tmp_path, monkeypatch):
    """The demonstrations refit is replaced by one that over-flags (a stand-in, on
    purpose: this test is about the gate, not the fitting): the round is rejected,
    the report says so and the output policy keeps the base weights."""
    pytest.importorskip("torch")
    from promptguard.detectors.demonstrations import fitting
    from promptguard.harden.loop import HardenConfig, harden

    def fit_too_far(prompts, *, prior=None, l2=1.0, clean_weight=2.0):
        w = prior or load_weights("auto")
        return {part: {**feats, "bias": feats.get("bias", 0.0) + 25.0} for part, feats in w.items()}, {"stand_in": True}

    monkeypatch.setattr(fitting, "fit_weights", fit_too_far)
    cfg = HardenConfig(rounds=1, steps=2, batch=8, eval_samples=8, detected_sample=8, explore=6,
                       retrain=("demonstrations",), heldout_per_family=2, inspace=8,
                       clean={"fewshot": 3, "system": 12, "documents": 0, "code": 0, "multilingual": 0},
                       validation=False, seed=1, threads=1)
    out = tmp_path / "out"
    res = harden(out, cfg, policy_path=_policy(tmp_path), log=lambda m: None)
    r1 = res.rounds[0]
    assert r1["accepted"] is False and r1["set"] == "base"
    assert any(w.startswith("fewshot:") for w in r1["rejected_because"])
    assert all(not c["accepted"] for c in r1["candidates"])
    rep = json.loads((out / "report.json").read_text())
    assert rep["final_set"] == "base" and rep["rounds"][0]["accepted"] is False
    assert "**REJECTED**" in (out / "report.md").read_text() and "round 1 rejected: fewshot" in (out / "report.md").read_text()
    assert json.loads((out / "rounds" / "round-01" / "report.json").read_text())["accepted"] is False
    # the shipped policy is the base one: no refitted weights
    assert load_policy(out / "policy.yaml").detectors["demonstrations"].options.get("weights", "auto") == "auto"
