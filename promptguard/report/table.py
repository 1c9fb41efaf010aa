"""The terminal report: a table, one row per file that needs a look, the allowed files
summarized, then the totals."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from ..scanner import FileResult, ScanReport
from .common import VERDICTS, one_line, shown_findings, top_finding, where, who

__all__ = ["print_table"]

STYLE = {"block": "bold red", "sanitize": "bold magenta", "flag": "yellow", "allow": "green", "error": "red"}
_LISTED_ALLOWED = 8  # allowed files named after the table before "and N more"


def _finding_cell(f: dict[str, Any], extra: int = 0, with_action: bool = False) -> str:
    from rich.markup import escape

    act = f.get("action", "flag")
    head = f"[bold]{escape(who(f))}[/] {f['score']:.2f}"
    if with_action:
        head += f" [{STYLE.get(act, '')}]{act}[/]"
    cell = head + "\n" + escape(one_line(f["message"], 100))
    if extra:
        cell += f"\n[dim]+{extra} more (--verbose)[/]"
    return cell


def _where_cell(f: dict[str, Any]) -> str:
    """Where the finding is, then its evidence."""
    from rich.markup import escape

    ev = one_line(f.get("evidence") or "", 60)
    return escape(where(f)) + (f"\n[dim]{escape(repr(ev))}[/]" if ev else "")


def _rows(fr: FileResult, verbose: bool) -> list[list[str]]:
    """The table rows for one file: its top finding (or error); with `verbose`, one row per
    finding, those below the flag threshold included."""
    from rich.markup import escape

    path, verdict = escape(fr.path), f"[{STYLE.get(fr.verdict, '')}]{fr.verdict}[/]"
    if fr.error:
        return [[path, verdict, escape(fr.error), ""]]
    if verbose:
        if not fr.findings:
            why = "; ".join(fr.warnings) or "no findings"
            return [[path, verdict, escape(why), ""]]
        return [[path if i == 0 else "", verdict if i == 0 else "", _finding_cell(f, with_action=True), _where_cell(f)]
                for i, f in enumerate(fr.findings)]
    top = top_finding(fr)
    if top is None or top.get("action", "flag") == "allow":
        why = "; ".join(fr.warnings) or "decided by policy"
        return [[path, verdict, escape(why), ""]]
    extra = len(shown_findings(fr)) - 1
    return [[path, verdict, _finding_cell(top, extra), _where_cell(top)]]


def _width(file: TextIO | None) -> int | None:
    """The console's width: the terminal's, else $COLUMNS, else 160 (a CI log is wide)."""
    stream = file if file is not None else sys.stdout
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return int(os.environ.get("COLUMNS") or 0) or 160


def print_table(report: ScanReport, file: TextIO | None = None, *, color: bool | None = None,
                verbose: bool = False) -> None:
    """One row per file that is not allowed (its verdict, the finding the verdict rests on,
    where it is: segment, line, character span, then its evidence), files that could not be
    scanned with their error; the allowed files named in one line after the table; then
    the totals. `verbose`: every file, and a row per finding (below-threshold ones
    included, with the action each earned)."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=file, highlight=False, soft_wrap=False, no_color=color is False,
                      force_terminal=color or None, width=_width(file))
    listed = [fr for fr in report.files if verbose or fr.verdict != "allow"]
    allowed = [fr for fr in report.files if fr.verdict == "allow"]
    if listed:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
        longest = max(len(fr.path) for fr in listed)
        table.add_column("File", overflow="fold", min_width=min(longest, 50))
        table.add_column("Verdict", no_wrap=True)
        table.add_column("Finding" if not verbose else "Findings", overflow="fold", min_width=38, ratio=3)
        table.add_column("Where · evidence", overflow="fold", min_width=20, ratio=2)
        for fr in listed:
            for row in _rows(fr, verbose):
                table.add_row(*row)
        console.print(table)
    if allowed and not verbose:
        names = ", ".join(escape(fr.path) for fr in allowed[:_LISTED_ALLOWED])
        more = f" and {len(allowed) - _LISTED_ALLOWED} more" if len(allowed) > _LISTED_ALLOWED else ""
        quiet = sum(1 for fr in allowed if fr.findings)
        note = f" ({quiet} with findings below the flag threshold: --verbose)" if quiet else ""
        console.print(f"[{STYLE['allow']}]allowed[/] ({len(allowed)}): {names}{more}{note}")
    s = report.summary
    v = s["verdicts"]
    hidden = sum(1 for fr in report.files for f in fr.findings if f.get("action", "flag") == "allow")
    rate = f", {s['files_per_second']:.0f} files/s" if s.get("files_per_second") and s["files"] >= 100 else ""
    console.print(
        f"[bold]{s['files']} files[/] scanned in {s['seconds']:.2f}s{rate}: "
        + ", ".join(f"[{STYLE[k]}]{v[k]} {k}[/]" for k in VERDICTS)
        + f"; {s['findings']} findings"
        + (f" ({hidden} below the flag threshold not shown: --verbose)" if hidden and not verbose else "")
        + f" (policy {escape(str(s['policy']))})",
        soft_wrap=True,
    )
