"""`promptguard audit`: run the answer audit offline over a JSONL of requests."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from . import app
from .common import PolicyOption, build_guard, die, load_policy_or_die

_HELP_LINES = """Each line is a JSON object: an OpenAI chat/completion request body, or
{"id": ..., "request": BODY, "answer": "the answer it got"} (also "response": an OpenAI
response object). Without an answer, the audit asks the backend for one first."""


def _answer_of(rec: dict[str, Any]) -> str | None:
    ans = rec.get("answer")
    if isinstance(ans, str):
        return ans
    resp = rec.get("response")
    if isinstance(resp, dict):
        ch = (resp.get("choices") or [{}])[0]
        if isinstance(ch, dict):
            msg = ch.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                return msg["content"]
            if isinstance(ch.get("text"), str):
                return ch["text"]
    return None


def _records(path: Path) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record, error) for each non-empty line."""
    out = []
    try:
        fh = sys.stdin if str(path) == "-" else open(path, encoding="utf-8")
    except OSError as e:
        raise die(f"cannot read {path}: {e.strerror}") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                out.append((n, None, f"line {n}: not JSON: {e}"))
                continue
            if not isinstance(rec, dict):
                out.append((n, None, f"line {n}: expected a JSON object, got {type(rec).__name__}"))
                continue
            out.append((n, rec, None))
    return out


@app.command()
def audit(
    requests: Path = typer.Argument(..., help="JSONL of requests ('-' for stdin). " + _HELP_LINES),
    backend: str = typer.Option("llamacpp", "--backend", "-b",
                                help="http(s)://host/v1 | llamacpp[:/path.gguf] | transformers:/path | vllm:model"),
    policy: Optional[Path] = PolicyOption,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the JSON report here (default stdout)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Override the policy's audit mode: off|sampled|suspicion|always."),
    max_extra_calls: Optional[int] = typer.Option(None, "--max-extra-calls", help="Override the per-request call cap."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name for an HTTP upstream."),
    timeout: float = typer.Option(60.0, "--timeout", help="Per-call timeout (seconds) for HTTP upstreams."),
    audit_timeout: Optional[float] = typer.Option(None, "--audit-timeout",
                                                  help="Override the policy's whole-audit timeout (seconds)."),
    detectors: bool = typer.Option(True, "--detectors/--no-detectors",
                                   help="Run the policy's detectors first (their findings drive suspicion mode)."),
) -> None:
    """Re-ask each request with perturbed prompts to reveal backdoor triggers.

    Exit codes: 0 no trigger confirmed, 1 at least one confirmed, 2 usage or I/O error.
    """
    from ..audit import AuditConfig, AuditConfigError, Auditor
    from ..backends import BackendUnavailable, create_backend
    from ..parsing import ParseError, segments_from_request

    if str(requests) != "-" and not requests.is_file():
        raise die(f"no such file: {requests}")
    pol = load_policy_or_die(policy)
    section = pol.audit.model_dump()
    if mode is not None:
        section["mode"] = mode
    if max_extra_calls is not None:
        section["max_extra_calls"] = max_extra_calls
    if audit_timeout is not None:
        section["timeout_s"] = audit_timeout
    try:
        cfg = AuditConfig.from_policy(section)
    except AuditConfigError as e:
        raise die(str(e)) from None
    opts: dict[str, Any] = {}
    if backend.startswith(("http://", "https://")):
        opts = {"timeout": timeout, **({"model": model} if model else {})}
    try:
        llm = create_backend(backend, **opts)
    except (ValueError, BackendUnavailable) as e:
        raise die(f"backend: {e}") from None
    auditor = Auditor(llm, cfg)
    guard = build_guard(policy) if detectors else None  # static findings feed suspicion mode
    records = _records(requests)

    async def one(n: int, rec: dict[str, Any] | None, err: str | None, sem: asyncio.Semaphore) -> dict[str, Any]:
        row: dict[str, Any] = {"line": n}
        if err is not None:
            return {**row, "status": "error", "error": err}
        assert rec is not None
        if "id" in rec:
            row["id"] = rec["id"]
        body = rec.get("request", rec)
        try:
            segs = segments_from_request(body)
        except ParseError as e:
            return {**row, "status": "error", "error": f"line {n}: {e}"}
        findings = []
        if guard is not None:
            res = await guard.acheck(segs)
            findings = res.findings
            row["static"] = {"action": res.action.value, "findings": len(findings)}
        answer = _answer_of(rec)
        if not auditor.should_audit(segs, findings, answer):
            return {**row, "status": "not-audited", "gate": cfg.mode}
        row["gate"] = auditor.suspicion(segs, findings, answer) or cfg.mode
        async with sem:
            rep = await auditor.audit(body, segs, answer, findings)
        return {**row, "status": rep.status, "report": rep.to_dict()}

    async def run_all() -> list[dict[str, Any]]:
        sem = asyncio.Semaphore(cfg.max_concurrency)
        try:
            return await asyncio.gather(*(one(n, r, e, sem) for n, r, e in records))
        finally:
            await llm.aclose()

    t0 = time.perf_counter()
    try:
        results = asyncio.run(run_all())
    except BackendUnavailable as e:
        raise die(f"backend: {e}") from None
    wall = time.perf_counter() - t0
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    calls = [r["report"]["extra_calls"] for r in results if "report" in r]
    summary = {
        "requests": len(results),
        "statuses": statuses,
        "triggered": statuses.get("triggered", 0),
        "extra_calls_total": sum(calls),
        "extra_calls_mean": (sum(calls) / len(calls)) if calls else 0.0,
        "extra_calls_max": max(calls, default=0),
        "wall_s": round(wall, 3),
        "backend": getattr(llm, "name", backend),
        "mode": cfg.mode,
    }
    doc = json.dumps({"summary": summary, "results": results}, indent=2, ensure_ascii=False)
    if output:
        try:
            output.write_text(doc + "\n", encoding="utf-8")
        except OSError as e:
            raise die(f"cannot write {output}: {e.strerror}") from None
        typer.echo(f"audited {len(calls)} of {len(results)} request(s): "
                   f"{summary['triggered']} triggered; report in {output}", err=True)
    else:
        typer.echo(doc)
    if summary["triggered"]:
        raise typer.Exit(1)
