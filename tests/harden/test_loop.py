"""`promptguard harden` end to end (a small configuration): it retrains the policy's
own classifier and demonstrations detector, writes a detector set and a policy that
the scanner loads, keeps a user's library unflagged, and `promptguard redteam` uses
its generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from typer.testing import CliRunner  # noqa: E402

from promptguard.cli import app  # noqa: E402
from promptguard.guard import Guard  # noqa: E402
from promptguard.harden.attack_space import Attack, Holdout  # noqa: E402
from promptguard.harden.cleanset import clean_corpus  # noqa: E402
from promptguard.harden.evaluation import heldout_attacks  # noqa: E402
from promptguard.harden.loop import HardenConfig, harden  # noqa: E402
from promptguard.harden.validator import validate  # noqa: E402
from promptguard.policy import Action, default_policy_path, load_policy  # noqa: E402

NO_FOUND = {s: {"prose": [], "code": []} for s in ("train", "calib", "test")}
LEARNED = {"classifier", "demonstrations"}


def _write(p, path: Path) -> None:
    if p.prompt is not None:
        path.with_suffix(".txt").write_text(p.prompt, encoding="utf-8")
    else:
        path.with_suffix(".json").write_text(json.dumps({"messages": p.messages}), encoding="utf-8")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A user's clean library: few-shot files and system prompts (another seed than the
    loop's own clean corpus), chosen so that the packaged policy flags some of them
    through its learned detectors (the case `--library` exists for)."""
    d = tmp_path_factory.mktemp("library")
    guard = Guard(load_policy(default_policy_path()), face="scanner")
    flagged, clean = [], []
    for p in clean_corpus(7, fewshot=2, system=12, documents=0, code=0, multilingual=0, found=NO_FOUND):
        res = guard.check(p.segments())
        fired = {f.detector for f in res.decision.reasons}
        if res.action is Action.ALLOW:
            clean.append(p)
        elif fired <= LEARNED:
            flagged.append(p)
    assert flagged, "no clean file the packaged policy flags: the library test would prove nothing"
    for i, p in enumerate(flagged[:4] + clean[:4]):
        _write(p, d / f"prompt-{i:02d}")
    return d, len(flagged[:4])


@pytest.fixture(scope="module")
def run(tmp_path_factory, library):
    """One small round against the packaged policy, retraining both learned detectors."""
    import torch

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("harden")
    cfg = HardenConfig(rounds=1, steps=2, batch=8, eval_samples=8, detected_sample=8, explore=10,
                       heldout_per_family=2, inspace=8,
                       clean={"fewshot": 3, "system": 20, "documents": 0, "code": 0, "multilingual": 20},
                       replay=200, calib_per_kind=40, token_budget=4000, corpus=str(d / "no-corpus"),
                       feature_cache=str(d / "features"), validation=False, seed=1, threads=1)
    out = d / "out"
    res = harden(out, cfg, library=[library[0]], log=lambda m: None)
    return res, out


@pytest.mark.slow
def test_round_retrains_the_real_detectors_and_reports_on_held_out_families(run):
    _, out = run
    rep = json.loads((out / "report.json").read_text())
    assert rep["retrained"] == ["classifier", "demonstrations"]
    r1 = rep["rounds"][0]
    fit = r1["fit"]
    assert fit["classifier"]["rows"] > 0 and fit["classifier"]["attack_rows"] > 0
    assert fit["demonstrations"]["prompts"] > 0
    # every round is judged on every held-out family and on the clean test split
    for m in (rep["round0"], r1):
        assert set(m["heldout"]["families"]) == set(rep["held_out_families"])
        assert {"0.01", "0.05"} <= set(m["heldout_at_fpr"])
        assert {"fewshot", "system", "multilingual"} <= set(m["test"])
        assert {"fewshot", "library"} <= set(m["gate"])
    assert r1["candidates"] and all("gate" in c for c in r1["candidates"])
    if r1["accepted"]:
        rd = out / "rounds" / "round-01"
        man = json.loads((rd / "manifest.json").read_text())
        assert man["format"] == "promptguard-detector-set" and man["parent"] == "base"
        if not r1.get("partial") or r1["set"].endswith("-clf"):
            info = json.loads((rd / "classifier" / "classifier.json").read_text())
            assert info["training"]["finetune"] and info["harden"]["round"] == 1
            assert set(info["calibration"]) >= {"context", "query"}
    md = (out / "report.md").read_text()
    assert md.startswith("# promptguard harden report") and "held-out recall" in md
    clean_manifest = json.loads((out / "clean" / "manifest.json").read_text())
    assert {"fewshot/train", "fewshot/gate", "fewshot/test"} <= set(clean_manifest["by_category_split"])


@pytest.mark.slow
def test_library_clean_prompts_stay_unflagged(run, library):
    lib_dir, n_flagged_by_base = library
    _, out = run
    info = json.loads((out / "report.json").read_text())["library"]
    assert info["files"] == len(list(lib_dir.iterdir()))
    assert info["flagged_after"] == []
    # the scanner with the output policy agrees: every file of the library is allowed
    r = CliRunner().invoke(app, ["scan", str(lib_dir), "--policy", str(out / "policy.yaml"), "--format", "json"])
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["files"]
    assert len(files) == info["files"] and all(f["verdict"] == "allow" for f in files), files
    # while the packaged policy flags some of them
    r0 = CliRunner().invoke(app, ["scan", str(lib_dir), "--format", "json"])
    assert sum(f["verdict"] != "allow" for f in json.loads(r0.stdout)["files"]) >= n_flagged_by_base >= 1


@pytest.mark.slow
def test_output_policy_loads_the_retrained_detectors_and_still_catches_attacks(run):
    _, out = run
    pol = load_policy(out / "policy.yaml")
    clf = Path(str(pol.detectors["classifier"].options["model"]))
    clf = clf if clf.is_absolute() else (out / clf)
    assert clf.resolve().is_relative_to((out / "detector").resolve()) or clf.resolve().is_relative_to(out.resolve())
    guard = Guard(pol, face="scanner")
    assert {"rules", "demonstrations", "classifier"} <= {d.name for d in guard.detectors}
    rows = [json.loads(x) for x in (out / "attacks.jsonl").read_text().splitlines()]
    for row in rows[:20]:
        assert validate(Attack.from_record(row)).ok
    # it still catches most attacks of the families no round trained on
    attacks = [a for _, a in heldout_attacks(Holdout.default(), 1, seed=5)]
    caught = sum(guard.check(a.segments()).action is not Action.ALLOW for a in attacks)
    assert caught >= len(attacks) // 2, (caught, len(attacks))


@pytest.mark.slow
def test_redteam_cli_turns_a_library_into_valid_attacks(run, tmp_path):
    _, out = run
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "yesno.txt").write_text(
        "Answer with reasoning.\n\n"
        "Q: Is a week longer than a day?\nA week has seven days.\nSeven days are longer than one day.\nSo the answer is yes.\n\n"
        "Q: Can you boil water at room temperature by stirring it?\nStirring adds very little heat.\n"
        "Water boils at 100 degrees at sea level.\nSo the answer is no.\n\n"
        "Q: Is the Pacific an ocean?\nThe Pacific is the largest body of salt water.\nIt is classed as an ocean.\nSo the answer is yes.\n\n"
        "Q: Do trains usually run on rails?\n", encoding="utf-8")
    (lib / "system.json").write_text(json.dumps({"messages": [
        {"role": "system", "content": "You are the booking assistant of a small hotel. Answer politely."},
        {"role": "user", "content": "Do you have a room free next Friday?"}]}), encoding="utf-8")
    dest = tmp_path / "attacks.jsonl"
    r = CliRunner().invoke(app, ["redteam", str(lib), "-o", str(dest), "--generator", str(out), "-k", "2"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in dest.read_text().splitlines()]
    assert {row["family"] for row in rows} == {"demo", "inject"}
    for row in rows:
        a = Attack.from_record(row)
        assert validate(a).ok
        if row["family"] == "demo":
            assert "Is a week" in row["prompt"] and row["ground_truth"]["poisoned_demos"]
        else:
            assert any("booking assistant" in (m.get("content") or "") for m in (row.get("messages") or [])) or \
                "booking assistant" in (row.get("prompt") or "")
    bad = CliRunner().invoke(app, ["redteam", str(tmp_path / "missing"), "-o", str(dest)])
    assert bad.exit_code == 2


def test_harden_cli_reports_bad_input(tmp_path):
    o = str(tmp_path / "o")
    r = CliRunner().invoke(app, ["harden", "-o", o, "--policy", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "no such policy" in r.output
    r = CliRunner().invoke(app, ["harden", "-o", o, "--retrain", "nosuch", "--rounds", "0", "--no-validation"])
    assert r.exit_code == 2 and "cannot retrain nosuch" in r.output
    r = CliRunner().invoke(app, ["harden", "-o", o, "--holdout", "inject.carrier=fax", "--rounds", "0"])
    assert r.exit_code == 2 and "fax" in r.output
    r = CliRunner().invoke(app, ["harden", "-o", o, "--library", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such file" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["harden", "-o", o, "--library", str(tmp_path / "empty"), "--rounds", "0"])
    assert r.exit_code == 2 and "no prompt files" in r.output
    policy = tmp_path / "rules-only.yaml"
    policy.write_text(f"detectors:\n  rules:\n    rulesets: ['{default_policy_path().parent / 'rules' / 'default.yaml'}']\n")
    r = CliRunner().invoke(app, ["harden", "-o", o, "--policy", str(policy), "--rounds", "0"])
    assert r.exit_code == 2 and "nothing to harden" in r.output
