"""Hardening benchmark: `promptguard harden` per round, judged on what it never trained on.

Per round: the evasion rate of a fresh generator against the previous round's
detector set (each round's generator starts from scratch), recall on the attack
families held out of the generator's action space and out of every training row
(leave-family-out: `harden.attack_space.HELD_OUT`), at the policy's operating point
and with thresholds shifted to 1% / 5% false positives on the clean test split,
and the false-positive rate on the clean corpus's `test` split, which no round
trains on or is gated on (few-shot/CoT files separately from system prompts,
documents, code and multilingual text). Rejected rounds are marked.

Targets (issue 20): held-out-family recall +0.10 over round 0; few-shot/CoT false
positives on the held-out test split <= 1% and never above round 0; whole run
<= 30 minutes on the 2-core CPU.

    .venv/bin/python benchmarks/harden.py                               # defaults below
    .venv/bin/python benchmarks/harden.py --rounds 1 --steps 4 --batch 16 --fewshot 6   # quick look

Prints the tables and writes benchmarks/out/harden.json (artifacts under
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


def _rate(m: dict | None, cats: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> tuple[int, int]:
    k = n = 0
    for c, v in (m or {}).items():
        if c == "all" or c in exclude or (cats is not None and c not in cats):
            continue
        k += v["flagged"]
        n += v["n"]
    return k, n


def table(report: dict) -> str:
    fprs = [str(x) for x in report["config"]["fprs"]]
    head = ("| round | accepted | evasion, fresh generator vs previous set | held-out-family recall | "
            + " | ".join(f"held-out recall @{float(x):.0%} FPR" for x in fprs)
            + " | in-space recall | FPR few-shot/CoT (test) | FPR other clean (test) | FPR few-shot/CoT (gate) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in [report["round0"]] + report["rounds"]:
        fk, fn = _rate(m.get("test"), ("fewshot",))
        ok, on = _rate(m.get("test"), exclude=("fewshot", "library"))
        gk, gn = _rate(m.get("gate"), ("fewshot",))
        acc = "" if m["round"] == 0 else ("yes" + (f" ({m['set']})" if m.get("partial") else "") if m.get("accepted")
                                          else "**REJECTED**")
        ev = m.get("evasion_rate")
        at = m.get("heldout_at_fpr") or {}
        lines.append(
            f"| {m['round']} | {acc} | {'' if ev is None else f'{ev:.3f}'} | {(m.get('heldout') or {}).get('mean', 0):.3f} | "
            + " | ".join(f"{(at.get(x) or {}).get('recall', 0):.3f}" for x in fprs)
            + f" | {m.get('inspace_recall', 0):.3f} | {fk / max(1, fn):.3f} ({fk}/{fn}) | {ok / max(1, on):.3f} ({ok}/{on}) | "
            f"{gk / max(1, gn):.3f} ({gk}/{gn}) |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--fewshot", type=int, default=30, help="clean few-shot files per task family (14 families)")
    ap.add_argument("--heldout", type=int, default=30, help="attacks per held-out family")
    ap.add_argument("--replay", type=int, default=1000, help="classifier corpus rows replayed per fine-tune")
    ap.add_argument("--token-budget", type=int, default=40_000, help="classifier fine-tune tokens per round")
    ap.add_argument("--retrain", default="classifier,demonstrations")
    ap.add_argument("--fresh-seeds", type=int, default=1, help="fresh generators vs round 0 and the final set (0: skip)")
    ap.add_argument("--policy", default=None, help="base policy (default: the packaged one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "harden"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from promptguard.harden.loop import HardenConfig, fresh_comparison, harden

    cfg = HardenConfig(rounds=args.rounds, steps=args.steps, batch=args.batch, heldout_per_family=args.heldout,
                       clean={"fewshot": args.fewshot}, replay=args.replay, token_budget=args.token_budget,
                       retrain=tuple(x for x in args.retrain.split(",") if x), seed=args.seed, threads=args.threads)
    t0 = time.perf_counter()
    res = harden(args.out, cfg, policy_path=args.policy, log=lambda m: print(m, flush=True))
    comp = None
    if args.fresh_seeds > 0:
        comp = fresh_comparison(res, steps=args.steps, batch=args.batch, eval_samples=cfg.eval_samples,
                                seeds=[args.seed + 12345 + i for i in range(args.fresh_seeds)],
                                log=lambda m: print(m, flush=True))
    total = time.perf_counter() - t0

    report = json.loads((Path(args.out) / "report.json").read_text())
    report["comparison"] = comp
    report["total_seconds"] = round(total, 1)
    r0 = report["round0"]
    acc = [m for m in report["rounds"] if m.get("accepted")]
    last = acc[-1] if acc else r0
    f0 = _rate(r0.get("test"), ("fewshot",))
    fewshot_rates = [_rate(m.get("test"), ("fewshot",)) for m in acc]
    goal = {
        "heldout_recall_gain": round((last["heldout"]["mean"] or 0) - (r0["heldout"]["mean"] or 0), 4),
        "heldout_recall_gain_ge_0.10": (last["heldout"]["mean"] or 0) - (r0["heldout"]["mean"] or 0) >= 0.10 - 1e-9,
        "fewshot_test_fpr_final": round(_rate(last.get("test"), ("fewshot",))[0] / max(1, f0[1]), 4),
        "fewshot_test_fpr_le_1pct": all(k / max(1, n) <= 0.01 for k, n in fewshot_rates + [f0]) if fewshot_rates else f0[0] / max(1, f0[1]) <= 0.01,
        "fewshot_never_above_round0": all(k <= f0[0] for k, _ in fewshot_rates),
        "rejected_rounds": [m["round"] for m in report["rounds"] if not m.get("accepted")],
        "under_30_minutes": total < 1800,
    }
    report["goal"] = goal
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "harden.json").write_text(json.dumps(report, indent=2, default=str))

    print()
    print(f"held-out families: {', '.join(report['held_out_families'])}")
    print(table(report))
    print()
    fams = sorted((r0.get("heldout") or {}).get("families") or {})
    rows = [r0] + report["rounds"]
    print("| held-out family | " + " | ".join(f"round {m['round']}" for m in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for f in fams:
        print(f"| {f} | " + " | ".join(f"{m['heldout']['families'][f]['recall']:.3f}" for m in rows) + " |")
    print()
    cats = sorted({c for m in rows for c in (m.get("test") or {}) if c != "all"})
    print("| clean test split, flagged | " + " | ".join(f"round {m['round']}" for m in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for c in cats:
        print(f"| {c} | " + " | ".join(f"{m['test'][c]['flagged']}/{m['test'][c]['n']}" if c in m.get('test', {}) else ""
                                       for m in rows) + " |")
    for m in report["rounds"]:
        if not m.get("accepted"):
            print(f"round {m['round']} REJECTED: {'; '.join(m.get('rejected_because') or [])}")
    if r0.get("shared_badchain"):
        print("../shared BadChain files (never trained on): " + ", ".join(
            f"round {m['round']} {m.get('shared_badchain')}" for m in rows))
    if comp:
        print(f"fresh generators ({comp['steps']} steps x {comp['batch']}, seeds {comp['seeds']}): evasion vs round-0 "
              f"set {comp['round0']:.3f}, vs final set {comp['hardened']:.3f}")
    print(f"goal: {goal}")
    print(f"total {total / 60:.1f} min -> {out / 'harden.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
