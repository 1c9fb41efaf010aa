"""What the LangChain handler adds to a chain call (p50 / p99 over a few hundred calls).

The chain is a small RAG + few-shot chain-of-thought chain:

    {"context": retriever | format_docs, "question": passthrough}
      | ChatPromptTemplate(system with the context, 4 CoT demonstrations via
        FewShotChatMessagePromptTemplate, the question)
      | chat model | StrOutputParser()

The chat model is langchain_core's `FakeListChatModel` and the retriever returns 3 of
20 fixed documents ON PURPOSE: both answer instantly, so the difference between the
handler-on and handler-off timings is the handler's own cost (checking the retrieved
documents, the prompt and the answer), not a model's. Each call gets a different
question (so nothing per-query is cached); the demonstrations and system prompt repeat,
as a template's do.

Modes: handler off; the handler with a guard that runs no detector (its own plumbing:
parsing, recording, LangChain's dispatch); `PromptGuardCallbackHandler` with a rules-only
policy (the packaged rule set); the same handler with the packaged default policy (every detector it
enables); and the async variants (`ainvoke` with each handler, default policy).

Usage:  .venv/bin/python benchmarks/langchain_overhead.py [--calls 300] [--warmup 20] [--threads 1]
Writes benchmarks/out/langchain_overhead.json. Timings taken while other processes load
the CPU are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEMOS = [
    {"question": "A farmer has 4 pens with 5 sheep in each. How many sheep?",
     "answer": "Each pen has 5 sheep.\n4 x 5 = 20.\nThe answer is 20."},
    {"question": "Mia reads 12 pages a day for 3 days. How many pages?",
     "answer": "She reads 12 pages each day.\n12 x 3 = 36.\nThe answer is 36."},
    {"question": "A shelf holds 9 books and 4 are taken. How many remain?",
     "answer": "The shelf starts with 9 books.\n9 - 4 = 5.\nThe answer is 5."},
    {"question": "Paint costs 7 euros a tin. What do 6 tins cost?",
     "answer": "One tin costs 7 euros.\n7 x 6 = 42.\nThe answer is 42 euros."},
]
TOPICS = ["returns", "shipping", "warranty", "store hours", "gift cards", "loyalty points", "repairs",
          "payment methods", "invoices", "price matching"]
DOCS = [f"{t.capitalize()}: policy paragraph {i} about {t}, with the details customers ask for most, "
        f"such as deadlines, fees and the documents to bring." for i, t in enumerate(TOPICS * 2)]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def build_chain():
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnablePassthrough

    class FixedRetriever(BaseRetriever):
        """Returns 3 of the fixed documents (instant: the benchmark isolates the handler)."""

        seed: int = 0

        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            r = random.Random(hash(query) & 0xFFFF)
            return [Document(page_content=d, metadata={"source": f"kb/{i}"})
                    for i, d in r.sample(list(enumerate(DOCS)), 3)]

    pair = ChatPromptTemplate.from_messages([("human", "{question}"), ("ai", "{answer}")])
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You are a helpful shop assistant and maths tutor. Use this context:\n\n{context}"),
        FewShotChatMessagePromptTemplate(examples=DEMOS, example_prompt=pair),
        ("human", "{question}"),
    ])
    model = FakeListChatModel(responses=[f"Step by step: {i} x 2 = {2 * i}.\nThe answer is {2 * i}." for i in range(50)])
    fmt = lambda docs: "\n\n".join(d.page_content for d in docs)
    return {"context": FixedRetriever() | fmt, "question": RunnablePassthrough()} | prompt | model | StrOutputParser()


def questions(n: int, offset: int) -> list[str]:
    return [f"Sam has {i + offset} bags with {(i * 7) % 13 + 2} marbles each. How many marbles? "
            f"Also, what is your {TOPICS[i % len(TOPICS)]} policy?" for i in range(n)]


DETECTOR_MS: list[dict[str, float]] = []  # per call: detector -> ms (the last mode timed)


def time_sync(chain, qs, handler) -> tuple[list[float], list[float], list[float]]:
    """Per call: wall ms, process CPU ms (all threads), ms inside the handler's checks."""
    cfg = {"callbacks": [handler]} if handler else {}
    times, cpu, guard_ms = [], [], []
    for q in qs:
        if handler:
            handler.events.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        chain.invoke(q, config=cfg)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        if handler:
            guard_ms.append(sum(e.elapsed_ms for e in handler.events))
            per: dict[str, float] = {}
            for e in handler.events:
                for d, t in (e.result.timings if e.result else {}).items():
                    per[d] = per.get(d, 0.0) + t * 1000
            DETECTOR_MS.append(per)
    return times, cpu, guard_ms


async def time_async(chain, qs, handler) -> tuple[list[float], list[float], list[float]]:
    cfg = {"callbacks": [handler]} if handler else {}
    times, cpu, guard_ms = [], [], []
    for q in qs:
        if handler:
            handler.events.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        await chain.ainvoke(q, config=cfg)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        if handler:
            guard_ms.append(sum(e.elapsed_ms for e in handler.events))
            per: dict[str, float] = {}
            for e in handler.events:
                for d, t in (e.result.timings if e.result else {}).items():
                    per[d] = per.get(d, 0.0) + t * 1000
            DETECTOR_MS.append(per)
    return times, cpu, guard_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in the tests)")
    ap.add_argument("--no-default", action="store_true", help="skip the default-policy modes")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from promptguard import Guard, load_policy
    from promptguard.integrations.langchain import (
        AsyncPromptGuardCallbackHandler,
        PromptGuardCallbackHandler,
    )
    from promptguard.policy import default_policy_path, policy_from_text

    rules_only = policy_from_text("version: 1\nname: rules-only\ndetectors:\n  rules:\n    rulesets: [rules/default.yaml]\n",
                                  base_dir=default_policy_path().parent)
    t0 = time.perf_counter()
    rules_guard = Guard(rules_only)
    default_guard = None if args.no_default else Guard(load_policy())
    build_s = time.perf_counter() - t0
    chain = build_chain()

    plumbing = Guard(rules_only, detectors=[])  # the handler's own cost: parse, record, dispatch
    modes: list[tuple[str, str, object]] = [
        ("off", "sync", None),
        ("no detectors (plumbing)", "sync", PromptGuardCallbackHandler(plumbing)),
        ("rules-only", "sync", PromptGuardCallbackHandler(rules_guard)),
    ]
    if default_guard is not None:
        modes += [
            ("default policy", "sync", PromptGuardCallbackHandler(default_guard)),
            ("off", "async", None),
            ("default policy", "async", PromptGuardCallbackHandler(default_guard)),
            ("default policy (async handler)", "async", AsyncPromptGuardCallbackHandler(default_guard)),
        ]

    rows = []
    for i, (name, kind, handler) in enumerate(modes):
        warm = questions(args.warmup, 100000 * (i + 1))
        qs = questions(args.calls, 100000 * (i + 1) + args.warmup)
        DETECTOR_MS.clear()
        if kind == "sync":
            time_sync(chain, warm, handler)
            DETECTOR_MS.clear()
            times, cpu, g = time_sync(chain, qs, handler)
        else:
            asyncio.run(time_async(chain, warm, handler))
            DETECTOR_MS.clear()
            times, cpu, g = asyncio.run(time_async(chain, qs, handler))
        if handler is not None:
            blocked = [e for e in handler.events if e.blocked]
            assert not blocked, f"clean benchmark traffic was blocked: {blocked[0].decision.summary()}"
        rows.append({"mode": name, "api": kind, "calls": len(times), "p50_ms": statistics.median(times),
                     "p99_ms": pct(times, 99), "mean_ms": statistics.fmean(times),
                     "cpu_p50_ms": statistics.median(cpu), "cpu_p99_ms": pct(cpu, 99),
                     "guard_p50_ms": statistics.median(g) if g else 0.0, "guard_p99_ms": pct(g, 99) if g else 0.0,
                     "detector_p50_ms": {d: statistics.median([c.get(d, 0.0) for c in DETECTOR_MS])
                                         for d in sorted({d for c in DETECTOR_MS for d in c})}})

    base = {r["api"]: r for r in rows if r["mode"] == "off"}
    for r in rows:
        b = base[r["api"]]
        r["overhead_p50_ms"] = r["p50_ms"] - b["p50_ms"]
        r["overhead_p99_ms"] = r["p99_ms"] - b["p99_ms"]
        r["cpu_overhead_p50_ms"] = r["cpu_p50_ms"] - b["cpu_p50_ms"]

    detectors = [d.name for d in default_guard.detectors] if default_guard else []
    print(f"LangChain handler overhead — {args.calls} calls per mode, fake chat model + fixed retriever "
          f"(isolates the handler), torch threads={args.threads}")
    print(f"default policy detectors: {', '.join(detectors) or '(skipped)'}; guard build {build_s:.1f}s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    hdr = (f"{'mode':32} {'api':5} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} "
           f"{'guard p50':>10} {'guard p99':>10} {'+cpu p50':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['mode']:32} {r['api']:5} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['overhead_p50_ms']:8.2f} "
              f"{r['overhead_p99_ms']:8.2f} {r['guard_p50_ms']:10.2f} {r['guard_p99_ms']:10.2f} "
              f"{r['cpu_overhead_p50_ms']:9.2f}")
    for r in rows:
        if r["detector_p50_ms"]:
            per = ", ".join(f"{d} {ms:.2f}" for d, ms in r["detector_p50_ms"].items())
            print(f"  {r['mode']} ({r['api']}): per-detector p50 ms per call: {per}")
    print("+p50/+p99: wall time of a chain call with the handler minus without (same API); guard: wall "
          "time inside the handler's checks per call (documents + prompt + answer); +cpu p50: the "
          "same difference in process CPU time (all threads), less sensitive to other load.")
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "langchain_overhead.json"
    out.write_text(json.dumps({"calls": args.calls, "threads": args.threads, "detectors": detectors,
                               "python": platform.python_version(), "loadavg": os.getloadavg()[0],
                               "rows": rows}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
