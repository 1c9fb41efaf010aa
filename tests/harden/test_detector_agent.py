"""The Detector agent: retraining respects the false-positive constraint on fresh
clean data, and catches what got through."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest

from promptguard.findings import Finding
from promptguard.harden.attack_space import AttackSpace, ConstructionError
from promptguard.harden.detector_agent import BaseScorer, DetectorAgent, DetectorState
from promptguard.harden.features import Featurizer
from promptguard.harden.validation import clean_prompts
from promptguard.harden.validator import validate
from promptguard.policy import default_policy_path, policy_from_text
from promptguard.segments import SegmentKind

RULES = default_policy_path().parent / "rules" / "default.yaml"
TARGET = 0.05


def _attacks(space: AttackSpace, n: int, seed: int):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        c = space.random_construction(rng)
        try:
            a = space.build(c)
        except ConstructionError:
            continue
        if validate(a).ok:
            out.append(a)
    return out


@pytest.fixture(scope="module")
def data():
    pol = policy_from_text(f"detectors:\n  rules:\n    rulesets: ['{RULES}']\n")
    agent = DetectorAgent(BaseScorer(pol), Featurizer(), target_fpr=TARGET, tune_base=True)
    space = AttackSpace()
    atk = [agent.record_attack(a) for a in _attacks(space, 120, 1)]
    train = [agent.record(s) for s, _ in clean_prompts(space, 160, 11)]
    calib = [agent.record(s) for s, _ in clean_prompts(space, 300, 22)]
    fresh = [agent.record(s) for s, _ in clean_prompts(space, 300, 33)]
    return agent, atk, train, calib, fresh


def test_retraining_respects_the_fpr_target_on_fresh_clean_data(data):
    agent, atk, train, calib, fresh = data
    head, info = agent.fit(atk + train)
    assert info["text"]["fitted"] and info["demo"]["fitted"]
    taus, t, high, cinfo = agent.choose(head, atk, calib)
    assert cinfo["feasible"]
    state = DetectorState(taus, head, t, high, 1)
    assert agent.fpr(state, calib) <= TARGET + 1e-9
    # held-out clean prompts never used to choose anything: within the target (+ sampling slack)
    assert agent.fpr(state, fresh) <= TARGET + 0.03
    # and the head adds real recall over the base detectors on what it was trained against
    base_only = DetectorState(np.zeros(len(agent.base.names)), None)
    assert agent.recall(state, atk) > agent.recall(base_only, atk) + 0.3


def test_added_mode_keeps_the_base_and_bounds_what_the_head_adds(data):
    agent, atk, train, calib, fresh = data
    added = DetectorAgent(agent.base, agent.fz, target_fpr=TARGET, tune_base=False)
    head, _ = added.fit(atk + train)
    taus, t, high, info = added.choose(head, atk, calib)
    assert info["mode"] == "added" and not np.any(taus)  # the policy's own base thresholds
    state = DetectorState(taus, head, t, high)
    base = DetectorState(taus, None)
    assert added.fpr(state, calib) - added.fpr(base, calib) <= TARGET + 1e-9
    assert added.fpr(state, fresh) - added.fpr(base, fresh) <= TARGET + 0.03
    assert added.recall(state, atk) >= added.recall(base, atk)


def test_a_tighter_target_costs_recall_not_false_positives(data):
    agent, atk, train, calib, fresh = data
    head, _ = agent.fit(atk + train)
    loose = agent.choose(head, atk, calib)
    strict_agent = DetectorAgent(agent.base, agent.fz, target_fpr=0.025, tune_base=True)
    strict = strict_agent.choose(head, atk, calib)
    s_state = DetectorState(strict[0], head, strict[1], strict[2])
    assert strict_agent.fpr(s_state, calib) <= 0.025 + 1e-9
    assert strict[3]["recall"] <= loose[3]["recall"]
    assert strict[1] >= loose[1]


class NoisyDetector:
    """A stand-in base detector (a fake, on purpose: the test is about threshold
    tuning) that flags a third of all prompts, clean or not, at score 0.6, and
    injections' payload segments at 0.95."""

    name = "noisy"

    def detect(self, segments):
        out = []
        for s in segments:
            h = zlib.crc32(s.text.encode()) % 3
            if h == 0:
                out.append(Finding.on(s, detector=self.name, score=0.6, message="noise"))
        return out


def test_base_thresholds_are_retuned_when_the_base_alone_breaks_the_budget(data):
    agent, atk, train, calib, fresh = data
    pol = policy_from_text("detectors:\n  rules:\n    enabled: false\n")
    base = BaseScorer(pol, detectors=[NoisyDetector()])
    fixed = DetectorAgent(base, agent.fz, target_fpr=TARGET, tune_base=False)
    tuned = DetectorAgent(base, agent.fz, target_fpr=TARGET, tune_base=True)
    recs = lambda ag, rs: [ag.record(r_segs) for r_segs in rs]  # noqa: E731
    space = AttackSpace()
    cal = recs(tuned, [s for s, _ in clean_prompts(space, 80, 44)])
    atks = [tuned.record_attack(a) for a in _attacks(space, 60, 2)]
    head, _ = tuned.fit(atks + recs(tuned, [s for s, _ in clean_prompts(space, 60, 55)]))
    assert np.mean([r.base.max() >= 0.6 for r in cal]) > TARGET  # the base alone is over budget
    taus, t, high, info = fixed.choose(head, atks, cal)
    # kept as the policy says: the whole detector stays over budget, the head adds no more than its share
    st = DetectorState(taus, head, t, high)
    assert info["mode"] == "added" and not np.any(taus)
    assert fixed.fpr(st, cal) > TARGET
    assert fixed.fpr(st, cal) - fixed.fpr(DetectorState(taus, None), cal) <= TARGET + 1e-9
    taus, t, high, info = tuned.choose(head, atks, cal)
    assert info["feasible"] and taus[0] > 0.6  # the noisy detector's threshold was raised past its noise
    st = DetectorState(taus, head, t, high)
    assert tuned.fpr(st, cal) <= TARGET + 1e-9


def test_labels_reach_the_right_views(data):
    agent, atk, *_ = data
    demo_pos = sum(sum(1 for y in r.demo_labels if y == 1) for r in atk)
    text_pos = sum(sum(1 for y in r.text_labels if y == 1) for r in atk)
    assert demo_pos > 0 and text_pos > 0
    for r in atk:
        # poisoned demonstrations are never text-view positives
        for k, y in zip(r.pf.text_keys, r.text_labels):
            if k[0] is SegmentKind.DEMONSTRATION:
                assert y != 1
