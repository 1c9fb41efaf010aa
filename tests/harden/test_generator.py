"""The Generator agent: REINFORCE really raises its reward against a fixed detector."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from promptguard.guard import Guard  # noqa: E402
from promptguard.harden.attack_space import AttackSpace  # noqa: E402
from promptguard.harden.dut import DetectorUnderTest  # noqa: E402
from promptguard.harden.generator import Generator, GeneratorConfig, GeneratorError  # noqa: E402
from promptguard.policy import default_policy_path, policy_from_text  # noqa: E402
from promptguard.segments import SegmentKind  # noqa: E402

RULES = default_policy_path().parent / "rules" / "default.yaml"


@pytest.fixture(scope="module")
def rules_dut() -> DetectorUnderTest:
    """The real rules detector under the real policy machinery (fixed: no retraining)."""
    pol = policy_from_text(f"detectors:\n  rules:\n    rulesets: ['{RULES}']\n")
    return DetectorUnderTest.from_guard(Guard(pol))


def test_reward_rises_against_the_rules_detector(rules_dut):
    torch.set_num_threads(1)
    space = AttackSpace()
    g = Generator(GeneratorConfig(lr=0.05), seed=3)
    hist = g.train(space, lambda a: rules_dut.flagged(a.segments()), steps=10, batch=20)
    first, last = hist.mean_reward(first=3), hist.mean_reward(last=3)
    assert last > first + 0.15, (first, last)
    # it did not get there by collapsing onto one trick
    assert hist.steps[-1].entropy > 2.0
    # the samples it learned from are real: valid ones validate and were judged by the detector
    assert any(s.evaded for s in hist.samples) and any(not s.valid for s in hist.samples)


def test_learns_what_a_fixed_scorer_punishes():
    """A deterministic stand-in detector (a fake, on purpose: the test is about the
    policy's learning, not about detection) flags every prompt with a worked
    example. The generator must learn to spend its samples on injections."""
    torch.set_num_threads(1)
    dut = DetectorUnderTest.from_callable(
        lambda segs: 1.0 if any(s.kind is SegmentKind.DEMONSTRATION for s in segs) else 0.0, name="no-demos")
    space = AttackSpace()
    g = Generator(GeneratorConfig(lr=0.1, entropy_coef=0.01), seed=0)
    start, _ = g.evasion_rate(space, lambda a: dut.flagged(a.segments()), n=64)
    g.train(space, lambda a: dut.flagged(a.segments()), steps=8, batch=16, keep_samples=False)
    end, samples = g.evasion_rate(space, lambda a: dut.flagged(a.segments()), n=64)
    assert end > start + 0.2, (start, end)
    assert g.distributions()["family"]["inject"] > 0.7


def test_save_load_roundtrip_and_refusal(tmp_path):
    g = Generator(seed=1)
    space = AttackSpace()
    g.train(space, lambda a: False, steps=2, batch=8, keep_samples=False)
    g.save(tmp_path / "gen")
    h = Generator.load(tmp_path / "gen")
    assert g.distributions() == h.distributions()
    (tmp_path / "bad").mkdir()
    with pytest.raises(GeneratorError):
        Generator.load(tmp_path / "bad")
    meta = (tmp_path / "gen" / "generator.json").read_text()
    (tmp_path / "gen" / "generator.json").write_text(meta.replace('"space": "', '"space": "x'))
    with pytest.raises(GeneratorError, match="another attack space"):
        Generator.load(tmp_path / "gen")


def test_forced_choices_are_respected():
    g = Generator(seed=2)
    cons, logp, ent = g.sample(AttackSpace(), 6, force={"family": "inject", "obfuscation": "base64"})
    assert all(c.family == "inject" and c.get("obfuscation") == "base64" for c in cons)
