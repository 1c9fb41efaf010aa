"""Scan reports: JSON (stable shape), SARIF 2.1.0 (GitHub code scanning), table."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from . import __version__
from .scanner import ScanReport

__all__ = ["to_json", "to_sarif", "print_table"]

_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"block": "error", "sanitize": "error", "flag": "warning", "allow": "note"}


def to_json(report: ScanReport, indent: int | None = None) -> str:
    """The report as JSON. By default one file object per line (compact, fast for
    large libraries, easy to grep); `indent` pretty-prints the whole document."""
    data = report.to_dict()
    if indent is not None:
        return json.dumps(data, indent=indent, ensure_ascii=False)
    files = ",\n".join(json.dumps(f, ensure_ascii=False) for f in data["files"])
    summary = json.dumps(data["summary"], ensure_ascii=False)
    return '{"files": [\n' + files + ('\n' if files else '') + '],\n"summary": ' + summary + "}"


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


def _fingerprint(uri: str, f: dict[str, Any]) -> str:
    key = "\0".join(str(x) for x in (uri, _rule_id(f), f["segment_kind"], f["segment_index"], f.get("evidence", "")))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def to_sarif(report: ScanReport, root: str | Path | None = None) -> dict[str, Any]:
    """SARIF 2.1.0 for GitHub code scanning: one result per finding (rule id, file,
    line), files that could not be scanned as tool execution notifications.

    Paths under `root` (default: the current directory, where CI checks the
    repository out) become relative URIs based at %SRCROOT%.
    """
    base = Path(root or Path.cwd()).resolve()
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
        for f in fr.findings:
            rid = _rule_id(f)
            level = _LEVEL.get(f.get("action", "flag"), "warning")
            rule = rules.get(rid)
            if rule is None:
                rule = rules[rid] = {
                    "id": rid,
                    "name": "".join(ch for ch in rid.title() if ch.isalnum()),
                    "shortDescription": {"text": f["message"][:200]},
                    "fullDescription": {"text": f["message"]},
                    "defaultConfiguration": {"level": level},
                    "properties": {"detector": f["detector"], "tags": ["security", "llm", "prompt-injection"]},
                }
            # GitHub ranks security alerts by this (0-10, as a string)
            sev = max(float(rule["properties"].get("security-severity", 0)), round(f["score"] * 10, 1))
            rule["properties"]["security-severity"] = f"{sev:.1f}"
            region: dict[str, Any] = {"startLine": max(1, int(f.get("line") or 1))}
            if f.get("evidence"):
                region["snippet"] = {"text": f["evidence"][:200]}
            results.append({
                "ruleId": rid,
                "level": level,
                "message": {
                    "text": f"{f['message']} ({f['segment_kind']}[{f['segment_index']}], "
                            f"score {f['score']:.2f}, action {f.get('action', '?')})"
                },
                "locations": [{"physicalLocation": {"artifactLocation": dict(artifact), "region": region}}],
                "partialFingerprints": {"promptguardFinding/v1": _fingerprint(uri, f)},
                "properties": {
                    "segment_kind": f["segment_kind"],
                    "segment_index": f["segment_index"],
                    "score": f["score"],
                    "severity": f["severity"],
                    "action": f.get("action"),
                },
            })
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "promptguard",
                "version": __version__,
                "informationUri": "https://github.com/promptguard/promptguard",
                "rules": list(rules.values()),
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
        "results": results,
        "invocations": [{
            "executionSuccessful": True,
            "toolExecutionNotifications": notifications,
        }],
    }
    return {"$schema": _SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


_STYLE = {"block": "bold red", "sanitize": "bold magenta", "flag": "yellow", "allow": "green", "error": "red"}


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(report: ScanReport, file: TextIO | None = None, *, color: bool | None = None) -> None:
    """The terminal report: one line per finding at or above its flag threshold
    (location, action, segment, detector/rule, score, message, evidence), one per
    file that could not be scanned or was decided without findings (a detector
    error), then a summary."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=file, highlight=False, soft_wrap=True, no_color=color is False,
                      force_terminal=color or None)
    hidden = 0  # findings below their flag threshold: in the JSON report, not here
    for fr in report.files:
        if fr.error:
            console.print(f"{escape(fr.path)}  [{_STYLE['error']}]error[/]  {escape(fr.error)}")
            continue
        for f in fr.findings:
            act = f.get("action", "flag")
            if act == "allow":
                hidden += 1
                continue
            who = f"{f['detector']}/{f['rule']}" if f["rule"] else f["detector"]
            ev = _one_line(f.get("evidence") or "", 60)
            console.print(
                f"{escape(fr.path)}:{f.get('line', 1)}  [{_STYLE.get(act, '')}]{act}[/]  "
                f"{f['segment_kind']}[{f['segment_index']}]  {escape(who)}  {f['score']:.2f}  "
                f"{escape(_one_line(f['message'], 100))}" + (f"  [dim]{escape(repr(ev))}[/]" if ev else "")
            )
        if not fr.findings and fr.verdict != "allow":
            why = "; ".join(fr.warnings) or "decided by policy"
            console.print(f"{escape(fr.path)}  [{_STYLE.get(fr.verdict, '')}]{fr.verdict}[/]  {escape(why)}")
    s = report.summary
    v = s["verdicts"]
    rate = f", {s['files_per_second']:.0f} files/s" if s.get("files_per_second") and s["files"] >= 100 else ""
    console.print(
        f"[bold]{s['files']} files[/] scanned in {s['seconds']:.2f}s{rate}: "
        + ", ".join(f"[{_STYLE[k]}]{v[k]} {k}[/]" for k in ("block", "sanitize", "flag", "allow", "error"))
        + f"; {s['findings']} findings"
        + (f" ({hidden} below the flag threshold not shown; see --format json)" if hidden else "")
        + f" (policy {escape(str(s['policy']))})"
    )
