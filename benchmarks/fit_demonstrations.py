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

from promptguard.detectors.demonstrations.fitting import LabelledPrompt, fit_weights, save_weights
from promptguard.detectors.demonstrations.scoring import WEIGHTS_FILE
from promptguard.detectors.demonstrations.structure import demos_of
from promptguard.parsing import segments_from_messages, segments_from_prompt


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
        parsed.append(LabelledPrompt(demos, set(p.poisoned), p.trigger))
    # each signal's weight held to the sign its meaning gives it (fitting.NEGATIVE / FREE)
    weights, report = fit_weights(parsed, clean_weight=args.clean_weight)

    print(json.dumps(report, indent=1))
    print(json.dumps(weights, indent=1))
    if not args.dry_run:
        save_weights(weights, WEIGHTS_FILE, report=report, seed=args.seed, clean_weight=args.clean_weight,
                     training_prompts=len(parsed),
                     about="Fitted by benchmarks/fit_demonstrations.py on synthetic prompts (BadChain test-data pools, "
                           "first halves; trigger/step family A; the tune split of badchain_domains, no held-out step "
                           "kind). Not fitted on the shared BadChain prompt files.")
        print(f"wrote {WEIGHTS_FILE} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
