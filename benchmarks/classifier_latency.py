"""Latency and cost of the classifier detector (and, same requests, the embeddings detector).

- cold start: a fresh process importing promptguard, building the detector and
  scoring one query (and the same for the embeddings detector);
- a short query (a new text each time, model warm, nothing cached): p50 / p99;
- a typical chat request (system prompt, 3 few-shot pairs, 2 retrieved documents
  of ~300 words, a query; benchmarks/embedding_latency.py's generator): cold
  (everything new), mixed (system prompt and pairs repeat) and warm (the same
  request again): p50 / p99;
- CPU per KB of few-shot text, cold, for 1–100 KB prompts (demonstration segments);
- torch vs ONNX Runtime on the same fine-tuned weights (torch fp32, ONNX fp32,
  ONNX int8): one short query and a batch of 16 full windows, artifact sizes, and
  how far the int8 probabilities move from fp32 (`--compare`, needs top.fp16.pt
  from `promptguard train classifier`).

    .venv/bin/python benchmarks/classifier_latency.py [--model DIR] [--threads 2] [--no-embeddings] [--compare]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import OUT, ROOT
from embedding_latency import doc, request


def pct(xs: list[float]) -> dict:
    a = np.array(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "mean_ms": round(float(a.mean()), 2), "n": len(xs)}


def cold_start(detector: str, model: str | None) -> float:
    opts = f"{{'model': {model!r}}}" if (model and detector == "classifier") else "{}"
    code = ("import time; t=time.perf_counter()\n"
            "from promptguard.detectors.base import create\n"
            "from promptguard.segments import SegmentBuilder, SegmentKind\n"
            f"d = create({detector!r}, {opts})\n"
            "b = SegmentBuilder(); b.add(SegmentKind.QUERY, 'What are your opening hours on Sunday?')\n"
            "d.detect(b.segments); print(time.perf_counter() - t)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


QUERIES = ["What time does the {p} open on {d}?", "Can you summarise {n} pages of my notes on {t}?",
           "How do I convert {n} euros to dollars?", "Write a two-line poem about {t}.",
           "Is {t} covered by my {p} insurance?", "Which bus goes from the {p} to the station at {n}:15?"]
TOPICS = ["the Rhine", "sourdough", "TCP", "tax returns", "a broken zip", "the moon", "bees", "my dentist"]


def short_query(i: int) -> str:
    r = random.Random(i)
    return r.choice(QUERIES).format(p=r.choice(["library", "pool", "museum", "bakery"]), d=r.choice(["Sunday", "Monday"]),
                                    n=r.randint(2, 999), t=r.choice(TOPICS))


def fewshot_text(kb: float, seed: int) -> list[str]:
    """Demonstration segments totalling about `kb` KB (new numbers every call)."""
    r = random.Random(seed)
    out, size = [], 0
    while size < kb * 1024:
        a, b, c = r.randint(2, 99), r.randint(2, 99), r.randint(2, 9)
        t = (f"Question: A farmer has {a} rows of {b} plants and sells {c} rows. How many plants are left?\n"
             f"There are {a} x {b} = {a * b} plants. Selling {c} rows removes {c} x {b} = {c * b}. "
             f"{a * b} - {c * b} = {a * b - c * b}.\nThe answer is {a * b - c * b}.")
        out.append(t)
        size += len(t.encode())
    return out


def bench_detector(det, name: str, n_short: int, n_req: int) -> dict:
    from promptguard.segments import SegmentBuilder, SegmentKind

    res: dict = {}
    # short query, new text every time
    lat = []
    for i in range(n_short):
        b = SegmentBuilder()
        b.add(SegmentKind.QUERY, short_query(10_000 + i))
        t0 = time.perf_counter()
        det.detect(b.segments)
        lat.append(time.perf_counter() - t0)
    res["short_query_new"] = pct(lat[5:])
    b = SegmentBuilder()
    b.add(SegmentKind.QUERY, short_query(1))
    det.detect(b.segments)
    lat = []
    for _ in range(n_short):
        t0 = time.perf_counter()
        det.detect(b.segments)
        lat.append(time.perf_counter() - t0)
    res["short_query_repeat"] = pct(lat)
    rng = random.Random(7)
    for mode in ("cold", "mixed", "warm"):
        lat = []
        fixed = request(random.Random(99), True)
        det.detect(fixed)
        for _ in range(n_req):
            segs = fixed if mode == "warm" else request(rng, static_prefix=(mode == "mixed"))
            t0 = time.perf_counter()
            det.detect(segs)
            lat.append(time.perf_counter() - t0)
        res[f"chat_{mode}"] = pct(lat)
    # CPU per KB of few-shot text, cold
    per_kb = {}
    for kb in (1, 2, 5, 10, 20, 50, 100):
        if name == "embeddings" and kb > 20:
            continue
        b = SegmentBuilder()
        for t in fewshot_text(kb, seed=kb * 1000 + 17):
            b.add(SegmentKind.DEMONSTRATION, t)
        size = sum(len(s.text.encode()) for s in b.segments) / 1024
        c0, t0 = time.process_time(), time.perf_counter()
        det.detect(b.segments)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        per_kb[kb] = {"kb": round(size, 1), "cpu_ms_per_kb": round(1000 * cpu / size, 2),
                      "wall_ms_per_kb": round(1000 * wall / size, 2), "wall_ms": round(1000 * wall, 1)}
    res["fewshot_cold_per_kb"] = per_kb
    return res


def compare_runtimes(model_dir: Path, threads: int) -> dict:
    """torch fp32 vs ONNX fp32 vs ONNX int8 on the same weights."""
    import onnxruntime as ort
    import torch

    from promptguard.classifier.runtime import Classifier
    from promptguard.classifier.text import pad_batch
    from promptguard.classifier.training import export_onnx, load_top, torch_model

    torch.set_num_threads(threads)
    meta = json.loads((model_dir / "classifier.json").read_text())
    frozen = int(meta["config"]["frozen_layers"])
    top = load_top(model_dir / "top.fp16.pt", frozen)
    run_torch = torch_model(top, frozen)
    tmp = Path(tempfile.mkdtemp(prefix="pg-cmp-"))
    export_onnx(top, frozen, tmp / "model.fp32.onnx", quantize=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = {name: ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
            for name, p in (("onnx fp32", tmp / "model.fp32.onnx"), ("onnx int8", model_dir / "model.int8.onnx"))}
    clf = Classifier(model_dir, threads=threads, views=False)
    short = [clf.tok.windows(short_query(i), "query")[0] for i in range(60)]
    long_text = " ".join(doc(random.Random(5), 2000).split())
    full = [w for w in clf.tok.windows(long_text, "context") if len(w.ids) == clf.tok.window_tokens][:16]

    def timeit(fn, batches) -> dict:
        fn(*batches[0])
        lat = []
        for b in batches:
            t0 = time.perf_counter()
            fn(*b)
            lat.append(time.perf_counter() - t0)
        return pct(lat)

    runners = {"torch fp32": lambda ids, mask: run_torch(ids, mask),
               **{k: (lambda s: lambda ids, mask: s.run(None, {"input_ids": ids, "attention_mask": mask}))(s)
                  for k, s in sess.items()}}
    out: dict = {"sizes_mb": {
        "torch: base model.safetensors + top.fp16.pt": round(
            (next(iter(sorted(Path(meta_base()).glob("*.safetensors")))).stat().st_size
             + (model_dir / "top.fp16.pt").stat().st_size) / 1e6, 1),
        "onnx fp32": round((tmp / "model.fp32.onnx").stat().st_size / 1e6, 1),
        "onnx int8": round((model_dir / "model.int8.onnx").stat().st_size / 1e6, 1)}}
    for name, fn in runners.items():
        out[name] = {"short_query": timeit(fn, [pad_batch([w]) for w in short]),
                     "16x128_tokens": timeit(fn, [pad_batch(full)] * 8)}
    # agreement on real rows
    rows = _sample_rows(300)
    if rows:
        wins = [clf.tok.windows(t, k)[0] for t, k in rows]
        ids_masks = [pad_batch([w]) for w in wins]
        p32 = np.array([float(sess["onnx fp32"].run(None, {"input_ids": i, "attention_mask": m})[0][0]) for i, m in ids_masks])
        p8 = np.array([float(sess["onnx int8"].run(None, {"input_ids": i, "attention_mask": m})[0][0]) for i, m in ids_masks])
        pt = np.array([float(run_torch(i, m)[0]) for i, m in ids_masks])
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        out["agreement"] = {"rows": len(rows),
                            "max_abs_prob_diff_int8_vs_fp32": round(float(np.abs(sig(p8) - sig(p32)).max()), 4),
                            "mean_abs_prob_diff_int8_vs_fp32": round(float(np.abs(sig(p8) - sig(p32)).mean()), 4),
                            "max_abs_prob_diff_onnx_fp32_vs_torch": round(float(np.abs(sig(p32) - sig(pt)).max()), 5)}
    return out


def meta_base() -> Path:
    from promptguard.classifier.training import base_model_dir

    return base_model_dir()


def _sample_rows(n: int) -> list[tuple[str, str]]:
    p = ROOT / ".cache" / "classifier-corpus" / "corpus.jsonl"
    if not p.is_file():
        return []
    rows = [json.loads(line) for line in p.open(encoding="utf-8")]
    random.Random(0).shuffle(rows)
    return [(r["text"], r["kind"]) for r in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--short", type=int, default=300)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from promptguard.detectors.base import create

    results: dict = {"loadavg_start": os.getloadavg(), "threads": args.threads}
    results["cold_start_s"] = {"classifier": round(cold_start("classifier", args.model), 2)}
    opts = {"threads": args.threads}
    if args.model:
        opts["model"] = args.model
    det = create("classifier", opts)
    results["classifier"] = bench_detector(det, "classifier", args.short, args.requests)
    if not args.no_embeddings:
        import torch

        torch.set_num_threads(args.threads)
        results["cold_start_s"]["embeddings"] = round(cold_start("embeddings", None), 2)
        results["embeddings"] = bench_detector(create("embeddings", {}), "embeddings", min(args.short, 100), min(args.requests, 15))
    if args.compare:
        md = Path(args.model) if args.model else Path(det.clf.path)
        if (md / "top.fp16.pt").is_file():
            results["runtimes"] = compare_runtimes(md, args.threads)
        else:
            print(f"(no {md / 'top.fp16.pt'}: torch comparison skipped)")
    results["loadavg_end"] = os.getloadavg()
    _print(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "classifier_latency.json").write_text(json.dumps(results, indent=2))


def _print(r: dict) -> None:
    print(f"threads {r['threads']}; load average {r['loadavg_start'][0]:.1f} at start, {r['loadavg_end'][0]:.1f} at end")
    print("cold start (fresh process, import + load + first query): " +
          ", ".join(f"{k} {v:.2f} s" for k, v in r["cold_start_s"].items()))
    dets = [d for d in ("classifier", "embeddings") if d in r]
    print(f"\n{'case':24s} " + " ".join(f"{d + ' p50':>16s} {d + ' p99':>16s}" for d in dets))
    for case in ("short_query_new", "short_query_repeat", "chat_cold", "chat_mixed", "chat_warm"):
        print(f"{case:24s} " + " ".join(f"{r[d][case]['p50_ms']:16.1f} {r[d][case]['p99_ms']:16.1f}" for d in dets))
    print("\nfew-shot text, cold: CPU ms per KB (wall ms per KB)")
    for d in dets:
        print(f"  {d:12s} " + "  ".join(f"{kb} KB: {v['cpu_ms_per_kb']:.1f} ({v['wall_ms_per_kb']:.1f})"
                                      for kb, v in r[d]["fewshot_cold_per_kb"].items()))
    if "runtimes" in r:
        rt = r["runtimes"]
        print("\nsame weights, three runtimes: p50 ms (short query | 16 windows of 128 tokens)")
        for name in ("torch fp32", "onnx fp32", "onnx int8"):
            print(f"  {name:12s} {rt[name]['short_query']['p50_ms']:8.2f} | {rt[name]['16x128_tokens']['p50_ms']:8.1f}")
        print("  sizes MB: " + ", ".join(f"{k} {v}" for k, v in rt["sizes_mb"].items()))
        if "agreement" in rt:
            print("  agreement: " + json.dumps(rt["agreement"]))


if __name__ == "__main__":
    main()
