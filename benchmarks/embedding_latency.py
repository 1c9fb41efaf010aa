"""Latency of the embeddings detector on a typical chat request, and scan throughput.

A typical request: a system prompt, 3 few-shot pairs, 2 retrieved documents of
~300 words each and a query (texts generated here, different per request).

- cold: every segment is new (nothing cached);
- mixed: the system prompt and few-shot pairs repeat (cached), documents and query are new;
- warm: the same request again (every window cached).

Also the whole default-policy guard (rules + demonstrations + embeddings) on the
mixed case, and `scan` throughput (files/s) over generated prompt files with
embeddings on. Single process, torch threads = --threads (default 2, this machine's cores).

    .venv/bin/python benchmarks/embedding_latency.py [--requests 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import OUT

WORDS = ["shipment", "invoice", "warehouse", "customer", "delivery", "schedule", "payment", "contract", "supplier", "order", "pallet", "freight", "container", "route", "driver", "dock", "inventory", "audit", "report", "quarter", "revenue", "margin", "forecast", "region", "manager", "team", "meeting", "approval", "budget", "policy", "update", "system"]


def doc(rng: random.Random, words: int = 300) -> str:
    out, n = [], 0
    while n < words:
        k = rng.randint(8, 16)
        s = " ".join(rng.choice(WORDS) for _ in range(k))
        out.append(s.capitalize() + f" (ref {rng.randint(1000, 99999)}).")
        n += k + 2
    return " ".join(out)


def request(rng: random.Random, static_prefix: bool):
    from promptguard.segments import SegmentBuilder, SegmentKind

    r0 = random.Random(0) if static_prefix else rng
    b = SegmentBuilder()
    b.add(SegmentKind.INSTRUCTION, "You are a logistics assistant for a freight company. Answer from the documents "
          f"provided, cite the reference numbers, and say when the documents do not contain the answer. v{r0.randint(0, 10**9)}")
    for _ in range(3):
        b.add(SegmentKind.EXAMPLE, f"Q: Where is order {r0.randint(1000, 9999)}?\nA: It left the warehouse "
              f"on {r0.randint(1, 28)} May and is with the carrier.")
    for _ in range(2):
        b.add(SegmentKind.CONTEXT, doc(rng))
    b.add(SegmentKind.QUERY, f"When will shipment {rng.randint(10000, 99999)} reach the Rotterdam dock?")
    return b.segments


def pct(xs: list[float]) -> dict:
    a = np.array(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "mean_ms": round(float(a.mean()), 1), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--files", type=int, default=100)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from promptguard.detectors.base import create
    from promptguard.guard import Guard
    from promptguard.policy import load_policy

    t0 = time.perf_counter()
    det = create("embeddings", {})
    t_load = time.perf_counter() - t0
    emb = det.embedder
    rng = random.Random(1)
    det.detect(request(rng, False))  # first call pays torch's one-off start-up

    n_windows = sum(len(emb.windows(s.text)) for s in request(random.Random(5), False))
    res: dict = {"model_load_s": round(t_load, 2), "windows_per_request": n_windows, "threads": args.threads}
    for case in ("cold", "mixed"):
        times = []
        for _ in range(args.requests):
            segs = request(rng, static_prefix=(case == "mixed"))
            if case == "cold":
                emb.clear_cache()
            t = time.perf_counter()
            det.detect(segs)
            times.append(time.perf_counter() - t)
        res[case] = pct(times)
    segs = request(rng, True)
    det.detect(segs)
    times = []
    for _ in range(max(100, args.requests)):
        t = time.perf_counter()
        det.detect(segs)
        times.append(time.perf_counter() - t)
    res["warm"] = pct(times)

    guard = Guard(load_policy())
    guard.check(request(rng, True))
    times, t_emb = [], []
    for _ in range(args.requests):
        r = guard.check(request(rng, True))
        times.append(sum(r.timings.values()))
        t_emb.append(r.timings.get("embeddings", 0.0))
    res["guard_mixed"] = pct(times)
    res["guard_mixed_embeddings_share"] = round(float(np.sum(t_emb) / np.sum(times)), 3)
    warm_seg = request(rng, True)
    guard.check(warm_seg)
    times = []
    for _ in range(100):
        r = guard.check(warm_seg)
        times.append(sum(r.timings.values()))
    res["guard_warm"] = pct(times)

    # scan throughput: generated prompt files (a system prompt + a document + a question each)
    from promptguard.scanner import scan_paths

    with tempfile.TemporaryDirectory() as d:
        for i in range(args.files):
            segs = request(rng, False)
            Path(d, f"p{i:04d}.json").write_text(json.dumps({"messages": [
                {"role": "system", "content": segs[0].text},
                {"role": "tool", "name": "search", "content": segs[4].text},
                {"role": "user", "content": segs[-1].text}]}))
        emb.clear_cache()
        rep = scan_paths([d], guard)
        res["scan_files_per_s"] = round(args.files / rep.seconds, 2)
        no_emb = Guard(load_policy(), [x for x in guard.detectors if x.name != "embeddings"])
        rep2 = scan_paths([d], no_emb)
        res["scan_files_per_s_without_embeddings"] = round(args.files / rep2.seconds, 1)

    print(f"model load {res['model_load_s']} s; {n_windows} windows per request; torch threads {args.threads}")
    print(f"{'embeddings detector':28s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for k in ("cold", "mixed", "warm", "guard_mixed", "guard_warm"):
        print(f"{k:28s} {res[k]['p50_ms']:8.1f} {res[k]['p99_ms']:8.1f}")
    print(f"(guard = default policy: rules + demonstrations + embeddings; embeddings' share of guard time "
          f"(mixed): {res['guard_mixed_embeddings_share']:.0%})")
    print(f"scan throughput with embeddings: {res['scan_files_per_s']} files/s "
          f"(without: {res['scan_files_per_s_without_embeddings']} files/s), {args.files} files")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "embedding_latency.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
