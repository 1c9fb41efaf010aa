"""False alarms of one detector at a time on clean data it never trained on:

- clean few-shot / CoT prompt files (benchmarks/fewshot_clean.py: farm arithmetic
  with 3–64 demonstrations, unit conversions, last letters, commonsense multiple
  choice, percentages; completion and chat forms), BadChain test-data prompts and
  hand-written worked examples (benchmarks/demo_corpus.py), scanned as files by the
  real scanner pipeline;
- benign requests that use injection words or sound harmful
  (benchmarks/data/benign_trigger_eval.jsonl, written for this benchmark), sent as
  the user's message.

A file or request counts as flagged when the policy, with only that detector
enabled (its thresholds from policies/default.yaml), decides flag, sanitize or
block. Rates come with a 95% Wilson interval.

    .venv/bin/python benchmarks/classifier_false_alarms.py [--detectors classifier,embeddings] [--model DIR]

Also prints how many eval rows are (near-)duplicates of the training corpus.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import OUT, ROOT, SHARED, wilson

DATA = ROOT / "benchmarks" / "data" / "benign_trigger_eval.jsonl"
# Does the classifier's corpus hold this family's task type (other items, other wording)?
# "no": a task type it never saw (the corpus builder leaves it out on purpose).
TASK_TRAINED = {
    "badchain-math": "yes (other MATH items)", "badchain-strategyqa": "yes (other items)",
    "farm-arithmetic": "yes (word problems)", "handwritten": "partly (4 of 12 domains)",
    "badchain-csqa": "no", "badchain-letter": "no", "commonsense-mc": "no", "last-letters": "no",
    "percentages": "no", "unit-conversion": "no",
}


def guard_with_only(name: str, model: str | None):
    from promptguard.guard import Guard
    from promptguard.policy import DetectorConfig, load_policy

    pol = load_policy()
    opts = dict(pol.detectors[name].options) if name in pol.detectors else {}
    if model and name == "classifier":
        opts["model"] = model
    for k in list(pol.detectors):
        pol.detectors[k] = DetectorConfig(**{**pol.detectors[k].options, "enabled": False})
    pol.detectors[name] = DetectorConfig(**{**opts, "enabled": True})
    return Guard(pol)


def prompt_files(tmp: Path) -> list[tuple[Path, str]]:
    import random

    from demo_corpus import clean_handwritten_prompts, clean_prompts
    from fewshot_clean import clean_fewshot_files

    files = clean_fewshot_files(tmp / "generated", seed=0)
    rng = random.Random(1)
    badchain = SHARED / "data" / "badchain"
    prompts = clean_prompts(badchain if badchain.is_dir() else None, rng, n_test_data=160, part=1)
    prompts += clean_handwritten_prompts(rng)
    d = tmp / "demo_corpus"
    d.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(prompts):
        fam = "badchain-" + p.name.split("/")[1] if not p.name.split("/")[1].startswith("hw") else "handwritten"
        if p.text is not None:
            f = d / f"{i:04d}.txt"
            f.write_text(p.text, encoding="utf-8")
        else:
            f = d / f"{i:04d}.json"
            f.write_text(json.dumps({"messages": p.messages}), encoding="utf-8")
        files.append((f, fam))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", default="classifier,embeddings")
    ap.add_argument("--model", default=None, help="classifier folder (default: the packaged one)")
    ap.add_argument("--corpus", type=Path, default=ROOT / ".cache" / "classifier-corpus")
    args = ap.parse_args()

    from promptguard.parsing import segments_from_messages
    from promptguard.policy import Action
    from promptguard.scanner import scan_file

    tmp = Path(tempfile.mkdtemp(prefix="pg-fa-"))
    files = prompt_files(tmp)
    requests = [json.loads(line) for line in DATA.open(encoding="utf-8") if line.strip()]
    print(f"{len(files)} clean prompt files, {len(requests)} benign requests with trigger words")

    if (args.corpus / "corpus.jsonl").is_file():
        _overlap(args.corpus, files, requests)

    results: dict = {}
    for name in [d for d in args.detectors.split(",") if d]:
        guard = guard_with_only(name, args.model)
        t0 = time.perf_counter()
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        examples: dict[str, list[str]] = defaultdict(list)
        for path, fam in files:
            r = scan_file(guard, path)
            flagged = r.verdict in ("flag", "sanitize", "block", "error")
            per[fam][0] += flagged
            per[fam][1] += 1
            if flagged and len(examples[fam]) < 3:
                examples[fam].append(f"{path.name}: {r.verdict} " + "; ".join(
                    f"{f['segment_kind']} {f['score']:.2f}" for f in r.findings[:2]))
        t_files = time.perf_counter() - t0
        rq: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in requests:
            res = guard.check(segments_from_messages([{"role": "user", "content": row["text"]}]))
            flagged = res.action.rank >= Action.FLAG.rank
            rq[row["category"]][0] += flagged
            rq[row["category"]][1] += 1
            if flagged and len(examples["req/" + row["category"]]) < 5:
                examples["req/" + row["category"]].append(f"{row['text'][:80]} ({max(f.score for f in res.findings):.2f})")
        results[name] = {"files": {k: v for k, v in per.items()}, "requests": {k: v for k, v in rq.items()},
                         "examples": examples, "seconds_files": round(t_files, 1)}
        _print(name, per, rq, examples, t_files)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "classifier_false_alarms.json").write_text(json.dumps(results, indent=2))


def _print(name, per, rq, examples, t_files) -> None:
    print(f"\n== {name} only ==")
    print(f"{'clean prompt files':28s} {'flagged':>8s} {'files':>6s} {'rate':>7s}  {'95% CI':14s}  task type trained on")
    tk = tn = hk = hn = 0
    for fam, (k, n) in sorted(per.items(), key=lambda kv: (TASK_TRAINED.get(kv[0], "?") != "no", kv[0])):
        lo, hi = wilson(k, n)
        seen = TASK_TRAINED.get(fam, "?")
        print(f"  {fam:26s} {k:8d} {n:6d} {k / n:7.3f}  [{lo:.3f}, {hi:.3f}]  {seen}")
        tk, tn = tk + k, tn + n
        if seen == "no":
            hk, hn = hk + k, hn + n
    if hn:
        lo, hi = wilson(hk, hn)
        print(f"  {'held-out task types':26s} {hk:8d} {hn:6d} {hk / hn:7.3f}  [{lo:.3f}, {hi:.3f}]")
    lo, hi = wilson(tk, tn)
    print(f"  {'all files':26s} {tk:8d} {tn:6d} {tk / tn:7.3f}  [{lo:.3f}, {hi:.3f}]   ({t_files:.0f} s)")
    print(f"{'benign requests':28s}")
    tk = tn = 0
    for cat, (k, n) in sorted(rq.items()):
        lo, hi = wilson(k, n)
        print(f"  {cat:26s} {k:8d} {n:6d} {k / n:7.3f}  [{lo:.3f}, {hi:.3f}]")
        tk, tn = tk + k, tn + n
    lo, hi = wilson(tk, tn)
    print(f"  {'all requests':26s} {tk:8d} {tn:6d} {tk / tn:7.3f}  [{lo:.3f}, {hi:.3f}]")
    for k, v in examples.items():
        for e in v:
            print(f"    flagged ({k}): {e}")


def _overlap(corpus: Path, files, requests) -> None:
    """How many eval texts are (near-)copies of training rows (char 3-5-gram cosine >= 0.9)."""
    from promptguard.classifier.corpus import near_duplicate_pairs, normalise, read_rows
    from promptguard.parsing.files import parse_file

    train = [r.text for r in read_rows(corpus / "corpus.jsonl")]
    keys = {normalise(t) for t in train}
    evals = [r["text"] for r in requests]
    for p, _ in files:
        evals.extend(s.text for s in parse_file(p).segments if s.text.strip())
    evals = sorted(set(evals))
    exact = sum(normalise(t) in keys for t in evals)
    n_train = len(train)
    pairs = near_duplicate_pairs(train + evals, 0.9, allowed=lambda a, b: (a < n_train) != (b < n_train))
    near = len({max(a, b) for a, b, _ in pairs})
    print(f"eval texts (segments and requests): {len(evals)}; exact copies of corpus rows: {exact}; "
          f"near-duplicates (>= 0.9): {near}")


if __name__ == "__main__":
    main()
