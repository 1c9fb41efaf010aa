"""Injection detection on the labelled dev set: rules alone, embeddings alone,
their combination, and (same rows, same run) the offline guard libraries
jailguard and prompt-guardrail when their venv exists
(benchmarks/setup_guard_baselines.sh).

Every embeddings figure is out-of-fold: the head is retrained in each of 5
stratified folds (strata: source x label) on the other folds plus the packaged
exemplars, and scores only its held-out fold; the policy's thresholds are the
shipped ones. A leave-one-source-out run shows how the head generalises to a
source it has never seen.

Rows become segments by source: BIPIA rows (e-mails, tables, code answers) are
retrieved `context`; every other row is the user's `query`.

    .venv/bin/python benchmarks/injection_detection.py [--no-guards] [--folds 5]

Prints tables; writes benchmarks/out/injection_detection.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
from _common import OUT, ROOT, load_dev, window_embeddings

GUARD_VENV = Path(os.environ.get("GUARD_BASELINES_VENV", "/work/venvs/guard-baselines"))


def kind_of(row: dict) -> str:
    return "context" if row["source"].startswith("bipia") else "query"


def recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr_max: float) -> tuple[float, float]:
    """Best recall with false-positive rate <= fpr_max, and the threshold giving it."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, s)
    i = np.searchsorted(fpr, fpr_max, side="right") - 1
    return float(tpr[i]), float(thr[i])


def at_threshold(y: np.ndarray, flagged: np.ndarray) -> dict:
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "fpr": fp / max(1, int((y == 0).sum()))}


def metrics(y: np.ndarray, s: np.ndarray, flagged: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    r1, _t1 = recall_at_fpr(y, s, 0.01)
    r2, _ = recall_at_fpr(y, s, 0.02)
    r5, _t5 = recall_at_fpr(y, s, 0.05)
    out = {"auc": float(roc_auc_score(y, s)), "recall@1%fpr": r1, "recall@2%fpr": r2, "recall@5%fpr": r5}
    out.update({f"op_{k}": v for k, v in at_threshold(y, flagged).items()})
    return out


def rules_scores(rows: list[dict]) -> np.ndarray:
    from promptguard.detectors.base import create
    from promptguard.policy import load_policy
    from promptguard.segments import SegmentBuilder, SegmentKind

    pol = load_policy()
    det = create("rules", pol.detectors["rules"].options, pol.base_dir)
    out = np.zeros(len(rows))
    for i, r in enumerate(rows):
        b = SegmentBuilder()
        b.add(SegmentKind(kind_of(r)), r["text"])
        out[i] = max((f.score for f in det.detect(b.segments)), default=0.0)
    return out


def policy_flags(rows: list[dict], scores: dict[str, np.ndarray]) -> np.ndarray:
    """Whether the shipped default policy flags (or acts on) each row given these
    detector scores (one finding per detector and row, on the row's segment kind)."""
    from promptguard.findings import Finding, Severity
    from promptguard.policy import Action, load_policy
    from promptguard.segments import SegmentKind

    pol = load_policy()
    out = np.zeros(len(rows), dtype=bool)
    for i, r in enumerate(rows):
        fs = [
            Finding(d, SegmentKind(kind_of(r)), 0, float(s[i]), Severity.from_score(float(s[i])), "",
                    rule="known-attack" if d == "embeddings" else None)
            for d, s in scores.items() if s[i] > 0
        ]
        out[i] = pol.decide(fs).action.rank >= Action.FLAG.rank
    return out


def guard_scores(rows: list[dict]) -> dict[str, dict]:
    py = GUARD_VENV / "bin" / "python"
    if not py.is_file():
        print(f"(guard baselines skipped: no venv at {GUARD_VENV}; run benchmarks/setup_guard_baselines.sh)")
        return {}
    import hashlib

    body = "".join(json.dumps({"text": r["text"]}) + "\n" for r in rows)
    tag = hashlib.sha1(body.encode()).hexdigest()[:12]
    dst = OUT / f"guard_scores-{tag}.json"
    if dst.is_file() and os.environ.get("GUARD_RERUN") != "1":
        print(f"(guard baseline scores reused from {dst.name}; GUARD_RERUN=1 recomputes them)")
        return json.loads(dst.read_text())
    src = OUT / "dev_texts.jsonl"
    src.write_text(body, encoding="utf-8")
    t0 = time.perf_counter()
    proc = subprocess.run([str(py), str(ROOT / "benchmarks" / "guard_runner.py"), str(src), str(dst)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"(guard runner failed: {proc.stderr.strip()[-800:]})")
        return {}
    print(f"(guard baselines ran in {time.perf_counter() - t0:.0f} s)")
    return json.loads(dst.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-guards", action="store_true", help="skip jailguard / prompt-guardrail")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from promptguard.embeddings import get_embedder
    from promptguard.embeddings.attacks import AttackIndex
    from promptguard.embeddings.head import bag_scores, fit_platt, train_head
    from promptguard.embeddings.training import packaged_rows

    rows = load_dev()
    y = np.array([r["label"] for r in rows])
    print(f"dev set: {len(rows)} rows ({int(y.sum())} attacks)")

    t0 = time.perf_counter()
    s_rules = rules_scores(rows)
    t_rules = time.perf_counter() - t0

    emb = get_embedder()
    index = AttackIndex.load(emb)
    t0 = time.perf_counter()
    _, vecs = window_embeddings([r["text"] for r in rows], emb)
    extra = packaged_rows()
    _, xvecs = window_embeddings([r.text for r in extra], emb)
    t_embed = time.perf_counter() - t0
    sims = [index.nearest(v, 3)[0] for v in vecs]
    xsims = [index.nearest(v, 3)[0] for v in xvecs]
    xy = np.array([r.label for r in extra])

    from promptguard.embeddings.head import Head

    shipped = Head.load()
    C, rounds = float(shipped.meta.get("C", 0.1)), int(shipped.meta.get("rounds", 3))

    def fit(idx):
        return train_head([vecs[i] for i in idx] + xvecs, [sims[i] for i in idx] + xsims,
                          np.concatenate([y[idx], xy]), C=C, rounds=rounds)

    strata = np.array([f"{r['source']}/{r['label']}" for r in rows])
    z_emb = np.zeros(len(rows))
    fold_of = np.zeros(len(rows), dtype=int)
    t0 = time.perf_counter()
    splits = StratifiedKFold(args.folds, shuffle=True, random_state=0).split(np.zeros(len(rows)), strata)
    for f, (tr, te) in enumerate(splits):
        z_emb[te] = bag_scores(fit(tr), [vecs[i] for i in te], [sims[i] for i in te], raw=True)
        fold_of[te] = f
    t_cv = time.perf_counter() - t0
    # Cross-fitted calibration: fold f's raw scores go through a Platt fit on the
    # other folds' out-of-fold scores (the shipped head is calibrated the same way,
    # on out-of-fold scores of all its training data).
    s_emb = np.zeros(len(rows))
    for f in range(args.folds):
        m = fold_of == f
        a, b = fit_platt(z_emb[~m], y[~m])
        s_emb[m] = 1 / (1 + np.exp(-np.clip(a * z_emb[m] + b, -40, 40)))
    # similarity alone (no head): calibrated top-1 cosine to the known-attack index
    s_sim = shipped.similarity_probability(np.array([float(s[:, 0].max()) for s in sims]))

    # leave one source out
    loso = {}
    sources = sorted({r["source"] for r in rows})
    src_arr = np.array([r["source"] for r in rows])
    for src in sources:
        te = np.where(src_arr == src)[0]
        tr = np.where(src_arr != src)[0]
        h = fit(tr)
        h.calibration = shipped.calibration  # scores on the shipped head's scale (AUC does not depend on it)
        s = bag_scores(h, [vecs[i] for i in te], [sims[i] for i in te])
        loso[src] = {"recall@0.5": float((s[y[te] == 1] >= 0.5).mean()) if (y[te] == 1).any() else None,
                     "fpr@0.5": float((s[y[te] == 0] >= 0.5).mean()) if (y[te] == 0).any() else None,
                     "auc": float(roc_auc_score(y[te], s)) if len(set(y[te])) > 1 else None}

    # The policy decides by the most severe action: a rules hit at or above its act
    # threshold blocks whatever the embeddings say. So the combination ranks rows
    # by (rules acted on, then the larger score).
    from promptguard.policy import load_policy

    rules_act = load_policy().default.act_at
    s_comb = np.where(s_rules >= rules_act, 1.0 + s_rules, np.maximum(s_rules, s_emb))
    systems = {
        "rules alone": (s_rules, policy_flags(rows, {"rules": s_rules})),
        "similarity alone (no head)": (s_sim, policy_flags(rows, {"embeddings": s_sim})),
        "embeddings alone (head, CV)": (s_emb, policy_flags(rows, {"embeddings": s_emb})),
        "rules + embeddings (CV)": (s_comb, policy_flags(rows, {"rules": s_rules, "embeddings": s_emb})),
    }
    guards = {} if args.no_guards else guard_scores(rows)
    for name, g in guards.items():
        s = np.array(g["scores"], dtype=float)
        systems[f"{name} (baseline)"] = (s, s >= 0.5)

    results = {name: metrics(y, s, f) for name, (s, f) in systems.items()}
    print()
    print(f"{'system':34s} {'AUC':>6s} {'R@1%':>6s} {'R@2%':>6s} {'R@5%':>6s} | at operating point: "
          f"{'prec':>6s} {'recall':>6s} {'F1':>6s} {'FPR':>6s}")
    for name, m in results.items():
        print(f"{name:34s} {m['auc']:6.3f} {m['recall@1%fpr']:6.3f} {m['recall@2%fpr']:6.3f} "
              f"{m['recall@5%fpr']:6.3f} |                    {m['op_precision']:6.3f} {m['op_recall']:6.3f} "
              f"{m['op_f1']:6.3f} {m['op_fpr']:6.3f}")
    print("(operating point: promptguard rows = the default policy's flag thresholds; baselines = score >= 0.5)")

    print("\nper source (combination, policy flag): flag rate on attacks / on benign")
    per_source = {}
    flags = systems["rules + embeddings (CV)"][1]
    for src in sources:
        m = src_arr == src
        a = m & (y == 1)
        b = m & (y == 0)
        per_source[src] = {"attack_flag_rate": float(flags[a].mean()) if a.any() else None,
                           "benign_flag_rate": float(flags[b].mean()) if b.any() else None}
        print(f"  {src:26s} attacks {per_source[src]['attack_flag_rate'] if a.any() else float('nan'):6.3f}"
              f"   benign {per_source[src]['benign_flag_rate'] if b.any() else float('nan'):6.3f}")
    print("\nleave-one-source-out (head trained without that source):")
    for src, m in loso.items():
        print(f"  {src:26s} " + "  ".join(f"{k} {v:.3f}" for k, v in m.items() if v is not None))
    print(f"\ntimings: rules {t_rules:.1f} s, embedding {t_embed:.1f} s (cached after the first run), "
          f"{args.folds}-fold head training {t_cv:.1f} s")

    # per-kind benign score quantiles: what the policy thresholds were set from
    quant = {}
    for kind in ("query", "context"):
        m = np.array([kind_of(r) == kind for r in rows]) & (y == 0)
        quant[kind] = {str(q): float(np.quantile(s_emb[m], q)) for q in (0.95, 0.98, 0.99, 0.995)}
    print("\nCV embedding scores of benign rows (quantiles) by kind:", json.dumps(quant))

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "injection_detection.json").write_text(json.dumps({
        "rows": len(rows), "folds": args.folds, "results": results, "per_source": per_source,
        "leave_one_source_out": loso, "benign_quantiles": quant,
    }, indent=2))
    np.savez(OUT / "injection_scores.npz", y=y, rules=s_rules, emb=s_emb, sim=s_sim,
             source=src_arr, kind=np.array([r["kind"] for r in rows]))


if __name__ == "__main__":
    main()
