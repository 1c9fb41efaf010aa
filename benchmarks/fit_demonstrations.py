"""Fit the demonstrations detector's three logistic models on synthetic prompts.

    .venv/bin/python benchmarks/fit_demonstrations.py [--badchain ../shared/data/badchain] [--n 900] [--seed 11]

Training data (never the shared BadChain prompt files, never the hand-written worked
examples that the benchmark measures generalisation on, never a held-out step kind):
- clean few-shot prompts built from the first half of each BadChain *test-data* pool
  (MATH solutions, StrategyQA, last letters, CommonsenseQA) with benign variants;
- the same pools poisoned with trigger/step *family A* (benchmarks/demo_corpus.py):
  tokens such as "qxz" or "¤¤", phrases, instruction-like sentences; steps that
  multiply or add a constant, take the previous letter, answer the reverse,
  upper-case a string;
- the ``tune`` split of benchmarks/badchain_domains.py (seven answer-type domains, the
  step kinds that are not held out, the ``tune`` triggers), poisoned and clean.

Fits, in order, the step model (label: the demonstration is poisoned), the trigger
model (label: the candidate is the inserted trigger), the demonstration model, each
with scikit-learn's LogisticRegression (L2, C=1), and writes
promptguard/detectors/demonstrations/weights.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from badchain_domains import clean_files, poisoned_files
from demo_corpus import (
    SUFFIXES_A,
    clean_prompts,
    csqa_demos,
    letter_demos,
    math_demos,
    poisoned_prompts,
    strategyqa_demos,
)

from promptguard.detectors.demonstrations.analysis import (
    demo_features,
    stage_candidates,
    stage_steps,
)
from promptguard.detectors.demonstrations.scoring import (
    DEMO_FEATURES,
    PRINCIPLED,
    STEP_FEATURES,
    TRIGGER_FEATURES,
    WEIGHTS_FILE,
    logistic,
)
from promptguard.detectors.demonstrations.structure import demos_of
from promptguard.parsing import segments_from_messages, segments_from_prompt

# Each signal's weight is constrained to the sign its meaning gives it (evidence of a
# backdoor can only raise the score, an honest re-check or a stop-word span only lower
# it): a monotone logistic model, so that quirks of the synthetic data cannot flip a
# signal. Features not listed are free.
NEGATIVE = {"honest_check", "stop_frac", "single", "all_demos"}
FREE = {"df_frac", "prev_concluded", "skeleton_share"}


def fit(X, y, names, *, l2: float = 1.0, clean_weight: float = 1.0):
    """L2-regularised logistic regression with sign constraints (scipy L-BFGS-B)."""
    import numpy as np
    from scipy.optimize import minimize
    from sklearn.metrics import roc_auc_score

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    sw = np.where(y > 0, 1.0, clean_weight)
    n, d = X.shape

    def loss(theta):
        b, w = theta[0], theta[1:]
        z = X @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        ll = sw * (np.logaddexp(0, z) - y * z)
        g = sw * (p - y)
        f = ll.sum() / n + 0.5 * l2 * (w @ w) / n
        grad = np.concatenate([[g.sum() / n], X.T @ g / n + l2 * w / n])
        return f, grad

    bounds = [(None, None)]
    for k in names:
        bounds.append((None, 0.0) if k in NEGATIVE else (None, None) if k in FREE else (0.0, None))
    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    theta = res.x
    w = {"bias": float(theta[0])}
    w.update({k: float(v) for k, v in zip(names, theta[1:])})
    z = X @ theta[1:] + theta[0]
    auc = roc_auc_score(y, z) if len(set(y.tolist())) > 1 else None
    return w, {"n": int(n), "positives": int(y.sum()), "train_auc": auc, "converged": bool(res.success)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--badchain", type=Path, default=HERE.parent.parent / "shared" / "data" / "badchain")
    ap.add_argument("--n", type=int, default=900, help="poisoned training prompts")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--clean-weight", type=float, default=2.0,
                    help="sample weight of clean examples (>1 trades recall for fewer false positives)")
    ap.add_argument("--generated", type=int, default=60,
                    help="files per domain from the tune split of badchain_domains (0: none)")
    ap.add_argument("--dry-run", action="store_true", help="print the weights, do not write weights.json")
    args = ap.parse_args()
    if not (args.badchain / "test_data").is_dir():
        sys.exit(f"need the BadChain test data at {args.badchain}/test_data")
    t0 = time.time()
    rng = random.Random(args.seed)
    pools = {}
    for name, fn in (("math", math_demos), ("strategyqa", strategyqa_demos), ("letter", letter_demos), ("csqa", csqa_demos)):
        full = fn(args.badchain)
        pools[name] = full[: len(full) // 2]  # the benchmark's clean corpus uses the other half
    prompts = poisoned_prompts(pools, "A", rng, n=args.n, tag="fit", chat_share=0.1)
    prompts += clean_prompts(args.badchain, rng, n_test_data=args.n, part=0, suffixes=SUFFIXES_A)
    if args.generated:
        prompts += poisoned_files("tune", "dev", args.generated) + clean_files("tune", args.generated)
    print(f"{len(prompts)} training prompts ({sum(1 for p in prompts if p.poisoned)} poisoned)")

    parsed = []
    for p in prompts:
        segs = segments_from_prompt(p.text) if p.text is not None else segments_from_messages(p.messages)
        demos = demos_of(segs)
        if len(demos) != p.n_demos:
            continue  # the parser saw a different number of worked examples: skip, labels would shift
        parsed.append((p, demos))

    weights = {"step": dict(PRINCIPLED["step"]), "trigger": dict(PRINCIPLED["trigger"]), "demo": dict(PRINCIPLED["demo"])}
    report = {}
    # 1. step model
    X, y, cache = [], [], []
    for p, demos in parsed:
        sigs, feats, _ = stage_steps(demos, weights)
        cache.append((sigs, feats))
        for i, f in enumerate(feats):
            X.append([f.get(k, 0.0) for k in STEP_FEATURES])
            y.append(1 if i in p.poisoned else 0)
    weights["step"], report["step"] = fit(X, y, STEP_FEATURES, clean_weight=args.clean_weight)
    # 2. trigger model
    X, y = [], []
    cand_cache = []
    for (p, demos), (sigs, feats) in zip(parsed, cache):
        step_p = [logistic(weights["step"], f) if d.steps else 0.0 for d, f in zip(demos, feats)]
        cands = stage_candidates(demos, sigs, step_p, PRINCIPLED["trigger"])
        cand_cache.append((step_p, cands))
        trig = (p.trigger or "").strip()
        for c, f in cands:
            X.append([f.get(k, 0.0) for k in TRIGGER_FEATURES])
            y.append(1 if trig and c.text.strip() == trig else 0)
    weights["trigger"], report["trigger"] = fit(X, y, TRIGGER_FEATURES, clean_weight=args.clean_weight)
    # 3. demonstration model
    X, y = [], []
    for (p, demos), (step_p, cands) in zip(parsed, cand_cache):
        scored = sorted(((logistic(weights["trigger"], f), c, f) for c, f in cands), key=lambda x: -x[0])
        for i, x in enumerate(demo_features(len(demos), step_p, scored)):
            X.append([x.get(k, 0.0) for k in DEMO_FEATURES])
            y.append(1 if i in p.poisoned else 0)
    weights["demo"], report["demo"] = fit(X, y, DEMO_FEATURES, clean_weight=args.clean_weight)

    out = {
        "about": "Fitted by benchmarks/fit_demonstrations.py on synthetic prompts (BadChain test-data pools, "
                 "first halves; trigger/step family A; the tune split of badchain_domains, no held-out step "
                 "kind). Not fitted on the shared BadChain prompt files.",
        "seed": args.seed,
        "clean_weight": args.clean_weight,
        "training_prompts": len(parsed),
        "report": report,
        "weights": {k: {n: round(v, 4) for n, v in w.items()} for k, w in weights.items()},
    }
    print(json.dumps(out["report"], indent=1))
    print(json.dumps(out["weights"], indent=1))
    if not args.dry_run:
        WEIGHTS_FILE.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {WEIGHTS_FILE} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
