"""`promptguard log`: list and export the proxy's audit records."""

from __future__ import annotations

import csv
import enum
import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, List, Optional

import typer

from . import app
from .common import die


class LogFormat(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str) -> float:
    """`90s`, `15m`, `2h`, `7d` (ago), or an ISO date/time (UTC unless it says otherwise)."""
    m = _AGO.match(value)
    if m:
        return time.time() - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use 15m, 2h, 7d or an ISO date)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@app.command("log")
def log_cmd(
    store: Optional[str] = typer.Option(None, "--store", help="Audit store (default: the proxy config's store)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Proxy config YAML to take the store from."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many records (0: all)."),
    decision: Optional[List[str]] = typer.Option(None, "--decision", "-d", help="Only these decisions (repeatable)."),
    since: Optional[str] = typer.Option(None, "--since", help="Records from this time on: 15m, 2h, 7d or ISO."),
    until: Optional[str] = typer.Option(None, "--until", help="Records before this time."),
    request_id: Optional[str] = typer.Option(None, "--request-id", help="One request."),
    key: Optional[str] = typer.Option(None, "--key", help="Only requests made with this API key name."),
    fmt: LogFormat = typer.Option(LogFormat.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="Chronological order."),
) -> None:
    """List or export the decisions the proxy recorded."""
    from ..proxy.settings import load_settings
    from ..records import StoreError, reader
    from ..yamlutil import YamlError

    valid = {"allow", "flag", "sanitize", "block", "error"}
    bad = [d for d in decision or [] if d not in valid]
    if bad:
        raise die(f"unknown decision(s) {', '.join(bad)}; use {', '.join(sorted(valid))}")
    try:
        url = store or load_settings(config).store
        t_since = parse_time(since) if since else None
        t_until = parse_time(until) if until else None
    except YamlError as e:
        raise die(str(e)) from None
    except ValueError as e:
        raise die(str(e)) from None
    try:
        rows = reader(url).query(limit=limit or None, decision=decision, since=t_since, until=t_until,
                                 request_id=request_id, api_key=key, newest_first=not oldest_first)
    except StoreError as e:
        raise die(str(e)) from None

    try:
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror}") from None
    try:
        _write(rows, fmt, out)
    finally:
        if output:
            out.close()


def _write(rows: list[dict[str, Any]], fmt: LogFormat, out: Any) -> None:
    if fmt is LogFormat.json:
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt is LogFormat.jsonl:
        for r in rows:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif fmt is LogFormat.csv:
        if not rows:
            return
        w = csv.DictWriter(out, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                        for k, v in r.items()})
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_lines=False)
        for col in ("time", "request id", "decision", "status", "endpoint", "key", "client", "ms", "summary"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(_iso(r["ts"]), r["request_id"], r["decision"], str(r["status"]), r["endpoint"],
                      r.get("api_key") or "", r.get("client") or "", f"{r.get('latency_ms') or 0:.1f}",
                      (r.get("summary") or "; ".join(r.get("errors") or []))[:160])
        Console(file=out, width=200 if not getattr(out, "isatty", lambda: False)() else None).print(t)
        if not rows:
            out.write("no records\n")
