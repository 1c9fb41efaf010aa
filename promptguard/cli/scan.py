"""`promptguard scan`: check a prompt library offline."""

from __future__ import annotations

import enum
import json
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


class FailOn(str, enum.Enum):
    flag = "flag"
    block = "block"
    never = "never"


_FAIL_RANK = {"flag": 1, "block": 2}
_VERDICT_FAIL = {"allow": 0, "flag": 1, "sanitize": 2, "block": 2, "error": 0}


@app.command()
def scan(
    paths: List[Path] = typer.Argument(..., help="Prompt files or directories (walked recursively)."),
    policy: Optional[Path] = PolicyOption,
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Report format."),
    fail_on: FailOn = typer.Option(FailOn.block, "--fail-on", help="Exit 1 when a file's verdict reaches this."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout."),
    max_bytes: int = typer.Option(10 * 1024 * 1024, "--max-bytes", help="Skip (with an error) files larger than this."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline directory from `promptguard baseline build`."),
) -> None:
    """Scan prompt files for injections, poisoned demonstrations and hidden content.

    Exit codes: 0 nothing at or above --fail-on, 1 something is, 2 usage or I/O error.
    """
    from ..parsing.files import iter_prompt_files
    from ..report import print_table, to_json, to_sarif
    from ..scanner import scan_paths

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise die(f"no such file or directory: {', '.join(missing)}")
    guard = build_guard(policy, {"baseline": {"path": str(baseline)}} if baseline else None)
    files = list(iter_prompt_files(list(paths)))

    if fmt is Format.table and len(files) > 50 and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            task = progress.add_task("scanning", total=len(files))
            report = scan_paths(paths, guard, max_bytes=max_bytes, files=files,
                                on_file=lambda _r: progress.advance(task))
    else:
        report = scan_paths(paths, guard, max_bytes=max_bytes, files=files)

    try:
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror}") from None
    try:
        if fmt is Format.json:
            out.write(to_json(report) + "\n")
        elif fmt is Format.sarif:
            out.write(json.dumps(to_sarif(report), indent=2) + "\n")
        else:
            print_table(report, file=out)
    finally:
        if output:
            out.close()

    if fail_on is not FailOn.never:
        worst = max((_VERDICT_FAIL[f.verdict] for f in report.files), default=0)
        if worst >= _FAIL_RANK[fail_on.value]:
            raise typer.Exit(1)
