"""Scan reports: JSON (stable shape), SARIF 2.1.0 (GitHub code scanning), table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .scanner import ScanReport

__all__ = ["to_json", "to_sarif", "print_table"]

_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"block": "error", "sanitize": "error", "flag": "warning", "allow": "note"}


def to_json(report: ScanReport, indent: int | None = 2) -> str:
    return json.dumps(report.to_dict(), indent=indent, ensure_ascii=False)


def _rule_id(f: dict[str, Any]) -> str:
    return f["rule"] or f["detector"]


def _uri(path: str) -> str:
    p = Path(path)
    try:
        p = p.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        p = p.resolve()
    return p.as_posix()


def to_sarif(report: ScanReport) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for fr in report.files:
        uri = _uri(fr.path)
        if fr.error:
            notifications.append({
                "level": "error",
                "message": {"text": f"{fr.path}: {fr.error}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
            })
        for f in fr.findings:
            rid = _rule_id(f)
            level = _LEVEL.get(f.get("action", "flag"), "warning")
            if rid not in rules:
                rules[rid] = {
                    "id": rid,
                    "name": rid.replace("-", "").replace("/", ""),
                    "shortDescription": {"text": f["message"][:200]},
                    "properties": {"detector": f["detector"], "tags": ["security", "llm"]},
                    "defaultConfiguration": {"level": level},
                }
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
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": region}}],
                "properties": {
                    "segment_kind": f["segment_kind"],
                    "segment_index": f["segment_index"],
                    "score": f["score"],
                    "severity": f["severity"],
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
        "results": results,
        "invocations": [{
            "executionSuccessful": True,
            "toolExecutionNotifications": notifications,
        }],
    }
    return {"$schema": _SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


_STYLE = {"block": "bold red", "sanitize": "bold magenta", "flag": "yellow", "allow": "green", "error": "red"}


def print_table(report: ScanReport, file: TextIO | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, highlight=False, soft_wrap=False)
    table = Table(show_lines=False, expand=False)
    for col in ("location", "verdict", "segment", "detector/rule", "score", "message", "evidence"):
        table.add_column(col, overflow="fold")
    rows = 0
    for fr in report.files:
        if fr.error:
            table.add_row(fr.path, f"[red]error[/]", "", "", "", fr.error, "")
            rows += 1
        for f in fr.findings:
            act = f.get("action", "flag")
            who = f"{f['detector']}/{f['rule']}" if f["rule"] else f["detector"]
            ev = (f.get("evidence") or "").replace("\n", "⏎")[:60]
            table.add_row(
                f"{fr.path}:{f.get('line', 1)}",
                f"[{_STYLE.get(act, '')}]{act}[/]",
                f"{f['segment_kind']}[{f['segment_index']}]",
                who,
                f"{f['score']:.2f}",
                f["message"],
                ev,
            )
            rows += 1
    if rows:
        console.print(table)
    s = report.summary
    v = s["verdicts"]
    console.print(
        f"[bold]{s['files']} files[/] scanned in {s['seconds']:.2f}s: "
        + ", ".join(f"[{_STYLE[k]}]{v[k]} {k}[/]" for k in ("block", "sanitize", "flag", "allow", "error"))
        + f"; {s['findings']} findings (policy {s['policy']})"
    )
