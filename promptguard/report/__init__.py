"""Scan reports: JSON (the stable shape), SARIF 2.1.0 (code scanning), the terminal
table, and a self-contained HTML page for reviewers."""

from __future__ import annotations

import json

from ..scanner import ScanReport
from .html import to_html
from .sarif import to_sarif
from .table import print_table

__all__ = ["print_table", "to_html", "to_json", "to_sarif"]


def to_json(report: ScanReport, indent: int | None = None) -> str:
    """The report as JSON. By default one file object per line (compact, fast for
    large libraries, easy to grep); `indent` pretty-prints the whole document."""
    data = report.to_dict()
    if indent is not None:
        return json.dumps(data, indent=indent, ensure_ascii=False)
    files = ",\n".join(json.dumps(f, ensure_ascii=False) for f in data["files"])
    summary = json.dumps(data["summary"], ensure_ascii=False)
    return '{"files": [\n' + files + ('\n' if files else '') + '],\n"summary": ' + summary + "}"
