"""`promptguard scan`: check a prompt library offline."""

from __future__ import annotations

import enum
import json
import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .common import PolicyOption, build_guard, die


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    sarif = "sarif"
    html = "html"


class FailOn(str, enum.Enum):
    flag = "flag"
    block = "block"
    never = "never"


# --fail-on flag: a flag, sanitize or block verdict fails; --fail-on block: sanitize or block
_FAIL_RANK = {"flag": 1, "block": 2}
_VERDICT_FAIL = {"allow": 0, "flag": 1, "sanitize": 2, "block": 2, "error": 0}
PROGRESS_MIN_FILES = 50  # a progress bar on stderr (a terminal only) for scans of more files
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def parse_size(text: str) -> int:
    """'10000000', '10MB', '10M', '512KiB' → bytes."""
    m = _SIZE.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a size (e.g. 10000000, 10MB, 512KiB)")
    unit = (m.group(2) or "").lower().removesuffix("b")
    return int(float(m.group(1)) * _UNIT[unit])


def _exit_code(worst: int, errors: int, fail_on: FailOn) -> int:
    if errors:
        return 2
    if fail_on is not FailOn.never and worst >= _FAIL_RANK[fail_on.value]:
        return 1
    return 0


_NAMED = 5  # files named in an exit message before "and N more"


def _names(files: list, limit: int = _NAMED) -> str:
    out = ", ".join(f"{f.path} ({f.verdict})" for f in files[:limit])
    return out + (f" and {len(files) - limit} more" if len(files) > limit else "")


def exit_messages(report, code: int, fail_on: FailOn, fmt: Format, output: Optional[Path]) -> list[str]:
    """What the scan says on stderr besides the report: where a report written to a file
    went, and why the exit code is not 0 (a CI log must not read as a crash)."""
    from collections import Counter

    lines = []
    v = report.summary["verdicts"]
    counts = ", ".join(f"{v[k]} {k}" for k in ("block", "sanitize", "flag", "allow", "error"))
    if output is not None:
        lines.append(f"promptguard: wrote the {fmt.value} report to {output} ({len(report.files)} files: {counts})")
    errors = [f for f in report.files if f.verdict == "error"]
    if errors:
        lines.append(f"promptguard: exit code 2: {len(errors)} file(s) could not be scanned (see the report): "
                     + "; ".join(f"{f.path}: {f.error}" for f in errors[:_NAMED])
                     + (f"; and {len(errors) - _NAMED} more" if len(errors) > _NAMED else ""))
    if fail_on is not FailOn.never:
        failing = [f for f in report.files if f.verdict != "error"
                   and _VERDICT_FAIL[f.verdict] >= _FAIL_RANK[fail_on.value]]
        if failing:
            by = Counter(f.verdict for f in failing)
            what = ", ".join(f"{by[k]} {k}" for k in ("block", "sanitize", "flag") if by[k])
            why = (f"{len(failing)} file(s) reached --fail-on {fail_on.value} ({what}): {_names(failing)}")
            if code == 1:
                lines.append(f"promptguard: exit code 1: {why}. The report has the findings; "
                             "--fail-on never reports without failing.")
            else:
                lines.append(f"promptguard: also {why}.")
    return lines


@app.command()
def scan(
    paths: List[Path] = typer.Argument(..., help="Prompt files or directories (walked recursively)."),
    policy: Optional[Path] = PolicyOption,
    fmt: Format = typer.Option(Format.table, "--format", "-f",
                               help="Report format: table (terminal), json, sarif (code scanning), html (one "
                                    "self-contained page)."),
    fail_on: FailOn = typer.Option(
        FailOn.block, "--fail-on",
        help="Exit 1 when a file's verdict reaches this: 'flag' (flag, sanitize or block), "
             "'block' (sanitize or block), or 'never'.",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout."),
    max_bytes: str = typer.Option(
        "10MiB", "--max-bytes", help="Files larger than this get a 'too large' error instead of a scan (10MiB, 50MB, 1000000)."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=1,
        help="Processes to check files in (default: one per CPU for 200+ files when the detectors allow it).",
    ),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline directory from `promptguard baseline build`."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Table: every file, and every finding (those below the flag threshold too)."),
    all_findings: bool = typer.Option(False, "--all-findings",
                                      help="SARIF: also report findings below their flag threshold (as notes)."),
) -> None:
    """Scan prompt files for injections, poisoned demonstrations and hidden content.

    Files: .txt .md .prompt .tmpl (prompt text; few-shot blocks are split out), .json .yaml .yml (OpenAI messages, {"messages": ...}, {"prompt": ...}, LangChain prompt files), .jsonl (one of those per line). Directories are walked recursively. A file that cannot be read or parsed gets an error in the report and the scan goes on.

    Exit codes: 0 nothing at or above --fail-on; 1 something is (stderr names the files); 2 usage error, bad policy, or a file that could not be scanned (the report is still written in full; stderr names the files).
    """
    from ..parsing.files import iter_prompt_files
    from ..report import print_table, to_html, to_json, to_sarif
    from ..scanner import scan_paths

    try:
        limit = parse_size(max_bytes)
    except typer.BadParameter as e:
        raise die(f"--max-bytes: {e}") from None
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise die(f"no such file or directory: {', '.join(missing)}")
    guard = build_guard(policy, {"baseline": {"path": str(baseline)}} if baseline else None)
    files = list(iter_prompt_files(list(paths)))
    try:
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None

    keep_text = fmt is Format.html
    try:
        if len(files) > PROGRESS_MIN_FILES and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("scanning", total=len(files))
                report = scan_paths(paths, guard, max_bytes=limit, files=files, workers=workers, keep_text=keep_text,
                                    on_file=lambda _r: progress.advance(task))
        else:
            report = scan_paths(paths, guard, max_bytes=limit, files=files, workers=workers, keep_text=keep_text)

        if fmt is Format.json:
            out.write(to_json(report) + "\n")
        elif fmt is Format.sarif:
            out.write(json.dumps(to_sarif(report, everything=all_findings), indent=2, ensure_ascii=False) + "\n")
        elif fmt is Format.html:
            out.write(to_html(report))
        else:
            print_table(report, file=out, verbose=verbose)
    finally:
        if output:
            out.close()
        else:
            out.flush()  # the report before the exit message on stderr

    errors = sum(1 for f in report.files if f.verdict == "error")
    worst = max((_VERDICT_FAIL[f.verdict] for f in report.files), default=0)
    code = _exit_code(worst, errors, fail_on)
    for line in exit_messages(report, code, fail_on, fmt, output):
        typer.echo(line, err=True)
    if code:
        raise typer.Exit(code)
