"""Adversarial hardening benchmark: `promptguard harden` per round, then fresh generators.

Per round: the generator's evasion rate against the current detector, how many of
those evasions the retrained detector catches, FPR on held clean prompts (the
calibration set the thresholds were chosen on, and a test set never used to
choose anything), and recall / FPR on the fixed validation set the loop never
trains on: ../shared/data/badchain prompt files and ../shared/data/injection/dev.jsonl.

Then the headline comparison: a *fresh* generator (new seed, uniform start) is
trained for the same budget against the round-0 detector and, separately, against
the hardened one; the goal is an evasion rate against the hardened detector at
most half of the one against round 0, with validation recall not lower and the
false positives within the target.

    .venv/bin/python benchmarks/harden.py                 # default configuration
    .venv/bin/python benchmarks/harden.py --rounds 2 --steps 8 --batch 24   # quick look

Prints a table and writes benchmarks/out/harden.json (and the artifacts under
benchmarks/out/harden/). Timings on a shared machine are pessimistic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--fresh-steps", type=int, default=None, help="fresh generator updates (default: --steps)")
    ap.add_argument("--fresh-seeds", type=int, default=3, help="fresh generators per detector (rates are averaged)")
    ap.add_argument("--policy", default=None, help="base policy (default: the packaged one)")
    ap.add_argument("--target-fpr", type=float, default=None)
    ap.add_argument("--tune-base", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "harden"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from promptguard.harden.loop import HardenConfig, fresh_comparison, harden, render_markdown

    cfg = HardenConfig(rounds=args.rounds, steps=args.steps, batch=args.batch, target_fpr=args.target_fpr,
                       tune_base=args.tune_base, seed=args.seed)
    t0 = time.perf_counter()
    res = harden(args.out, cfg, policy_path=args.policy, log=lambda m: print(m, flush=True))
    comp = fresh_comparison(res, steps=args.fresh_steps or args.steps, batch=args.batch, eval_samples=cfg.eval_samples,
                            seeds=[args.seed + 12345 + i for i in range(args.fresh_seeds)],
                            log=lambda m: print(m, flush=True))
    total = time.perf_counter() - t0

    report = json.loads((Path(args.out) / "report.json").read_text())
    report["comparison"] = comp
    report["total_seconds"] = round(total, 1)
    v0 = report["round0"].get("validation") or {}
    vN = (report["rounds"][-1].get("validation") or {}) if report["rounds"] else v0
    target = report["target_fpr"]
    last = report["rounds"][-1] if report["rounds"] else {}
    added_test = last.get("fpr_added_test", 0.0)
    goal = {
        "evasion_halved": comp["ratio"] is not None and comp["ratio"] <= 0.5,
        "validation_recall_not_lower": (vN.get("recall") or 0) >= (v0.get("recall") or 0) if v0 else None,
        "fpr_within_target_test_added": added_test <= target,
        "fpr_added_on_shared_benign": None if not v0 else round((vN.get("fpr_benign") or 0) - (v0.get("fpr_benign") or 0), 4),
        "under_30_minutes": total < 1800,
    }
    report["goal"] = goal
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "harden.json").write_text(json.dumps(report, indent=2, default=str))
    (Path(args.out) / "report.md").write_text(render_markdown(report))

    print()
    print(render_markdown(report))
    print(f"fresh generators ({comp['steps']} steps x {comp['batch']}, seeds {comp['seeds']}): evasion vs round-0 "
          f"detector {comp['round0']:.3f} {comp['round0_per_seed']}, vs hardened {comp['hardened']:.3f} "
          f"{comp['hardened_per_seed']}, ratio {comp['ratio']}")
    print(f"validation recall: round 0 {v0.get('recall')}, final {vN.get('recall')} "
          f"(BadChain {v0.get('recall_badchain')} -> {vN.get('recall_badchain')}, "
          f"injection {v0.get('recall_injection')} -> {vN.get('recall_injection')}); "
          f"shared benign FPR {v0.get('fpr_benign')} -> {vN.get('fpr_benign')}")
    print(f"held clean FPR (test set): base {last.get('fpr_test', 0) - last.get('fpr_added_test', 0):.3f}, "
          f"added by the head {added_test:.3f} (target {target})")
    print(f"goal: {goal}")
    print(f"total {total / 60:.1f} min -> {out / 'harden.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
