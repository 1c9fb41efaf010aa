"""Runs the competitors' rule-based scanners; executed INSIDE the side-by-side venv.

Invoked by `benchmarks/rules_side_by_side.py` as a subprocess:

    $SIDEBYSIDE_VENV/bin/python benchmarks/sidebyside_runner.py ROWS.jsonl OUT.json

ROWS.jsonl lines: {"id": str, "text": str, "segment": "query" | "context"}.
OUT.json: {"versions": {...}, "scanners": {name: {"flagged": [bool...], "seconds": [float...],
"errors": int, "config": str}}} in row order.

This file imports only the competitors (never promptguard) and does no I/O beyond
the two files. The configuration of every scanner is spelled out in
`rules_side_by_side.py`'s docstring; the lists live here.
"""

from __future__ import annotations

import json
import sys
import time
from importlib import metadata

# LLM Guard BanSubstrings: the English injection/jailbreak phrases a careful user
# would configure (LLM Guard ships no default list), matched as whole words,
# case-insensitive.
BAN_SUBSTRINGS = [
    "ignore previous instructions",
    "ignore all previous instructions",
    "ignore all instructions",
    "ignore the above",
    "ignore your instructions",
    "disregard previous instructions",
    "disregard all previous instructions",
    "disregard the above",
    "forget previous instructions",
    "forget all previous instructions",
    "forget your instructions",
    "forget everything",
    "new instructions",
    "system prompt",
    "reveal your instructions",
    "developer mode",
    "do anything now",
    "jailbreak",
    "jailbroken",
    "DAN mode",
    "no restrictions",
    "without restrictions",
    "unfiltered",
    "uncensored",
    "bypass your",
    "override your",
    "you are now",
    "pretend you are",
]

# LLM Guard Regex: a fair English injection set in the style of LLM Guard's
# documentation (its own example pattern, a bearer token, is kept).
REGEX_PATTERNS = [
    r"Bearer [A-Za-z0-9-._~+/]+",
    r"(?i)\b(?:ignore|disregard|forget)\s+(?:all\s+)?(?:the\s+)?(?:previous|prior|above|earlier)\s+(?:instructions|prompts|rules|directions)",
    r"(?i)\b(?:ignore|disregard|forget)\s+(?:all\s+)?your\s+(?:instructions|rules|guidelines|programming)",
    r"(?i)\b(?:reveal|show|print|repeat)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt|initial\s+instructions|instructions)",
    r"(?i)\byou\s+are\s+now\s+(?:DAN|in\s+developer\s+mode|unrestricted|jailbroken)",
    r"(?i)\bdo\s+anything\s+now\b",
    r"(?i)\bdeveloper\s+mode\s+(?:enabled|output)",
    r"<\|im_start\|>|<\|im_end\|>|\[INST\]|<<SYS>>",
]


def _llm_guard():
    from llm_guard.input_scanners import BanSubstrings, InvisibleText, Regex

    ban = BanSubstrings(substrings=BAN_SUBSTRINGS, match_type="word", case_sensitive=False,
                        redact=False, contains_all=False)
    regex = Regex(patterns=REGEX_PATTERNS, is_blocked=True, match_type="search", redact=False)
    inv = InvisibleText()

    def run(scanner):
        def f(text: str, segment: str) -> bool:
            _, valid, _ = scanner.scan(text)
            return not valid
        return f

    return {
        "llm-guard BanSubstrings": (run(ban), f"{len(BAN_SUBSTRINGS)} English phrases, match_type=word, case-insensitive"),
        "llm-guard Regex": (run(regex), f"{len(REGEX_PATTERNS)} patterns, match_type=search"),
        "llm-guard InvisibleText": (run(inv), "defaults (Unicode categories Cf, Co, Cn)"),
    }


def _llamafirewall():
    from llamafirewall import (
        LlamaFirewall,
        Role,
        ScanDecision,
        ScannerType,
        ToolMessage,
        UserMessage,
    )

    def make(kind):
        fw = LlamaFirewall({Role.USER: [kind], Role.TOOL: [kind]})

        def f(text: str, segment: str) -> bool:
            msg = ToolMessage(content=text) if segment == "context" else UserMessage(content=text)
            return fw.scan(msg).decision != ScanDecision.ALLOW
        return f

    return {
        "llamafirewall REGEX": (make(ScannerType.REGEX), "default patterns; user rows as UserMessage, context rows as ToolMessage"),
        "llamafirewall HIDDEN_ASCII": (make(ScannerType.HIDDEN_ASCII), "defaults; same message roles"),
    }


def main() -> int:
    rows_path, out_path = sys.argv[1], sys.argv[2]
    with open(rows_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    scanners = {**_llm_guard(), **_llamafirewall()}
    out: dict = {"versions": {p: metadata.version(p) for p in ("llm-guard", "llamafirewall")}, "scanners": {}}
    for name, (fn, config) in scanners.items():
        fn("warm up", "query")
        flagged, seconds, errors = [], [], 0
        for r in rows:
            t0 = time.perf_counter()
            try:
                hit = bool(fn(r["text"], r.get("segment", "query")))
            except Exception as e:  # noqa: BLE001 - counted, reported
                errors += 1
                hit = False
                print(f"{name}: {r.get('id')}: {type(e).__name__}: {e}", file=sys.stderr)
            seconds.append(time.perf_counter() - t0)
            flagged.append(hit)
        out["scanners"][name] = {"flagged": flagged, "seconds": seconds, "errors": errors, "config": config}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
