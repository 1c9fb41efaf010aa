"""The offline prompt-library scanner: files → guard → per-file results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .guard import Guard
from .parsing.files import DEFAULT_MAX_BYTES, ParsedFile, iter_prompt_files, parse_file

__all__ = ["FileResult", "ScanReport", "scan_paths", "VERDICT_RANK"]

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


def check_file(guard: Guard, parsed: ParsedFile) -> FileResult:
    if parsed.error is not None:
        return FileResult(parsed.path, "error", error=parsed.error, warnings=parsed.warnings)
    result = guard.check(parsed.segments)
    findings = []
    for f in sorted(result.findings, key=lambda f: (f.prompt, f.segment_kind.value, f.segment_index, -f.score)):
        seg = result.segment_for(f)
        d = f.to_dict(seg)
        d["action"] = guard.policy.action_for(f).value
        if seg is not None:
            d["line"] = parsed.line_of(seg, f.span[0] if f.span else 0)
        findings.append(d)
    verdict = result.action.value
    return FileResult(
        parsed.path,
        verdict,
        warnings=parsed.warnings + result.decision.errors,
        segments=[s.to_dict() for s in parsed.segments],
        findings=findings,
        checks=result.decision.checks,
    )


def scan_paths(
    paths: Iterable[str | Path],
    guard: Guard,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_file: Callable[[FileResult], None] | None = None,
    files: list[Path] | None = None,
) -> ScanReport:
    t0 = time.perf_counter()
    results: list[FileResult] = []
    for path in files if files is not None else iter_prompt_files(list(paths)):
        res = check_file(guard, parse_file(path, max_bytes=max_bytes))
        results.append(res)
        if on_file is not None:
            on_file(res)
    return ScanReport(results, time.perf_counter() - t0, guard.policy.name)

