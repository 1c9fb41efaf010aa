"""`promptguard harden` end to end (a small configuration), its versioned artifacts,
and that the scanner, the proxy and `promptguard redteam` use them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from promptguard.cli import app  # noqa: E402
from promptguard.detectors.base import DetectorError  # noqa: E402
from promptguard.guard import Guard  # noqa: E402
from promptguard.harden.attack_space import Attack  # noqa: E402
from promptguard.harden.detector import HardenedDetector, load_artifact  # noqa: E402
from promptguard.harden.loop import HardenConfig, harden  # noqa: E402
from promptguard.harden.validator import validate  # noqa: E402
from promptguard.policy import default_policy_path, load_policy  # noqa: E402

RULES = default_policy_path().parent / "rules" / "default.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small hardening run against rules + demonstrations (the default policy's
    fast detectors), two rounds."""
    import torch

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("harden")
    policy = d / "base.yaml"
    policy.write_text(
        "version: 1\nname: base\ndetectors:\n"
        f"  rules:\n    rulesets: ['{RULES}']\n"
        "  demonstrations:\n    report_at: 0.3\n"
        "thresholds:\n  - detector: demonstrations\n    rule: PG-DEMO-TRIGGER\n    flag_at: 0.5\n    act_at: 0.7\n"
        "    action: sanitize\n"
    )
    cfg = HardenConfig(rounds=2, steps=3, batch=12, eval_samples=24, clean_train=40, clean_calib=80, clean_test=80,
                       detected_sample=16, validation=False, seed=1)
    out = d / "out"
    res = harden(out, cfg, policy_path=policy, log=lambda m: None)
    return res, out


def test_artifacts_are_versioned_with_parents_and_reports(run):
    res, out = run
    m1 = json.loads((out / "rounds" / "round-01" / "manifest.json").read_text())
    m2 = json.loads((out / "rounds" / "round-02" / "manifest.json").read_text())
    for m in (m1, m2):
        assert m["format"] == "promptguard-hardened" and m["format_version"] == 1
        assert m["created"] and m["id"].startswith("hd-") and m["weights_sha256"]
        assert {"evasion_rate", "fpr_calibration", "fpr_test"} <= set(m["metrics"])
    assert m1["parent"] is None
    assert m2["parent"]["id"] == m1["id"]
    final = json.loads((out / "detector" / "manifest.json").read_text())
    assert final["id"] == m2["id"]
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["rounds"]) == 2 and "round0" in rep
    assert (out / "report.md").read_text().startswith("# promptguard harden report")
    # the FPR budget held on the calibration prompts in every round (default mode: what the head adds)
    for r in rep["rounds"]:
        assert r["feasible"] and r["fpr_mode"] == "added"
        assert r["fpr_added_calibration"] <= rep["target_fpr"] + 1e-9
    assert (out / "generator" / "generator.pt").is_file()


def test_evasion_corpus_rows_are_valid_attacks(run):
    _, out = run
    rows = [json.loads(x) for x in (out / "attacks.jsonl").read_text().splitlines()]
    assert rows
    for row in rows[:40]:
        assert "ground_truth" in row and ("prompt" in row or "messages" in row)
        assert validate(Attack.from_record(row)).ok


def test_policy_loads_in_a_guard_that_agrees_with_the_loop(run):
    res, out = run
    guard = Guard(load_policy(out / "policy.yaml"))
    names = [d.name for d in guard.detectors]
    assert "hardened" in names
    final = res.states[-1]
    agree = 0
    rows = [json.loads(x) for x in (out / "attacks.jsonl").read_text().splitlines()][:30]
    for row in rows:
        segs = Attack.from_record(row).segments()
        loop_says = res.agent.flagged(final, segs)
        guard_says = guard.check(segs).action.value != "allow"
        agree += loop_says == guard_says
    assert agree == len(rows)


def _flagged_completion_row(run) -> dict:
    res, out = run
    guard = Guard(load_policy(out / "policy.yaml"))
    for x in (out / "attacks.jsonl").read_text().splitlines():
        row = json.loads(x)
        if row.get("prompt") and any(f.detector == "hardened" for f in guard.check(Attack.from_record(row).segments()).decision.reasons):
            return row
    pytest.fail("the final detector catches none of the completion-format evasions")


def test_scanner_uses_the_hardened_policy(run, tmp_path):
    _, out = run
    row = _flagged_completion_row(run)
    f = tmp_path / "poisoned.txt"
    f.write_text(row["prompt"], encoding="utf-8")
    r = CliRunner().invoke(app, ["scan", str(f), "--policy", str(out / "policy.yaml"), "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    rep = json.loads(r.stdout)
    dets = {fd["detector"] for fd in rep["files"][0]["findings"]}
    assert "hardened" in dets
    assert rep["files"][0]["verdict"] != "allow"
    assert "hardened" in rep["files"][0]["checks"]


def test_a_tampered_artifact_is_refused(run, tmp_path):
    _, out = run
    bad = tmp_path / "art"
    shutil.copytree(out / "detector", bad)
    load_artifact(bad)
    data = bytearray((bad / "head.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "head.npz").write_bytes(bytes(data))
    with pytest.raises(DetectorError, match="sha256"):
        HardenedDetector.from_path(bad)
    pol = tmp_path / "p.yaml"
    pol.write_text(f"detectors:\n  hardened:\n    path: {bad}\n")
    r = CliRunner().invoke(app, ["scan", str(pol), "--policy", str(pol)])
    assert r.exit_code == 2 and "sha256" in r.output


def test_proxy_builds_its_guard_from_the_hardened_policy(run):
    """The proxy with the hardened policy blocks a poisoned chat request before the
    upstream and forwards a clean one. The upstream is an in-process stand-in (an
    httpx mock transport): this test is about the proxy loading the artifact."""
    httpx = pytest.importorskip("httpx")
    try:
        from promptguard.proxy.app import create_app
        from promptguard.proxy.settings import load_settings
    except ImportError:
        pytest.skip("promptguard.proxy is not available")
    from fastapi.testclient import TestClient

    res, out = run
    guard = Guard(load_policy(out / "policy.yaml"))
    blocked = None
    for x in (out / "attacks.jsonl").read_text().splitlines():
        row = json.loads(x)
        if row.get("messages") and guard.check(Attack.from_record(row).segments()).action.value == "block":
            blocked = row
            break
    if blocked is None:
        pytest.fail("no chat-format evasion is blocked by the final detector")
    calls = []

    def upstream(request):
        calls.append(request)
        return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                         "choices": [{"index": 0, "finish_reason": "stop",
                                                      "message": {"role": "assistant", "content": "Fine."}}]})

    settings = load_settings(upstream="http://upstream.invalid/v1", policy=str(out / "policy.yaml"))
    proxy = create_app(settings, transport=httpx.MockTransport(upstream))
    names = {d.name for p in proxy.state.pg.profiles.values() for d in p.inspector.guard.detectors}
    assert "hardened" in names
    msgs = [{k: v for k, v in m.items() if k in ("role", "content", "name", "tool_call_id", "tool_calls")}
            for m in blocked["messages"]]
    with TestClient(proxy) as client:
        r = client.post("/v1/chat/completions", json={"model": "m", "messages": msgs})
        assert r.status_code == 400, r.text
        assert not calls
        ok = client.post("/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "What is the capital of Portugal?"}]})
        assert ok.status_code == 200, ok.text
        assert calls


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
    fams = {row["family"] for row in rows}
    assert fams == {"demo", "inject"}
    for row in rows:
        a = Attack.from_record(row)
        assert validate(a).ok
        if row["family"] == "demo":
            # built on the user's own demonstrations, in their own format
            assert "Q: Is a week longer than a day?" in row["prompt"] or "Is a week" in row["prompt"]
            assert row["ground_truth"]["poisoned_demos"]
        else:
            assert any("booking assistant" in (m.get("content") or "") for m in (row.get("messages") or [])) or \
                "booking assistant" in (row.get("prompt") or "")
    bad = CliRunner().invoke(app, ["redteam", str(tmp_path / "missing"), "-o", str(dest)])
    assert bad.exit_code == 2


def test_harden_cli_reports_bad_input(tmp_path):
    r = CliRunner().invoke(app, ["harden", "-o", str(tmp_path / "o"), "--policy", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "no such policy" in r.output
    r = CliRunner().invoke(app, ["harden", "-o", str(tmp_path / "o"), "--base-detectors", "nosuch", "--rounds", "0",
                                 "--no-validation"])
    assert r.exit_code == 2 and "nosuch" in r.output
