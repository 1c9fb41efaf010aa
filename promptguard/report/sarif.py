"""SARIF 2.1.0 for GitHub code scanning (and any SARIF viewer).

Conventions code-scanning users expect:
- results only for findings at or above their flag threshold (what a reviewer must look
  at); `everything=True` adds the ones below it as `note`s;
- one rule per rule id, with its description, help text (what it catches, an example,
  what to do) and a `security-severity` GitHub ranks alerts by;
- `partialFingerprints` that survive edits elsewhere in the file, so a re-run updates the
  same alerts instead of opening new ones: they hash the file, the rule, the evidence
  and which occurrence of that evidence it is, not the line;
- the tool's name and version; files that could not be scanned as tool execution
  notifications.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..scanner import ScanReport
from .common import shown_findings, who

__all__ = ["DETECTOR_HELP", "FINGERPRINT_KEY", "to_sarif"]

_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"block": "error", "sanitize": "error", "flag": "warning", "allow": "note"}
INFORMATION_URI = "https://github.com/promptguard/promptguard"
FINGERPRINT_KEY = "promptguardFinding/v2"

# What each detector's findings mean and what to do about them (the rule help's second half).
DETECTOR_HELP: dict[str, str] = {
    "rules": "A versioned pattern rule (policies/rules/*.yaml) matched text that injections, jailbreaks or "
             "exfiltration attempts use. If the file is yours and the text is meant (a system prompt quoting an "
             "attack to refuse it), reword it or raise the rule's threshold in your policy; otherwise remove it.",
    "demonstrations": "A few-shot or chain-of-thought demonstration looks backdoored (BadChain): a trigger phrase "
                      "in its question and an extra reasoning step that changes an already derived answer. Remove "
                      "or rewrite the demonstrations named, and the trigger wherever it appears.",
    "embeddings": "The text resembles known prompt-injection attacks (embedding similarity and a learned head over "
                  "MiniLM token windows). Read the highlighted window; a role prompt can score high too.",
    "classifier": "A fine-tuned classifier scores the text as a likely prompt injection. Read the highlighted "
                  "sentence or window and remove what addresses the model on someone else's behalf.",
    "baseline": "The segment is far from this application's own normal prompts (kNN over embeddings, threshold "
                "calibrated to a target false-positive rate): unusual, not necessarily hostile.",
    "exfiltration": "An answer carries data to an outside host (image, link, tool URL) or repeats the system prompt.",
}
_GENERIC_HELP = "A promptguard detector flagged this text. See the message and the evidence."


def _rule_id(f: dict[str, Any]) -> str:
    return f["rule"] or f["detector"]


def _uri(path: str, root: Path) -> tuple[str, bool]:
    """(uri, relative): a path under `root` as a relative URI reference (GitHub code
    scanning resolves it against the repository), anything else as a file:// URI."""
    p = Path(path).resolve()
    try:
        rel = p.relative_to(root)
    except ValueError:
        return p.as_uri(), False
    return quote(rel.as_posix(), safe="/"), True


def _fingerprint(uri: str, f: dict[str, Any], occurrence: int) -> str:
    evidence = " ".join(str(f.get("evidence") or "").split()).lower()
    key = "\0".join((uri, _rule_id(f), f["segment_kind"], evidence, str(occurrence)))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _help(rid: str, f: dict[str, Any], doc: Mapping[str, Any] | None) -> tuple[str, str]:
    """(text, markdown) for a rule's help."""
    detector = f["detector"]
    what = (doc or {}).get("description") or f["message"]
    examples = list((doc or {}).get("examples") or [])[:2]
    refs = list((doc or {}).get("references") or [])
    advice = DETECTOR_HELP.get(detector, _GENERIC_HELP)
    text = f"{rid} ({detector}): {what}. {advice}"
    md = f"**{rid}** (`{detector}` detector): {what}.\n\n{advice}"
    if examples:
        text += " Example that fires: " + " | ".join(repr(e) for e in examples)
        md += "\n\nExamples that fire:\n" + "\n".join(f"- `{e.replace('`', chr(39))}`" for e in examples)
    if refs:
        md += "\n\nReferences: " + ", ".join(refs)
    return text, md


def to_sarif(report: ScanReport, root: str | Path | None = None, *, everything: bool = False) -> dict[str, Any]:
    """SARIF 2.1.0: one result per finding at or above its flag threshold (`everything`:
    all findings, those below as `note`), files that could not be scanned as tool
    execution notifications.

    Paths under `root` (default: the current directory, where CI checks the
    repository out) become relative URIs based at %SRCROOT%.
    """
    base = Path(root or Path.cwd()).resolve()
    docs = getattr(report, "rules", None) or {}
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for fr in report.files:
        uri, relative = _uri(fr.path, base)
        artifact: dict[str, Any] = {"uri": uri}
        if relative:
            artifact["uriBaseId"] = "%SRCROOT%"
        if fr.error:
            notifications.append({
                "level": "error",
                "message": {"text": f"{fr.path}: {fr.error}"},
                "locations": [{"physicalLocation": {"artifactLocation": artifact}}],
            })
        seen: dict[tuple[str, str], int] = {}
        for f in shown_findings(fr, everything):
            rid = _rule_id(f)
            action = f.get("action", "flag")
            level = _LEVEL.get(action, "warning")
            rule = rules.get(rid)
            if rule is None:
                text, md = _help(rid, f, docs.get(rid))
                doc = docs.get(rid) or {}
                rule = rules[rid] = {
                    "id": rid,
                    "name": "".join(ch for ch in rid.title() if ch.isalnum()),
                    "shortDescription": {"text": (doc.get("description") or f["message"])[:200]},
                    "fullDescription": {"text": doc.get("description") or f["message"]},
                    "help": {"text": text, "markdown": md},
                    "helpUri": (doc.get("references") or [INFORMATION_URI + "/blob/main/docs/scanner.md"])[0],
                    "defaultConfiguration": {"level": level},
                    "properties": {"detector": f["detector"], "tags": ["security", "llm", "prompt-injection"]},
                }
            # GitHub ranks security alerts by this (0-10, as a string)
            sev = max(float(rule["properties"].get("security-severity", 0)), round(f["score"] * 10, 1))
            rule["properties"]["security-severity"] = f"{sev:.1f}"
            region: dict[str, Any] = {"startLine": max(1, int(f.get("line") or 1))}
            if f.get("evidence"):
                region["snippet"] = {"text": f["evidence"][:200]}
            occ_key = (rid, " ".join(str(f.get("evidence") or "").split()).lower())
            occurrence = seen.get(occ_key, 0)
            seen[occ_key] = occurrence + 1
            results.append({
                "ruleId": rid,
                "level": level,
                "message": {
                    "text": f"{f['message']} ({who(f)} on {f['segment_kind']}[{f['segment_index']}], "
                            f"score {f['score']:.2f}, action {action})"
                },
                "locations": [{"physicalLocation": {"artifactLocation": dict(artifact), "region": region}}],
                "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(uri, f, occurrence)},
                "properties": {
                    "segment_kind": f["segment_kind"],
                    "segment_index": f["segment_index"],
                    "score": f["score"],
                    "severity": f["severity"],
                    "action": action,
                    "verdict": fr.verdict,
                },
            })
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "promptguard",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": list(rules.values()),
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
        "results": results,
        "invocations": [{
            # the scan ran; a file it could not read is a notification, not a failed run
            "executionSuccessful": True,
            "toolExecutionNotifications": notifications,
        }],
    }
    return {"$schema": _SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
