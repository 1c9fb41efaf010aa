"""Static BadChain detection: how well the `demonstrations` detector finds, locates
and removes backdoored demonstrations, and what it costs.

    .venv/bin/python benchmarks/badchain_static.py [--weights auto|fitted|principled|both]
                                                   [--badchain ../shared/data/badchain] [--seed 7]

Sets:
- shared: the BadChain prompt files (../shared/data/badchain/prompts) against
  manifest.json; each file is also checked with a triggered query appended (the
  active-attack gate and sanitize).
- clean: ≥ 200 clean prompts built from the BadChain *test data* (MATH solutions,
  StrategyQA, last letters, CommonsenseQA) and hand-written worked examples in 12
  domains (benchmarks/data/worked_examples.json), with benign variants.
- general: poisoned prompts of our own (family B triggers and steps: emoji,
  zero-width, unusual punctuation, phrases, instruction-like sentences; unit
  conversions, date shifts, label flips, off-by-one, SQL edits, mirrored words) in
  non-math domains and on the test-data sources; 15% in chat form.

Prints a table; writes benchmarks/out/badchain_static.json. Timings are per prompt
with the template cache (and the regex cache) cold; wall time is pessimistic when
other processes share the CPU, so thread CPU time is reported too.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from demo_corpus import (
    Prompt,
    clean_handwritten_prompts,
    clean_prompts,
    handwritten,
    letter_demos,
    math_demos,
    poisoned_prompts,
    strategyqa_demos,
)

from promptguard.detectors.demonstrations.analysis import clear_caches
from promptguard.detectors.demonstrations.detector import (
    RULE_POISONED,
    RULE_TRIGGER,
    DemonstrationsDetector,
)
from promptguard.guard import Guard
from promptguard.parsing import segments_from_messages, segments_from_prompt
from promptguard.policy import load_policy
from promptguard.sanitize import apply_to_messages, apply_to_text
from promptguard.segments import SegmentKind

FLAG = 0.5
ACT = 0.85
TRIGGERED_QUERY = "Question: A farmer has 12 cows and buys 5 more. How many cows does he have now?"


def segments_of(p: Prompt):
    return segments_from_prompt(p.text) if p.text is not None else segments_from_messages(p.messages)


def worked(segs):
    return [s for s in segs if s.kind is SegmentKind.DEMONSTRATION or (
        s.kind is SegmentKind.EXAMPLE and s.parts is not None and s.parts.steps and s.parts.answer is not None)]


def evaluate(prompts: list[Prompt], det: DemonstrationsDetector) -> dict:
    """Detection, demonstration P/R, localisation and timing over prompts."""
    res = {"n": len(prompts), "flagged": 0, "acted": 0, "tp": 0, "fp": 0, "fn": 0,
           "loc_text": 0, "loc_exact": 0, "poisoned": 0, "wall_ms": [], "cpu_ms": [], "misses": [], "false": []}
    for p in prompts:
        segs = segments_of(p)
        clear_caches()
        w0, c0 = time.perf_counter(), time.thread_time()
        fs = det.detect(segs)
        res["wall_ms"].append((time.perf_counter() - w0) * 1000)
        res["cpu_ms"].append((time.thread_time() - c0) * 1000)
        demos = worked(segs)
        pos = {(s.kind, s.index): i for i, s in enumerate(demos)}
        pred = {pos[(f.segment_kind, f.segment_index)] for f in fs
                if f.rule == RULE_POISONED and f.score >= FLAG and (f.segment_kind, f.segment_index) in pos}
        top = max((f.score for f in fs if f.rule == RULE_POISONED), default=0.0)
        if top >= FLAG:
            res["flagged"] += 1
        if top >= ACT:
            res["acted"] += 1
        truth = set(p.poisoned)
        res["tp"] += len(pred & truth)
        res["fp"] += len(pred - truth)
        res["fn"] += len(truth - pred)
        if truth:
            res["poisoned"] += 1
            if top < FLAG:
                res["misses"].append(p.name)
            rep = det.analyze(segs)
            trig = (p.trigger or "").strip()
            best = rep.candidates[0] if rep.candidates else None
            if best is not None and best.text == trig:
                res["loc_text"] += 1
                # exact span in every poisoned demonstration's question
                spans = {(s.segment_kind, s.segment_index): s for s in best.spans if s.part == "question"}
                ok = True
                for i in truth:
                    s = demos[i]
                    sp = spans.get((s.kind, s.index))
                    if sp is None or s.text[sp.start : sp.end] != trig:
                        ok = False
                if ok:
                    res["loc_exact"] += 1
        elif top >= FLAG:
            res["false"].append(p.name)
    return res


def sanitize_check(prompts: list[Prompt], guard: Guard) -> dict:
    """Guard(default policy) on each poisoned prompt with its triggered query: poisoned
    demonstrations gone or repaired, clean ones kept verbatim, trigger out of the query."""
    ok = 0
    n = 0
    fails = []
    for p in prompts:
        if not p.poisoned:
            continue
        n += 1
        segs = segments_of(p)
        demos = worked(segs)
        r = guard.check(segs)
        if p.text is not None:
            out = apply_to_text(p.text, r.edits)
            out_segs = segments_from_prompt(out)
            chunks = [out]
        else:
            msgs = apply_to_messages(p.messages, r.edits)
            out = "\n\n".join(str(m.get("content") or "") for m in msgs)
            out_segs = segments_from_messages(msgs)
            chunks = [str(m.get("content") or "").strip() for m in msgs]
        trig = (p.trigger or "").strip()
        good = r.action.value == "sanitize"
        for i, d in enumerate(demos):
            if p.text is not None:
                present = d.text in out
            else:  # a chat pair: its user message kept verbatim
                present = d.question.strip() in chunks
            if i in p.poisoned and present:
                good = False
            if i not in p.poisoned and not present:
                good = False
        if trig and trig in out:
            good = False
        if not any(s.kind is SegmentKind.QUERY for s in out_segs):
            good = False
        ok += good
        if not good:
            fails.append(p.name)
    return {"n": n, "ok": ok, "fails": fails}


def clean_identity(prompts: list[Prompt], guard: Guard) -> dict:
    """Clean prompts through the guard come back byte-identical."""
    same = 0
    acted = []
    for p in prompts:
        segs = segments_of(p)
        r = guard.check(segs)
        if p.text is not None:
            same += apply_to_text(p.text, r.edits) == p.text
        else:
            same += apply_to_messages(p.messages, r.edits) == p.messages
        if r.edits:
            acted.append(p.name)
    return {"n": len(prompts), "identical": same, "changed": acted}


def shared_prompts(badchain: Path, triggered: bool) -> list[Prompt]:
    m = json.loads((badchain / "manifest.json").read_text(encoding="utf-8"))
    out = []
    for f in m["files"]:
        text = (badchain / f["file"]).read_text(encoding="utf-8")
        trig = f["trigger"]
        if triggered:
            q = TRIGGERED_QUERY + (trig if trig else "")
            text = text.rstrip("\n") + "\n\n" + q
        out.append(Prompt(f["file"], text, None, list(f["poisoned_demo_indices_0based"]),
                          trig.strip() if trig else None, "shared", "plain", f["n_demos"]))
    return out


def general_prompts(badchain: Path | None, seed: int, n_hw: int = 160, n_td: int = 80) -> list[Prompt]:
    rng = random.Random(seed)
    hw = handwritten()
    out = poisoned_prompts(hw, "B", rng, n=n_hw, tag="gen-hw")
    if badchain is not None and (badchain / "test_data").is_dir():
        pools = {"math": math_demos(badchain)[200:], "strategyqa": strategyqa_demos(badchain)[200:],
                 "letter": letter_demos(badchain)[200:]}
        out += poisoned_prompts(pools, "B", rng, n=n_td, tag="gen-td")
    return out


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}% ({a}/{b})" if b else "   n/a"


def summarize(name: str, r: dict) -> dict:
    tp, fp, fn = r["tp"], r["fp"], r["fn"]
    return {
        "set": name,
        "prompts": r["n"],
        "poisoned": r["poisoned"],
        "detected": r["flagged"] if r["poisoned"] else None,
        "flagged_clean": r["flagged"] if not r["poisoned"] else None,
        "demo_precision": tp / (tp + fp) if tp + fp else None,
        "demo_recall": tp / (tp + fn) if tp + fn else None,
        "loc_text": r["loc_text"],
        "loc_exact": r["loc_exact"],
        "wall_ms_median": statistics.median(r["wall_ms"]) if r["wall_ms"] else None,
        "wall_ms_p95": sorted(r["wall_ms"])[int(0.95 * (len(r["wall_ms"]) - 1))] if r["wall_ms"] else None,
        "cpu_ms_median": statistics.median(r["cpu_ms"]) if r["cpu_ms"] else None,
        "cpu_ms_p95": sorted(r["cpu_ms"])[int(0.95 * (len(r["cpu_ms"]) - 1))] if r["cpu_ms"] else None,
        "misses": r["misses"],
        "false_positives": r["false"],
    }


def run(weights: str, badchain: Path | None, seed: int) -> dict:
    det = DemonstrationsDetector(weights=weights)
    # the default policy's thresholds, with only this detector (the others load models and
    # are measured by their own benchmarks)
    pol = load_policy()
    for name, cfg in pol.detectors.items():
        cfg.enabled = name == "demonstrations"
    pol.detectors["demonstrations"].__pydantic_extra__["weights"] = weights
    guard = Guard(pol)
    rng = random.Random(seed)
    clean = clean_prompts(badchain, rng, n_test_data=160, part=1) + clean_handwritten_prompts(rng, per_domain=5)
    sets: dict[str, list[Prompt]] = {}
    if badchain is not None and (badchain / "manifest.json").is_file():
        shared = shared_prompts(badchain, triggered=False)
        sets["shared poisoned"] = [p for p in shared if p.poisoned]
        sets["shared clean"] = [p for p in shared if not p.poisoned]
    sets["clean corpus"] = clean
    sets["general (ours)"] = general_prompts(badchain, seed + 1)
    out: dict = {"weights": weights, "sets": {}}
    for name, ps in sets.items():
        out["sets"][name] = summarize(name, evaluate(ps, det))
    # active-attack gate + sanitize on the shared files with a triggered query
    if badchain is not None and (badchain / "manifest.json").is_file():
        trig = [p for p in shared_prompts(badchain, triggered=True) if p.poisoned]
        gate = 0
        for p in trig:
            fs = det.detect(segments_of(p))
            gate += any(f.rule == RULE_TRIGGER and f.score >= FLAG for f in fs)
        out["gate_shared"] = {"n": len(trig), "hit": gate}
        out["sanitize_shared"] = sanitize_check(trig, guard)
    out["sanitize_general"] = sanitize_check(sets["general (ours)"], guard)
    out["clean_identity"] = clean_identity(clean + sets.get("shared clean", []), guard)
    # warm cache: the same template again
    ps = sets.get("shared poisoned") or sets["general (ours)"]
    segs = [segments_of(p) for p in ps]
    for s in segs:
        det.detect(s)
    w = []
    for s in segs:
        t0 = time.perf_counter()
        det.detect(s)
        w.append((time.perf_counter() - t0) * 1000)
    out["warm_ms_median"] = statistics.median(w)
    return out


def print_report(out: dict) -> None:
    sys.stdout.flush()
    print(f"\n== demonstrations detector, weights={out['weights']} (flag at {FLAG}, sanitize at {ACT}) ==")
    hdr = f"{'set':18s} {'prompts':>7s} {'detected / flagged':>22s} {'demo P':>7s} {'demo R':>7s} {'trigger exact span':>22s} {'cold ms (wall/cpu) med, p95':>30s}"
    print(hdr)
    print("-" * len(hdr))
    for name, s in out["sets"].items():
        if s["poisoned"]:
            det = pct(s["detected"], s["poisoned"])
            loc = pct(s["loc_exact"], s["poisoned"])
        else:
            det = "FP " + pct(s["flagged_clean"], s["prompts"])
            loc = ""
        p = f"{s['demo_precision']:.3f}" if s["demo_precision"] is not None else "-"
        r = f"{s['demo_recall']:.3f}" if s["demo_recall"] is not None else "-"
        t = f"{s['wall_ms_median']:.1f}/{s['cpu_ms_median']:.1f}, {s['wall_ms_p95']:.1f}/{s['cpu_ms_p95']:.1f}"
        print(f"{name:18s} {s['prompts']:7d} {det:>22s} {p:>7s} {r:>7s} {loc:>22s} {t:>30s}")
    if "gate_shared" in out:
        g = out["gate_shared"]
        print(f"active-attack gate (shared, triggered query): {pct(g['hit'], g['n'])}")
        s = out["sanitize_shared"]
        print(f"sanitize success (shared, via Guard + default policy): {pct(s['ok'], s['n'])}")
    s = out["sanitize_general"]
    print(f"sanitize success (general, via Guard + default policy): {pct(s['ok'], s['n'])}")
    c = out["clean_identity"]
    print(f"clean prompts byte-identical through the guard: {pct(c['identical'], c['n'])}")
    print(f"warm cache (same template again): {out['warm_ms_median']:.2f} ms median")
    for name, s in out["sets"].items():
        if s["misses"]:
            print(f"  missed in {name}: {s['misses'][:8]}{' …' if len(s['misses']) > 8 else ''}")
        if s["false_positives"]:
            print(f"  flagged clean in {name}: {s['false_positives'][:8]}{' …' if len(s['false_positives']) > 8 else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="both", choices=["auto", "fitted", "principled", "both"])
    ap.add_argument("--badchain", type=Path, default=HERE.parent.parent / "shared" / "data" / "badchain")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    badchain = args.badchain if args.badchain.is_dir() else None
    if badchain is None:
        print(f"note: {args.badchain} not found; measuring on our own prompts only", file=sys.stderr)
    which = ["fitted", "principled"] if args.weights == "both" else [args.weights]
    results = []
    for w in which:
        try:
            out = run(w, badchain, args.seed)
        except ValueError as e:
            print(f"weights={w}: {e}", file=sys.stderr)
            continue
        print_report(out)
        results.append(out)
    od = HERE / "out"
    od.mkdir(exist_ok=True)
    (od / "badchain_static.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(f"\nwrote {od / 'badchain_static.json'}")


if __name__ == "__main__":
    main()
