"""Train the head shipped in promptguard/data/heads/default.npz.

Training data (described in docs/embeddings.md): the labelled dev set
../shared/data/injection/dev.jsonl (2,741 rows; sources and licences in its
README) plus promptguard's own packaged attack exemplars (label 1) and benign
texts (label 0). Because the dev set is in the training data, every dev-set
figure in benchmarks/injection_detection.py comes from cross-validation, never
from this head.

    .venv/bin/python benchmarks/train_head.py            # writes the packaged head
    .venv/bin/python benchmarks/train_head.py -o /tmp/h.npz
"""

from __future__ import annotations

import argparse
import hashlib
import sys

import numpy as np
from _common import DEV, ROOT, load_dev, window_embeddings

C, ROUNDS = 0.1, 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default=str(ROOT / "promptguard" / "data" / "heads" / "default.npz"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from promptguard.embeddings import get_embedder
    from promptguard.embeddings.attacks import AttackIndex
    from promptguard.embeddings.training import packaged_rows, train_from_rows

    dev = load_dev()
    extra = packaged_rows()
    texts = [r["text"] for r in dev] + [r.text for r in extra]
    labels = np.array([r["label"] for r in dev] + [r.label for r in extra])
    emb = get_embedder()
    index = AttackIndex.load(emb)
    # The packaged known-attack index (so the detector need not embed exemplars at start-up).
    index.save(ROOT / "promptguard" / "data" / "attacks", emb)
    vecs = window_embeddings([r["text"] for r in dev], emb)[1] + window_embeddings([r.text for r in extra], emb)[1]
    sims = [index.nearest(v, 3)[0] for v in vecs]
    sha = hashlib.sha256(DEV.read_bytes()).hexdigest()[:16]
    head = train_from_rows(
        vecs, sims, labels, emb, C=C, rounds=ROUNDS,
        meta={"data": [f"shared/data/injection/dev.jsonl (sha256 {sha}..., {len(dev)} rows)",
                       f"promptguard/data/attacks exemplars+benign ({len(extra)} rows)"],
              "script": "benchmarks/train_head.py"},
    )
    head.save(args.output)
    print(f"wrote {args.output}: {len(texts)} texts ({int(labels.sum())} attacks), platt={head.platt}", file=sys.stderr)


if __name__ == "__main__":
    main()
