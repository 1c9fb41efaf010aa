"""Static BadChain detection: how well the `demonstrations` detector finds, locates
and removes backdoored demonstrations, and what it costs.

    .venv/bin/python benchmarks/badchain_static.py [--sets eval,legacy] [--weights auto|fitted|principled|both]
                                                   [--per-domain 60] [--badchain ../shared/data/badchain]
                                                   [--code DIR]   # measure another checkout's detector
    .venv/bin/python benchmarks/badchain_static.py --paired-timing BASE_ROOT   # CPU per file vs another checkout

Sets (``--sets``, comma-separated):

- ``eval``: the generated files of ``benchmarks/badchain_domains.py`` (seven answer-type
  domains: numbers, option letters, yes/no, labels, dates/weekdays/times, strings, code
  output), ``eval`` split: poisoned files whose backdoor step is of a **held-out** kind
  (never used in any tuning; reported first), poisoned files whose step kind was tuned
  on, and clean files; per domain, per step kind, per trigger form.
- ``tune``: the same generator's ``tune`` split (tuned step kinds and triggers only): the
  one set to look at while changing the detector.
- ``legacy``: the earlier sets: the BadChain prompt files (../shared/data/badchain/prompts)
  against manifest.json (also with a triggered query appended: the active-attack gate
  and sanitize); clean prompts built from the BadChain *test data* and the hand-written
  worked examples (benchmarks/data/worked_examples.json); the "general" poisoned prompts
  of benchmarks/demo_corpus.py (family B).

Metrics: file recall (a PG-DEMO-POISONED finding ≥ 0.5 on a poisoned file), exact trigger
span (the best candidate is the trigger, and its spans are exactly the trigger in every
poisoned question), demonstration precision/recall, clean files flagged, sanitize through
`Guard` with the default policy's thresholds (poisoned demonstrations dropped or repaired
exactly — step removed, trigger cut, answer restored — clean ones kept verbatim, the trigger
out of the query; clean files byte-identical), and CPU per file with every cache cold.

Prints tables; writes benchmarks/out/badchain_static.json. Wall time is pessimistic when
other processes share the CPU, so thread CPU time is reported too.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _code_path() -> Path:
    """--code DIR: import promptguard from another checkout (to time the detector as it
    was, on the same files)."""
    if "--code" in sys.argv:
        return Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
    return HERE.parent


sys.path.insert(0, str(HERE))
sys.path.insert(0, str(_code_path()))

from _common import wilson as _wilson
from badchain_domains import HELD_OUT_STEP_KINDS, clean_files, poisoned_files
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


# -- per file ----------------------------------------------------------------------------------


def check_file(p: Prompt, det: DemonstrationsDetector) -> dict:
    """Detection, demonstration TP/FP/FN, trigger localisation and cold CPU time of one file."""
    segs = segments_of(p)
    clear_caches()
    w0, c0 = time.perf_counter(), time.thread_time()
    fs = det.detect(segs)
    wall = (time.perf_counter() - w0) * 1000
    cpu = (time.thread_time() - c0) * 1000
    demos = worked(segs)
    pos = {(s.kind, s.index): i for i, s in enumerate(demos)}
    pred = {pos[(f.segment_kind, f.segment_index)] for f in fs
            if f.rule == RULE_POISONED and f.score >= FLAG and (f.segment_kind, f.segment_index) in pos}
    top = max((f.score for f in fs if f.rule == RULE_POISONED), default=0.0)
    truth = set(p.poisoned)
    exact = False
    if truth:
        rep = det.analyze(segs)
        trig = (p.trigger or "").strip()
        best = rep.candidates[0] if rep.candidates else None
        if best is not None and best.text == trig:
            spans = {(s.segment_kind, s.segment_index): s for s in best.spans if s.part == "question"}
            exact = True
            for i in truth:
                s = demos[i] if i < len(demos) else None
                sp = spans.get((s.kind, s.index)) if s is not None else None
                if sp is None or s.text[sp.start : sp.end] != trig:
                    exact = False
    return {"name": p.name, "poisoned": bool(truth), "flagged": top >= FLAG, "acted": top >= ACT, "top": round(top, 4),
            "tp": len(pred & truth), "fp": len(pred - truth), "fn": len(truth - pred), "exact": exact,
            "wall_ms": wall, "cpu_ms": cpu, "domain": p.domain, "step_kind": p.step_kind,
            "held_out": p.step_kind in HELD_OUT_STEP_KINDS, "trigger_form": p.trigger_form,
            "parsed_demos": len(demos), "n_demos": p.n_demos}


def aggregate(recs: list[dict]) -> dict:
    pois = [r for r in recs if r["poisoned"]]
    clean = [r for r in recs if not r["poisoned"]]
    tp = sum(r["tp"] for r in recs)
    fp = sum(r["fp"] for r in recs)
    fn = sum(r["fn"] for r in recs)
    cpu = sorted(r["cpu_ms"] for r in recs)
    wall = sorted(r["wall_ms"] for r in recs)
    out = {
        "files": len(recs), "poisoned": len(pois), "clean": len(clean),
        "detected": sum(r["flagged"] for r in pois), "acted": sum(r["acted"] for r in pois),
        "exact": sum(r["exact"] for r in pois),
        "clean_flagged": sum(r["flagged"] for r in clean),
        "demo_precision": tp / (tp + fp) if tp + fp else None,
        "demo_recall": tp / (tp + fn) if tp + fn else None,
        "cpu_ms_median": statistics.median(cpu) if cpu else None,
        "cpu_ms_p95": cpu[int(0.95 * (len(cpu) - 1))] if cpu else None,
        "wall_ms_median": statistics.median(wall) if wall else None,
        "wall_ms_p95": wall[int(0.95 * (len(wall) - 1))] if wall else None,
        "misses": [r["name"] for r in pois if not r["flagged"]],
        "false_positives": [r["name"] for r in clean if r["flagged"]],
        "inexact": [r["name"] for r in pois if not r["exact"]],
    }
    out["recall_ci"] = _wilson(out["detected"], len(pois))
    out["clean_flagged_ci"] = _wilson(out["clean_flagged"], len(clean))
    return out


# -- sanitize ------------------------------------------------------------------------------------


def _only_this_detector(weights: str) -> Guard:
    """The default policy's thresholds, with only this detector (the others load models
    and are measured by their own benchmarks)."""
    pol = load_policy()
    for name, cfg in pol.detectors.items():
        cfg.enabled = name == "demonstrations"
    pol.detectors["demonstrations"].__pydantic_extra__["weights"] = weights
    return Guard(pol)


def sanitized(p: Prompt, r) -> tuple[str, list, list[dict]]:
    """The prompt after the guard's edits: its text (chat messages joined), its segments,
    and its messages ([] for a completion prompt)."""
    if p.text is not None:
        out = apply_to_text(p.text, r.edits)
        return out, segments_from_prompt(out), []
    msgs = apply_to_messages(p.messages, r.edits)
    return "\n\n".join(str(m.get("content") or "") for m in msgs), segments_from_messages(msgs), msgs


def sanitize_generated(prompts: list[Prompt], guard: Guard) -> dict:
    """Generated poisoned files through the guard: each poisoned demonstration dropped or
    repaired exactly (what the generator built before poisoning it), each clean one kept
    verbatim, the trigger nowhere in the output, the query kept."""
    ok = dropped = repaired = 0
    fails: list[str] = []
    n = 0
    for p in prompts:
        if not p.poisoned:
            continue
        n += 1
        segs = segments_of(p)
        demos = worked(segs)
        r = guard.check(segs)
        trig = (p.trigger or "").strip()
        good = r.action.value == "sanitize" and len(demos) == len(p.clean_demos)
        out, out_segs, msgs = sanitized(p, r)
        kept = [(str(a.get("content") or ""), str(b.get("content") or ""))
                for a, b in pairwise(msgs) if a.get("role") == "user" and b.get("role") == "assistant"]
        for i, clean in enumerate(p.clean_demos if good else ()):
            if p.text is not None:
                present = clean in out
                # the question, poisoned (as in the file) or with the trigger cut (clean)
                remnant = clean.split("\n", 1)[0] in out or demos[i].text.split("\n", 1)[0] in out
            else:
                present = tuple(clean) in kept
                remnant = any(u in (clean[0], demos[i].question) for u, _ in kept)
            if i not in p.poisoned:
                good = good and present
            elif present:
                repaired += 1
            elif remnant:
                good = False  # neither dropped nor repaired exactly
            else:
                dropped += 1
        if trig and trig in out:
            good = False
        if any(s.kind is SegmentKind.QUERY for s in segs) and not any(s.kind is SegmentKind.QUERY for s in out_segs):
            good = False
        ok += good
        if not good:
            fails.append(p.name)
    return {"n": n, "ok": ok, "dropped": dropped, "repaired": repaired, "fails": fails}


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
        out, out_segs, msgs = sanitized(p, r)
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


# -- the sets ------------------------------------------------------------------------------------


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


def generated_sets(split: str, per_domain: int) -> dict[str, list[Prompt]]:
    sets = {}
    if split == "eval":
        sets["held-out step kinds"] = poisoned_files("eval", "held", per_domain)
        sets["tuned step kinds"] = poisoned_files("eval", "dev", per_domain)
        sets["clean (generated)"] = clean_files("eval", per_domain)
    else:
        sets["tune: poisoned"] = poisoned_files("tune", "dev", per_domain)
        sets["tune: clean"] = clean_files("tune", per_domain)
    return sets


def run(weights: str, badchain: Path | None, seed: int, which: list[str], per_domain: int) -> dict:
    det = DemonstrationsDetector(weights=weights)
    guard = _only_this_detector(weights)
    out: dict = {"weights": weights, "code": str(_code_path()), "sets": {}, "groups": {}}
    recs: dict[str, list[dict]] = {}
    gen: dict[str, list[Prompt]] = {}
    for split in ("eval", "tune"):
        if split in which:
            gen.update(generated_sets(split, per_domain))
    legacy: dict[str, list[Prompt]] = {}
    clean_legacy: list[Prompt] = []
    if "legacy" in which:
        rng = random.Random(seed)
        clean_legacy = clean_prompts(badchain, rng, n_test_data=160, part=1) + clean_handwritten_prompts(rng, per_domain=5)
        if badchain is not None and (badchain / "manifest.json").is_file():
            shared = shared_prompts(badchain, triggered=False)
            legacy["shared poisoned"] = [p for p in shared if p.poisoned]
            legacy["shared clean"] = [p for p in shared if not p.poisoned]
        legacy["clean corpus"] = clean_legacy
        legacy["general (ours)"] = general_prompts(badchain, seed + 1)
    for name, ps in {**gen, **legacy}.items():
        recs[name] = [check_file(p, det) for p in ps]
        out["sets"][name] = aggregate(recs[name])
    # breakdowns of the generated sets
    for name, rs in recs.items():
        if name not in gen:
            continue
        for key in ("domain", "step_kind", "trigger_form"):
            groups = defaultdict(list)
            for r in rs:
                groups[r[key]].append(r)
            out["groups"].setdefault(key, {})[name] = {k: aggregate(v) for k, v in sorted(groups.items())}
    # timing over every generated file (the same files for any --code)
    all_gen = [r for name, rs in recs.items() if name in gen for r in rs]
    if all_gen:
        out["timing_generated"] = aggregate(all_gen)
    # sanitize
    for name, ps in gen.items():
        if any(p.poisoned for p in ps):
            out.setdefault("sanitize", {})[name] = sanitize_generated(ps, guard)
        else:
            out.setdefault("identity", {})[name] = clean_identity(ps, guard)
    if "legacy" in which:
        if badchain is not None and (badchain / "manifest.json").is_file():
            trig = [p for p in shared_prompts(badchain, triggered=True) if p.poisoned]
            gate = 0
            for p in trig:
                fs = det.detect(segments_of(p))
                gate += any(f.rule == RULE_TRIGGER and f.score >= FLAG for f in fs)
            out["gate_shared"] = {"n": len(trig), "hit": gate}
            out.setdefault("sanitize", {})["shared (triggered query)"] = sanitize_check(trig, guard)
        out.setdefault("sanitize", {})["general (ours)"] = sanitize_check(legacy["general (ours)"], guard)
        out.setdefault("identity", {})["clean corpus + shared clean"] = clean_identity(
            clean_legacy + legacy.get("shared clean", []), guard)
        # warm cache: the same template again
        ps = legacy.get("shared poisoned") or legacy["general (ours)"]
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


# -- printing ------------------------------------------------------------------------------------


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}% ({a}/{b})" if b else "n/a"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _row(label: str, s: dict, width: int = 22) -> str:
    if s["poisoned"]:
        det = pct(s["detected"], s["poisoned"])
        loc = pct(s["exact"], s["poisoned"])
    else:
        det, loc = "", ""
    cl = pct(s["clean_flagged"], s["clean"]) if s["clean"] else ""
    t = f"{s['cpu_ms_median']:.1f} / {s['cpu_ms_p95']:.1f}" if s["cpu_ms_median"] is not None else ""
    return (f"{label:{width}s} {s['files']:5d} {det:>18s} {loc:>18s} {_f(s['demo_precision']):>7s} "
            f"{_f(s['demo_recall']):>7s} {cl:>16s} {t:>13s}")


def _header(first: str, width: int = 22) -> str:
    h = (f"{first:{width}s} {'files':>5s} {'file recall':>18s} {'exact trigger span':>18s} {'demo P':>7s} "
         f"{'demo R':>7s} {'clean flagged':>16s} {'cpu ms med/p95':>13s}")
    return h + "\n" + "-" * len(h)


def print_report(out: dict) -> None:
    sys.stdout.flush()
    print(f"\n== demonstrations detector, weights={out['weights']} (flag at {FLAG}, sanitize at {ACT}); code: {out['code']} ==")
    print(_header("set"))
    for name, s in out["sets"].items():
        print(_row(name, s))
    if "timing_generated" in out:
        t = out["timing_generated"]
        print(f"CPU per file, all generated files ({t['files']}): median {t['cpu_ms_median']:.2f} ms, p95 {t['cpu_ms_p95']:.2f} ms")
    for key, title in (("domain", "domain"), ("step_kind", "step kind"), ("trigger_form", "trigger form")):
        for name, groups in out["groups"].get(key, {}).items():
            print(f"\n-- {name}, per {title} --")
            print(_header(title))
            for g, s in groups.items():
                tag = ""
                if key == "step_kind" and g in HELD_OUT_STEP_KINDS:
                    tag = " *"
                print(_row((g or "-") + tag, s))
    print("\n(* = held-out step kind)")
    if "gate_shared" in out:
        g = out["gate_shared"]
        print(f"active-attack gate (shared, triggered query): {pct(g['hit'], g['n'])}")
    for name, s in out.get("sanitize", {}).items():
        extra = f"; {s['dropped']} demos dropped, {s['repaired']} repaired exactly" if "dropped" in s else ""
        print(f"sanitize success ({name}, via Guard + default policy): {pct(s['ok'], s['n'])}{extra}")
    for name, c in out.get("identity", {}).items():
        print(f"clean files byte-identical through the guard ({name}): {pct(c['identical'], c['n'])}")
    if "warm_ms_median" in out:
        print(f"warm cache (same template again): {out['warm_ms_median']:.2f} ms median")
    for name, s in out["sets"].items():
        if s["misses"]:
            print(f"  missed in {name}: {s['misses'][:6]}{' …' if len(s['misses']) > 6 else ''}")
        if s["false_positives"]:
            print(f"  flagged clean in {name}: {s['false_positives'][:6]}{' …' if len(s['false_positives']) > 6 else ''}")


def paired_timing(base_root: Path, reps: int = 3) -> dict:
    """CPU per file of this checkout's detector and of `base_root`'s (another checkout,
    e.g. the last release), on the same generated eval files, alternating per file (so
    both see the same machine load), every cache cleared before each call, the lower of
    `reps` runs per file. Both packages are imported side by side under other names."""
    import importlib
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="pg-paired-"))
    (tmp / "pg_this").symlink_to(HERE.parent / "promptguard")
    (tmp / "pg_base").symlink_to(base_root.resolve() / "promptguard")
    sys.path.insert(0, str(tmp))
    files = poisoned_files("eval", "held", 60) + poisoned_files("eval", "dev", 60) + clean_files("eval", 60)
    runs = {}
    for name in ("pg_base", "pg_this"):
        parsing = importlib.import_module(f"{name}.parsing")
        analysis = importlib.import_module(f"{name}.detectors.demonstrations.analysis")
        detector = importlib.import_module(f"{name}.detectors.demonstrations.detector")
        segs = [parsing.segments_from_prompt(p.text) if p.text is not None else parsing.segments_from_messages(p.messages)
                for p in files]
        runs[name] = (analysis.clear_caches, detector.DemonstrationsDetector(), segs)
    cpu: dict[str, list[float]] = {n: [float("inf")] * len(files) for n in runs}
    for r in range(reps):
        for i in range(len(files)):
            for n in (("pg_base", "pg_this") if (i + r) % 2 == 0 else ("pg_this", "pg_base")):
                clear, det, segs = runs[n]
                clear()
                c0 = time.thread_time()
                det.detect(segs[i])
                cpu[n][i] = min(cpu[n][i], (time.thread_time() - c0) * 1000)
    out = {}
    for n, v in cpu.items():
        s = sorted(v)
        out[n] = {"median": statistics.median(s), "p95": s[int(0.95 * (len(s) - 1))], "mean": statistics.mean(s)}
    ratios = sorted(b / a for a, b in zip(cpu["pg_base"], cpu["pg_this"]) if a > 0)
    out["ratio_median"] = statistics.median(ratios)
    out["files"] = len(files)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="auto", choices=["auto", "fitted", "principled", "both"])
    ap.add_argument("--sets", default="eval,legacy", help="comma-separated: eval, tune, legacy")
    ap.add_argument("--per-domain", type=int, default=60, help="generated files per domain and set")
    ap.add_argument("--badchain", type=Path, default=HERE.parent.parent / "shared" / "data" / "badchain")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--code", type=Path, default=None, help="measure the detector of another checkout (its root)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "badchain_static.json")
    ap.add_argument("--paired-timing", type=Path, default=None, metavar="BASE_ROOT",
                    help="only time this checkout against another one (its root) on the same files, alternating")
    args = ap.parse_args()
    if args.paired_timing is not None:
        t = paired_timing(args.paired_timing)
        print(f"paired CPU per file, {t['files']} generated eval files, alternating, lower of 3 runs:")
        for n, label in (("pg_base", f"base ({args.paired_timing})"), ("pg_this", "this checkout")):
            print(f"  {label:40s} median {t[n]['median']:.2f} ms  p95 {t[n]['p95']:.2f} ms  mean {t[n]['mean']:.2f} ms")
        print(f"  per-file ratio this/base, median: {t['ratio_median']:.3f}")
        return
    which = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = set(which) - {"eval", "tune", "legacy"}
    if bad:
        ap.error(f"unknown set(s): {', '.join(sorted(bad))}")
    badchain = args.badchain if args.badchain.is_dir() else None
    if badchain is None and "legacy" in which:
        print(f"note: {args.badchain} not found; the shared BadChain sets are skipped", file=sys.stderr)
    weights = ["fitted", "principled"] if args.weights == "both" else [args.weights]
    results = []
    for w in weights:
        try:
            out = run(w, badchain, args.seed, which, args.per_domain)
        except ValueError as e:
            print(f"weights={w}: {e}", file=sys.stderr)
            continue
        print_report(out)
        results.append(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
