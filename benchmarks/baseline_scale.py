"""Memory and query time of a baseline of 100k segments.

Embedding 100k real segments on this 2-core CPU would take the better part of an
hour, and the index's memory and query time depend only on the vector count,
dimension and (for HNSW) roughly on how clustered the vectors are. So the
benchmark embeds --real real segments (generated support-desk queries) with the
real model and grows them to --n vectors by adding small Gaussian noise to real
vectors (re-normalised), which keeps their clustered structure. It then
measures, for the index type `auto` picks (HNSW above 50k) and for an exact flat
index: build time, index size on disk, process RSS growth, query latency of a
typical request's 12 windows (k=3), the calibration time of `build_baseline`'s
k-fold step (which samples 5,000 held-out segments), and HNSW's agreement with
the exact kNN distance.

    .venv/bin/python benchmarks/baseline_scale.py [--n 100000] [--real 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import OUT


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    a = ["Where is", "Can I change", "Why was I charged twice for", "Please cancel", "How do I return",
         "What is the status of", "I never received", "Can you resend the invoice for", "Upgrade", "Pause"]
    b = ["my order", "the subscription", "the premium plan", "the parcel", "my account", "the gift card",
         "the delivery to Berlin", "order", "the annual plan", "the refund"]
    return [f"{rng.choice(a)} {rng.choice(b)} {rng.randint(1, 99999)}{rng.choice(['?', ' please.', ' today?'])}"
            for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--real", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    from promptguard.embeddings import get_embedder
    from promptguard.embeddings.baseline import calibrate
    from promptguard.embeddings.knn import index_type, make_index, save_index, search

    emb = get_embedder()
    texts = queries(args.real, 0)
    t0 = time.perf_counter()
    real = emb.embed(texts)
    t_embed = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    reps = int(np.ceil(args.n / len(real)))
    vecs = np.vstack([real] + [real + rng.normal(scale=0.03, size=real.shape).astype(np.float32) for _ in range(reps - 1)])[: args.n]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs.astype(np.float32)
    probe = emb.embed(queries(12, 99) )  # a request's worth of fresh windows

    res = {"n": args.n, "real_vectors": len(real), "embed_ms_per_segment": round(1000 * t_embed / len(real), 2)}
    exact = None
    for kind in ("auto", "flat"):
        base_rss = rss_mb()
        t0 = time.perf_counter()
        index = make_index(vecs, kind)
        t_build = time.perf_counter() - t0
        grow = rss_mb() - base_rss
        with tempfile.TemporaryDirectory() as d:
            save_index(index, Path(d) / "i.faiss")
            size = os.path.getsize(Path(d) / "i.faiss") / 2**20
        search(index, probe, 3)
        times = []
        for _ in range(50):
            t = time.perf_counter()
            sims, _ids = search(index, probe, 3)
            times.append(time.perf_counter() - t)
        dist = (1 - sims).mean(axis=1)
        name = index_type(index)
        if name == "flat":
            exact = dist
        res[name] = {"build_s": round(t_build, 2), "file_mb": round(size, 1), "rss_growth_mb": round(grow, 1),
                     "query_12_windows_ms_p50": round(1000 * float(np.median(times)), 3),
                     "query_12_windows_ms_p99": round(1000 * float(np.percentile(times, 99)), 3),
                     "dist": dist}
        del index
    if "hnsw" in res and exact is not None:
        res["hnsw"]["max_abs_distance_error_vs_exact"] = round(float(np.abs(res["hnsw"]["dist"] - exact).max()), 5)
    for k in ("hnsw", "flat"):
        if k in res:
            res[k].pop("dist")

    t0 = time.perf_counter()
    _thr, info = calibrate(vecs, np.arange(len(vecs)), len(vecs), k=3, folds=5, target_fpr=0.01)
    res["calibration_s"] = round(time.perf_counter() - t0, 1)
    res["calibration_held_out"] = info["held_out_segments"]

    print(f"baseline of {args.n:,} vectors (dim {vecs.shape[1]}; {len(real)} real, the rest noisy copies)")
    print(f"embedding cost: {res['embed_ms_per_segment']} ms per short segment "
          f"(=> ~{res['embed_ms_per_segment'] * args.n / 60000:.0f} min to embed {args.n:,} real segments)")
    print(f"{'index':6s} {'build s':>8s} {'file MB':>8s} {'RSS +MB':>8s} {'query p50 ms':>13s} {'p99 ms':>8s}  (12 windows, k=3)")
    for k in ("hnsw", "flat"):
        if k in res:
            r = res[k]
            print(f"{k:6s} {r['build_s']:8.2f} {r['file_mb']:8.1f} {r['rss_growth_mb']:8.1f} "
                  f"{r['query_12_windows_ms_p50']:13.3f} {r['query_12_windows_ms_p99']:8.3f}")
    if "hnsw" in res:
        print(f"HNSW vs exact kNN distance: max abs error {res['hnsw'].get('max_abs_distance_error_vs_exact')}")
    print(f"calibration (5-fold, {res['calibration_held_out']} held-out segments scored): {res['calibration_s']} s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "baseline_scale.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
