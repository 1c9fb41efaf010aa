"""A small rule set and policy of the tests' own, so that scanner, report and CLI
tests exercise the real rules engine without depending on the default rule set
(which other tests cover)."""

from __future__ import annotations

from pathlib import Path

RULES = """\
version: "test-1"
name: scan-tests
rules:
  - id: T-INJ-001
    description: Instruction override
    severity: high
    phrases: ["ignore all previous instructions", "disregard previous instructions"]
  - id: T-EXF-001
    description: Markdown image pointing at an outside server
    severity: medium
    patterns: ['!\\[[^\\]]*\\]\\(https?://']
"""


def write_policy(directory: Path, extra: str = "") -> Path:
    """rules.yaml + policy.yaml in `directory`: T-INJ-001 blocks, T-EXF-001 flags."""
    (directory / "rules.yaml").write_text(RULES, encoding="utf-8")
    policy = directory / "policy.yaml"
    policy.write_text(
        "version: 1\nname: scan-tests\non_error: block\n"
        "detectors:\n  rules:\n    rulesets: [rules.yaml]\n"
        "default: {flag_at: 0.5, act_at: 0.85, action: block}\n" + extra,
        encoding="utf-8",
    )
    return policy
