"""The offline prompt-library scanner: files → the inspection step → per-file results.

Each file goes through the same inspection step as a proxied request or a LangChain
prompt (`promptguard.inspection`), so its findings JSON is theirs, with the `line` of
each finding added; `FileResult.to_record()` is the record the other faces write.

The scan runs under the policy's `scanner` trust setting (`Policy.trusted_kinds`):
by default nothing in a prompt library is trusted, its system prompts included, since
vetting someone else's text is what the scan is for."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .guard import Guard
from .inspection import Inspection, Inspector
from .parsing.files import DEFAULT_MAX_BYTES, PROMPT_FILE, ParsedFile, iter_prompt_files, parse_file
from .records import BLOCKED_STATUS, Record

__all__ = ["FileResult", "ScanReport", "scan_paths", "scan_file", "check_file", "auto_workers", "VERDICT_RANK",
           "scanner_guard", "rule_docs"]

VERDICT_RANK = {"allow": 0, "flag": 1, "sanitize": 2, "block": 3, "error": -1}


@dataclass
class FileResult:
    path: str
    verdict: str
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    # the inspection behind the result (kept in the scanning process only)
    inspection: Inspection | None = field(default=None, repr=False, compare=False)
    # with `keep_text`: each segment's text (aligned with `segments`) and each finding's
    # span in its segment's text (aligned with `findings`), for reports that show the text
    texts: list[str] | None = field(default=None, repr=False, compare=False)
    local_spans: list[tuple[int, int] | None] | None = field(default=None, repr=False, compare=False)

    def to_record(self) -> Record:
        """The file's record, in the shape every face writes."""
        rec = Record(request_id=f"scan:{self.path}", endpoint="scan", client="scanner", stage="inbound")
        if self.inspection is not None:
            rec.note(self.inspection)
            rec.hash_texts(prompt=self.inspection.text)
        else:
            rec.decision, rec.errors = self.verdict, [self.error] if self.error else []
        rec.status = BLOCKED_STATUS if self.verdict == "block" else 200
        return rec

    def to_dict(self) -> dict[str, Any]:
        d = {
            "path": self.path,
            "verdict": self.verdict,
            "error": self.error,
            "segments": self.segments,
            "findings": self.findings,
        }
        if self.warnings:
            d["warnings"] = self.warnings
        if self.checks:
            d["checks"] = self.checks
        return d


@dataclass
class ScanReport:
    files: list[FileResult]
    seconds: float
    policy: str
    # rule id → what the rule is about (description, severity, examples, references), from
    # the detectors that describe their rules; report formats use it for help text
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        verdicts = {v: 0 for v in ("allow", "flag", "sanitize", "block", "error")}
        severities: dict[str, int] = {}
        detectors: dict[str, int] = {}
        for f in self.files:
            verdicts[f.verdict] = verdicts.get(f.verdict, 0) + 1
            for fd in f.findings:
                severities[fd["severity"]] = severities.get(fd["severity"], 0) + 1
                detectors[fd["detector"]] = detectors.get(fd["detector"], 0) + 1
        n = len(self.files)
        return {
            "files": n,
            "errors": verdicts["error"],
            "findings": sum(len(f.findings) for f in self.files),
            "verdicts": verdicts,
            "severities": severities,
            "detectors": detectors,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(n / self.seconds, 1) if self.seconds > 0 else None,
            "policy": self.policy,
        }

    def worst(self) -> str:
        return max((f.verdict for f in self.files), key=lambda v: VERDICT_RANK[v], default="allow")

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.to_dict() for f in self.files], "summary": self.summary}


def check_file(guard: Guard | Inspector, parsed: ParsedFile, keep_text: bool = False) -> FileResult:
    """Run the inspection step over one parsed file. Findings are ordered by position
    in the file (prompt, then line); each is the inspection's finding JSON (with the
    `action` its own score earned under the policy) plus its `line`. `keep_text` keeps
    the segments' texts and the findings' spans in them (`FileResult.texts`,
    `local_spans`)."""
    if parsed.error is not None:
        return FileResult(parsed.path, "error", error=parsed.error, warnings=parsed.warnings)
    inspector = (guard if isinstance(guard, Inspector)
                 else Inspector(scanner_guard(guard), raise_failures=True, limits=False))
    insp = inspector.inspect(PROMPT_FILE, parsed)
    segs = insp.result.segments if insp.result is not None else parsed.segments
    segments = []
    for s in segs:
        d = s.to_dict()
        d["line"] = parsed.line_of(s)
        segments.append(d)
    pairs = []
    for f, d in zip(_ordered(insp), insp.findings_json()):
        seg = insp.segment_for(f)
        pairs.append(({**d, "line": parsed.line_of(seg, f.span[0] if f.span else 0) if seg is not None else 1},
                      f.span))
    pairs.sort(key=lambda p: (p[0].get("prompt", 0), p[0]["line"], p[0]["segment_kind"], p[0]["segment_index"],
                              -p[0]["score"]))
    return FileResult(
        parsed.path,
        insp.action.value,
        warnings=parsed.warnings + insp.decision.errors,
        segments=segments,
        findings=[d for d, _ in pairs],
        checks=insp.decision.checks,
        inspection=insp,
        texts=[s.text for s in segs] if keep_text else None,
        local_spans=[span for _, span in pairs] if keep_text else None,
    )


def scanner_guard(guard: Guard) -> Guard:
    """`guard` (the same detectors) under the policy's trust setting for the scanner
    (an object that only looks like a Guard is used as it is)."""
    for_face = getattr(guard, "for_face", None)
    return for_face("scanner") if for_face is not None else guard


def _ordered(insp: Inspection) -> list[Any]:
    """The findings in the order of `Inspection.findings_json`."""
    d = insp.decision
    reasons = {id(f) for f in d.reasons}
    return list(d.reasons) + [f for f in d.findings if id(f) not in reasons]


def scan_file(guard: Guard, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, keep_text: bool = False) -> FileResult:
    """Parse and check one file; nothing raises (an internal failure becomes the
    file's error, so that one bad file never stops a scan)."""
    try:
        return check_file(guard, parse_file(path, max_bytes=max_bytes), keep_text)
    except Exception as e:  # noqa: BLE001 - reported per file, the scan goes on
        return FileResult(str(path), "error", error=f"internal error: {type(e).__name__}: {e}")


# Below this many files a scan stays in one process (starting workers costs more).
PARALLEL_MIN_FILES = 200
# Native runtimes that own thread pools: forking a process that loaded one can hang it.
_FORK_UNSAFE_MODULES = ("torch", "tensorflow", "jax", "llama_cpp", "faiss", "onnxruntime")

_worker_guard: Guard | None = None
_worker_max_bytes = DEFAULT_MAX_BYTES
_worker_keep_text = False


def auto_workers(n_files: int) -> int:
    """Worker processes for a scan of `n_files`: one per CPU (at most 8) for a large
    library, when the guard can be shared by forking (no threaded native runtime
    such as torch was loaded to build it); otherwise 1."""
    if n_files < PARALLEL_MIN_FILES or not _can_fork():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))  # the CPUs this process may run on
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and not any(
        m in sys.modules for m in _FORK_UNSAFE_MODULES
    )


def _worker_scan(path: Path) -> FileResult:
    assert _worker_guard is not None
    res = scan_file(_worker_guard, path, _worker_max_bytes, _worker_keep_text)
    res.inspection = None  # not sent back to the parent: the report does not need it
    return res


def scan_paths(
    paths: Iterable[str | Path],
    guard: Guard,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_file: Callable[[FileResult], None] | None = None,
    files: list[Path] | None = None,
    workers: int | None = 1,
    keep_text: bool = False,
) -> ScanReport:
    """Scan files (or walk `paths`) and collect one result per file, in order.

    `workers` > 1 checks files in that many forked processes that share the
    already-built guard (ignored where forking is unsafe, see `auto_workers`);
    None picks the number with `auto_workers`. `keep_text`: see `check_file`.
    """
    global _worker_guard, _worker_max_bytes, _worker_keep_text
    t0 = time.perf_counter()
    guard = scanner_guard(guard)
    todo = list(files if files is not None else iter_prompt_files(list(paths)))
    n = auto_workers(len(todo)) if workers is None else max(1, workers)
    if n > 1 and (len(todo) < 2 * n or not _can_fork()):
        n = 1
    results: list[FileResult] = []
    if n == 1:
        stream: Iterable[FileResult] = (scan_file(guard, p, max_bytes, keep_text) for p in todo)
        for res in stream:
            results.append(res)
            if on_file is not None:
                on_file(res)
    else:
        _worker_guard, _worker_max_bytes, _worker_keep_text = guard, max_bytes, keep_text
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(n) as pool:
                chunk = max(1, min(64, len(todo) // (n * 8)))
                for res in pool.imap(_worker_scan, todo, chunksize=chunk):
                    results.append(res)
                    if on_file is not None:
                        on_file(res)
        finally:
            _worker_guard = None
    return ScanReport(results, time.perf_counter() - t0, guard.policy.name, rule_docs(guard))


def rule_docs(guard: Guard) -> dict[str, dict[str, Any]]:
    """What each rule of the guard's detectors is about, for the reports' help text:
    from every detector that lists its rules (`rules`: objects with an `id` and a
    `description`, such as the rules detector's)."""
    docs: dict[str, dict[str, Any]] = {}
    for det in getattr(guard, "detectors", []):
        for r in getattr(det, "rules", None) or []:
            rid, description = getattr(r, "id", None), getattr(r, "description", None)
            if not rid or not description:
                continue
            tests = getattr(r, "tests", None)
            severity = getattr(r, "severity", None)
            docs[rid] = {
                "detector": det.name,
                "description": description,
                "severity": getattr(severity, "value", severity),
                "examples": list(getattr(tests, "positive", None) or getattr(r, "phrases", None) or [])[:2],
                "references": list(getattr(r, "references", None) or []),
            }
    return docs
