"""Policies: loading (loud, line-accurate errors) and deciding (findings → action)."""

from __future__ import annotations

import pytest

from promptguard.findings import Finding, Severity
from promptguard.policy import Action, Policy, Threshold, default_policy_path, load_policy, policy_from_text
from promptguard.segments import SegmentKind as K
from promptguard.yamlutil import YamlError


def finding(score, *, rule="PG-X-001", kind=K.QUERY, detector="rules", index=0):
    return Finding(detector=detector, segment_kind=kind, segment_index=index, score=score,
                   severity=Severity.from_score(score), message=f"{rule} fired", rule=rule)


POLICY = """
version: 1
name: test
on_error: block
detectors:
  rules: {}
default: {flag_at: 0.5, act_at: 0.85, action: block}
thresholds:
  - rule: "PG-EXF-*"
    flag_at: 0.3
    act_at: 0.6
    action: sanitize
  - rule: "PG-EXF-*"
    kinds: [demonstration]
    flag_at: 0.2
    act_at: 0.4
    action: block
  - detector: rules
    kinds: [context]
    flag_at: 0.9
    act_at: 0.99
    action: flag
"""


@pytest.fixture(scope="module")
def pol() -> Policy:
    return policy_from_text(POLICY)


def test_the_packaged_default_policy_loads():
    p = load_policy()
    assert p.name == "default" and "rules" in p.enabled_detectors()
    assert default_policy_path().is_file()
    assert p.base_dir == default_policy_path().resolve().parent


@pytest.mark.parametrize("score, action", [(0.1, Action.ALLOW), (0.5, Action.FLAG), (0.84, Action.FLAG),
                                           (0.85, Action.BLOCK), (1.0, Action.BLOCK)])
def test_default_threshold(pol, score, action):
    assert pol.decide([finding(score)]).action is action


def test_most_specific_threshold_wins(pol):
    assert pol.action_for(finding(0.35, rule="PG-EXF-002")) is Action.FLAG
    assert pol.action_for(finding(0.7, rule="PG-EXF-002")) is Action.SANITIZE
    # rule + kinds beats rule alone
    assert pol.action_for(finding(0.45, rule="PG-EXF-002", kind=K.DEMONSTRATION)) is Action.BLOCK
    # detector + kinds beats the default: context findings are only ever flagged
    assert pol.action_for(finding(0.95, kind=K.CONTEXT)) is Action.FLAG
    assert pol.action_for(finding(0.85, kind=K.CONTEXT)) is Action.ALLOW
    # detector (4) + kinds (1) = 5 beats rule (2) + kinds (1) = 3
    assert pol.threshold_for(finding(0.7, rule="PG-EXF-002", kind=K.CONTEXT)).action == "flag"


def test_decision_takes_the_most_severe_action_and_orders_reasons(pol):
    fs = [finding(0.55, index=0), finding(0.7, rule="PG-EXF-001", index=1), finding(0.2, index=2),
          finding(0.9, index=3)]
    d = pol.decide(fs, checks=["rules"])
    assert d.action is Action.BLOCK and d.blocked
    assert [f.segment_index for f in d.reasons] == [3, 1, 0]  # allow-level finding 2 is no reason
    assert d.actions == [Action.BLOCK, Action.SANITIZE, Action.FLAG]
    assert d.findings == fs and d.checks == ["rules"]
    assert d.summary().startswith("block: rules/PG-X-001 on query[3]")
    out = d.to_dict()
    assert out["action"] == "block" and out["reasons"][0]["action"] == "block" and len(out["reasons"]) == 3


def test_no_findings_allows_and_errors_follow_on_error(pol):
    assert pol.decide([]).action is Action.ALLOW
    d = pol.decide([finding(0.6)], errors=["rules: RuntimeError: boom"])
    assert d.action is Action.BLOCK and d.errors == ["rules: RuntimeError: boom"]
    open_pol = policy_from_text(POLICY.replace("on_error: block", "on_error: allow"))
    assert open_pol.decide([], errors=["x"]).action is Action.ALLOW
    assert open_pol.decide([finding(0.6)], errors=["x"]).action is Action.FLAG
    assert "allow: x" == open_pol.decide([], errors=["x"]).summary()


def test_escalate_only_raises():
    d = policy_from_text(POLICY).decide([finding(0.6)])
    d.escalate(Action.ALLOW, "no")
    assert d.action is Action.FLAG and d.errors == []
    d.escalate(Action.BLOCK, "cannot sanitize")
    assert d.action is Action.BLOCK and d.errors == ["cannot sanitize"]


def test_disabled_detectors_and_options():
    p = policy_from_text("detectors:\n  rules:\n    enabled: false\n    rulesets: [x.yaml]\n")
    assert p.enabled_detectors() == {}
    p = policy_from_text("detectors:\n  rules:\n    rulesets: [x.yaml]\n")
    assert p.enabled_detectors() == {"rules": {"rulesets": ["x.yaml"]}}


def test_threshold_order_is_validated():
    with pytest.raises(ValueError, match="act_at"):
        Threshold(flag_at=0.9, act_at=0.1)


@pytest.mark.parametrize("text, line, problem", [
    ("version: 1\ndetectors:\n  rules: {}\n  nosuch: {}\n", 4, "unknown detector 'nosuch'"),
    ("thresholds:\n  - detector: rules\n    flag_at: 2\n", 3, "thresholds.0.flag_at"),
    ("thresholds:\n  - detector: rules\n    flag_at: 0.9\n    act_at: 0.5\n", 4, "act_at (0.5) is below flag_at (0.9)"),
    ("thresholds:\n  - detector: rulez\n", 2, "unknown detector 'rulez'"),
    ("thresholds:\n  - kinds: [query, bogus]\n", 2, "thresholds.0.kinds.1"),
    ("version: 1\nfoo: 1\n", 2, "foo: Extra inputs are not permitted"),
    ("version: 1\nname: a\nversion: 2\n", 3, "key 'version' is given twice"),
    ("name: x\ndetectors: [\n", 3, "YAML syntax error"),
    ("", 1, "the file is empty"),
    ("- a\n- b\n", 1, "expected a mapping at the top level, got list"),
    ("on_error: maybe\n", 1, "on_error"),
    ("default:\n  action: nuke\n", 2, "default.action"),
    ("detectors:\n  rules:\n    enabled: perhaps\n", 3, "detectors.rules.enabled"),
])
def test_invalid_policy_files_fail_with_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(YamlError) as ei:
        load_policy(path)
    e = ei.value
    assert str(e).startswith(f"{path}:{line}: "), str(e)
    assert problem in str(e)
    assert e.line == line and e.path == str(path)


def test_missing_policy_file(tmp_path):
    with pytest.raises(YamlError, match="cannot read"):
        load_policy(tmp_path / "none.yaml")


def test_trust_section_per_face():
    pol = load_policy()
    assert pol.trusted_kinds("scanner") == frozenset()          # a prompt library is someone else's text
    assert pol.trusted_kinds("proxy") == pol.trusted_kinds("langchain") == pol.trusted_kinds("api") == {K.INSTRUCTION}
    assert Policy().trusted_kinds("scanner") == frozenset() and Policy().trusted_kinds() == {K.INSTRUCTION}
    with pytest.raises(YamlError) as e:
        policy_from_text("version: 1\ntrust:\n  proxy: [system]\n", name="p.yaml")
    assert "p.yaml:3" in str(e.value) and "trust.proxy" in str(e.value)
    with pytest.raises(YamlError, match="trust.cli"):
        policy_from_text("version: 1\ntrust:\n  cli: []\n", name="p.yaml")


def test_thresholds_can_match_segment_sources():
    from promptguard.findings import Finding, Severity
    from promptguard.policy import policy_from_text
    from promptguard.segments import SegmentKind

    pol = policy_from_text("""
thresholds:
  - {detector: embeddings, kinds: [context], flag_at: 0.83, act_at: 0.9, action: sanitize}
  - {detector: embeddings, sources: ["tools:*"], flag_at: 0.93, act_at: 0.99, action: block}
""")

    def f(source):
        return Finding("embeddings", SegmentKind.CONTEXT, 0, 0.94, Severity.HIGH, "m", source=source)

    assert pol.action_for(f("tools:book_flight")) is Action.FLAG  # the sources entry is more specific
    assert pol.action_for(f("tool:search")) is Action.SANITIZE
    assert pol.action_for(f(None)) is Action.SANITIZE
