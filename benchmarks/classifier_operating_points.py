"""How often the default policy would flag or act on a source the classifier never saw.

For each leave-one-source-out fold model written by `classifier_loso.py`
(`benchmarks/out/loso/<fold>-<tag>-seed0`, calibrated on its own training side), score the
fold's held-out rows and print the share of benign rows and of attacks at or above the
policy's calibrated thresholds (flag 0.5, the trained act point 0.85, and higher act
points). Usage:

    .venv/bin/python benchmarks/classifier_operating_points.py --folds deepset,bipia,jbb+acp,neuralchemy
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classifier_loso import FOLDS  # noqa: E402

from promptguard.classifier.corpus import read_rows  # noqa: E402
from promptguard.classifier.runtime import Classifier  # noqa: E402

THRESHOLDS = (0.5, 0.85, 0.9, 0.95, 0.98)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="deepset,bipia,jbb+acp,neuralchemy,s-labs")
    ap.add_argument("--corpus", type=Path, default=ROOT / ".cache" / "classifier-corpus")
    ap.add_argument("--loso-dir", type=Path, default=ROOT / "benchmarks" / "out" / "loso")
    ap.add_argument("--tag", default="v3", help="fold model folders <fold>-<tag>*-seed0")
    args = ap.parse_args()
    rows = list(read_rows(args.corpus / "corpus.jsonl"))
    print("fold            benign attacks  " + "  ".join(f"ben>={t:<4} att>={t:<4}" for t in THRESHOLDS))
    for fold in [f for f in args.folds.split(",") if f]:
        found = sorted(args.loso_dir.glob(f"{fold}-{args.tag}*-seed0"))
        if not found:
            print(f"{fold:<15} no fold model under {args.loso_dir} (run classifier_loso.py --folds {fold})")
            continue
        clf = Classifier(found[0], threads=1)
        held = [r for r in rows if r.source in FOLDS[fold]]
        scores = np.array([s.score for s in clf.score([(r.text, r.kind) for r in held])])
        y = np.array([r.label for r in held])
        cells = []
        for t in THRESHOLDS:
            ben = f"{(scores[y == 0] >= t).mean():.3f}" if (y == 0).any() else "  –  "
            att = f"{(scores[y == 1] >= t).mean():.3f}" if y.any() else "  –  "
            cells.append(f"{ben:>9} {att:>9}")
        print(f"{fold:<15} {int((y == 0).sum()):>6} {int(y.sum()):>7}  " + "  ".join(cells), flush=True)
        print(json.dumps({"fold": fold, "model": str(found[0])}), file=sys.stderr)


if __name__ == "__main__":
    main()
