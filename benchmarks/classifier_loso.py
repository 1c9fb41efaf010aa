"""Leave-one-source-out: the fine-tuned classifier against rules, the embeddings
head, rules + classifier, jailguard and prompt-guardrail — one table, one run,
the same held-out rows for every system.

Folds (each held out in turn; the model, its thresholds and its calibration are
fitted on everything else; `synthetic` and `hard-benign` rows are always on the
training side):

    s-labs · neuralchemy · deepset · bipia (email + table + code) ·
    jbb+acp (jailbreakbench attacks + awesome-chatgpt-prompts role prompts) ·
    yanismiraoui (multilingual attacks only: recall at training-side thresholds)

Per fold and system: ROC AUC and recall at 1/2/5% FPR read off the held-out ROC
curve (the same for every system), and recall / FPR at the threshold the
*training side* gives for 2% FPR (what a deployment would get). The embeddings
head is retrained in every fold on the same rows (MiniLM windows + logistic
regression, the current `embeddings` detector's recipe).

    .venv/bin/python benchmarks/classifier_loso.py [--corpus .cache/classifier-corpus]
        [--folds s-labs,deepset] [--budget 600000] [--seed 0] [--no-guards] [--no-head] [--reuse]
        [--guards-cached] [--head-cap 1000] [--tag v3]

Prints the tables; writes benchmarks/out/classifier_loso.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import OUT, ROOT

sys.path.insert(0, str(ROOT))

FOLDS = {
    "s-labs": ("s-labs",),
    "neuralchemy": ("neuralchemy",),
    "deepset": ("deepset",),
    "bipia": ("bipia-email", "bipia-table", "bipia-code"),
    "jbb+acp": ("jailbreakbench", "awesome-chatgpt-prompts"),
    "yanismiraoui": ("yanismiraoui",),
}
ALWAYS_TRAIN = ("synthetic", "hard-benign")
FPRS = (0.01, 0.02, 0.05)


def roc_recall(y: np.ndarray, s: np.ndarray, fpr_max: float) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    return float(tpr[np.searchsorted(fpr, fpr_max, side="right") - 1])


def fold_metrics(y: np.ndarray, s: np.ndarray, thr2: float | None) -> dict:
    from sklearn.metrics import roc_auc_score

    out: dict = {"n": int(len(y)), "attacks": int(y.sum())}
    if len(set(y.tolist())) == 2:
        out["auc"] = float(roc_auc_score(y, s))
        for f in FPRS:
            out[f"r@{f:g}"] = roc_recall(y, s, f)
    if thr2 is not None:
        flagged = s >= thr2
        if (y == 1).any():
            out["recall@train2%"] = float(flagged[y == 1].mean())
        if (y == 0).any():
            out["fpr@train2%"] = float(flagged[y == 0].mean())
    return out


def train_side_threshold(scores: np.ndarray, fpr: float = 0.02) -> float:
    """The score at `fpr` false positives on training-side benign rows (flagged: score >= it);
    never 0, which would flag a row no detector fired on."""
    return max(float(np.quantile(scores, 1 - fpr)), 1e-6) if len(scores) else 1.0


# -- systems ---------------------------------------------------------------------------------------


def rules_scores(rows) -> np.ndarray:
    from promptguard.detectors.base import create
    from promptguard.policy import load_policy
    from promptguard.segments import SegmentBuilder, SegmentKind

    pol = load_policy()
    det = create("rules", pol.detectors["rules"].options, pol.base_dir)
    out = np.zeros(len(rows))
    for i, r in enumerate(rows):
        b = SegmentBuilder()
        b.add(SegmentKind(r.kind), r.text)
        out[i] = max((f.score for f in det.detect(b.segments)), default=0.0)
    return out


def _key(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def head_embeddings(rows, log, chunk: int = 2000, must: set[int] | None = None, cap: int | None = None,
                    seed: int = 0):
    """MiniLM window embeddings and known-attack similarities of every row, cached on
    disk per text (a rebuilt corpus re-embeds only its new texts). With `cap`, of the
    rows not embedded before only the `must` rows (the held-out ones) and a seeded
    sample of at most `cap` rows per source are embedded; the others get no vectors
    (and the head does not train on them)."""
    from promptguard.embeddings import get_embedder
    from promptguard.embeddings.attacks import AttackIndex

    emb = get_embedder()
    index = AttackIndex.load(emb)
    store = OUT / "cache" / f"head-vectors-{emb.name.replace('/', '_').replace(':', '_')}.npz"
    have: dict[str, np.ndarray] = {}
    if store.is_file():
        z = np.load(store)
        all_vecs = z["vecs"]  # once: each z["vecs"] reads the whole array again (and a slice keeps it alive)
        off = 0
        for k, n in zip(z["keys"].tolist(), z["lens"].tolist()):
            have[k] = all_vecs[off : off + n]
            off += n
    missing = [i for i, r in enumerate(rows) if _key(r.text) not in have]
    if cap is not None:
        import random

        rng = random.Random(seed)
        by_src: dict[str, list[int]] = {}
        for i in missing:
            if must is None or i not in must:
                by_src.setdefault(rows[i].source, []).append(i)
        keep = [i for i in missing if must is not None and i in must]
        for src_name in sorted(by_src):
            ids = by_src[src_name]
            keep += rng.sample(ids, min(cap, len(ids)))
        log(f"  head embeddings: {len(missing)} rows not embedded before; embedding {len(keep)} "
            f"(held-out rows + at most {cap} per source)")
        missing = keep
    todo = sorted({rows[i].text for i in missing}, key=len)
    t0 = time.perf_counter()

    def save() -> None:
        keys = list(have)
        vecs = np.concatenate([have[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), lens=np.array([len(have[k]) for k in keys]), vecs=vecs)
        os.replace(tmp, store)

    for s in range(0, len(todo), chunk):
        part = todo[s : s + chunk]
        wins = [emb.windows(t) for t in part]
        flat = [w.text for ws in wins for w in ws]
        vecs = emb.embed(flat) if flat else np.zeros((0, 384), np.float32)
        i = 0
        for t, ws in zip(part, wins):
            have[_key(t)] = vecs[i : i + len(ws)]
            i += len(ws)
        save()
        log(f"  head embeddings: {s + len(part)}/{len(todo)} new texts ({time.perf_counter() - t0:.0f} s)")
    empty = np.zeros((0, 384), np.float32)
    vecs = [have.get(_key(r.text), empty) for r in rows]
    sims = [index.nearest(v, 3)[0] if len(v) else np.zeros((0, 3), np.float32) for v in vecs]
    return vecs, sims


def guard_scores_by_text(texts: list[str], log, score_new: bool = True) -> dict[str, dict[str, float]]:
    """jailguard / prompt-guardrail scores per text, cached on disk per text; only
    texts not scored before go through benchmarks/guard_runner.py (none with
    `score_new=False`: the texts without a cached score are left out)."""
    from injection_detection import GUARD_VENV

    store = OUT / "cache" / "guard-scores-by-text.json"
    have: dict[str, dict[str, float]] = json.loads(store.read_text()) if store.is_file() else {}
    # earlier whole-list runs of injection_detection.guard_scores
    for f in OUT.glob("guard_scores-*.json"):
        src = OUT / "dev_texts.jsonl"
        try:
            g = json.loads(f.read_text())
            listed = [json.loads(line)["text"] for line in src.open(encoding="utf-8")] if src.is_file() else []
        except (OSError, ValueError):
            continue
        if listed and all(len(v["scores"]) == len(listed) for v in g.values()):
            for j, t in enumerate(listed):
                have.setdefault(_key(t), {name: float(v["scores"][j]) for name, v in g.items()})
    todo = [t for t in dict.fromkeys(texts) if _key(t) not in have]
    py = GUARD_VENV / "bin" / "python"
    if todo and not score_new:
        log(f"guard baselines: {len(todo)} texts have no cached score (left out: --guards-cached)")
    elif todo and py.is_file():
        import subprocess

        src = OUT / "guard_todo.jsonl"
        dst = OUT / "guard_todo_scores.json"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in todo), encoding="utf-8")
        log(f"guard baselines: scoring {len(todo)} new texts")
        proc = subprocess.run([str(py), str(ROOT / "benchmarks" / "guard_runner.py"), str(src), str(dst)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"(guard runner failed: {proc.stderr.strip()[-800:]})")
        else:
            g = json.loads(dst.read_text())
            for j, t in enumerate(todo):
                have[_key(t)] = {name: float(v["scores"][j]) for name, v in g.items()}
    elif todo:
        log(f"(guard baselines skipped: no venv at {GUARD_VENV}; run benchmarks/setup_guard_baselines.sh)")
        return {}
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(have))
    return {t: have[_key(t)] for t in texts if _key(t) in have}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / ".cache" / "classifier-corpus")
    ap.add_argument("--folds", default=",".join(FOLDS))
    ap.add_argument("--budget", type=int, default=1_000_000, help="training tokens per fold")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1 is faster on a machine shared with other jobs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frozen-layers", type=int, default=4)
    ap.add_argument("--no-guards", action="store_true")
    ap.add_argument("--no-head", action="store_true")
    ap.add_argument("--guards-cached", action="store_true",
                    help="score the guard baselines only where a cached score exists (their thresholds "
                         "come from the training side's benign rows that have one)")
    ap.add_argument("--head-cap", type=int, default=None,
                    help="embed for the head at most this many new rows per source (held-out rows always)")
    ap.add_argument("--reuse", action="store_true", help="reuse fold models already trained with the same settings")
    ap.add_argument("--no-views-too", action="store_true", help="also score without the normalised views")
    ap.add_argument("--tag", default="", help="suffix for the output files (several configurations side by side)")
    args = ap.parse_args()

    def log(m: str) -> None:
        print(m, flush=True)

    from promptguard.classifier.corpus import read_rows
    from promptguard.classifier.runtime import Classifier
    from promptguard.classifier.text import WindowTokenizer
    from promptguard.classifier.training import FeatureCache, TrainConfig, base_model_dir, fit, split_calibration

    rows = list(read_rows(args.corpus / "corpus.jsonl"))
    corpus_meta = json.loads((args.corpus / "corpus.json").read_text())
    log(f"corpus: {len(rows)} rows, sha256 {corpus_meta['corpus_sha256'][:12]}")
    cfg = TrainConfig(seed=args.seed, token_budget=args.budget, frozen_layers=args.frozen_layers, threads=args.threads)
    tok = WindowTokenizer(base_model_dir() / "tokenizer.json", window_tokens=cfg.window_tokens,
                          overlap_tokens=cfg.overlap_tokens)
    cache_dir = OUT / "classifier_cache"
    cache = FeatureCache(tok, cfg.frozen_layers, cache_dir, cfg.threads)
    cache_path = cache_dir / f"features-l{cfg.frozen_layers}-w{cfg.window_tokens}-pc"
    if cache.load(cache_path):
        log(f"feature cache: {len(cache.table.windows)} windows from {cache_path.name}")
    n_cached = len(cache.table.windows)
    cache.autosave = cache_path

    src = np.array([r.source for r in rows])
    y = np.array([r.label for r in rows])
    evaluable = ~np.isin(src, ALWAYS_TRAIN)
    ev_idx = np.where(evaluable)[0]

    # systems that need no training: scores for every evaluable row, once
    t0 = time.perf_counter()
    s_rules = np.zeros(len(rows))
    s_rules_all = rules_scores(rows)
    s_rules[:] = s_rules_all
    log(f"rules: {time.perf_counter() - t0:.0f} s")
    guards: dict[str, np.ndarray] = {}
    guard_has = np.ones(len(rows), dtype=bool)
    if not args.no_guards:
        g = guard_scores_by_text([rows[i].text for i in ev_idx], log, score_new=not args.guards_cached)
        guard_has = np.array([r.text in g for r in rows])
        names = sorted({n for v in g.values() for n in v})
        for name in names:
            full = np.full(len(rows), np.nan)
            for i in ev_idx:
                if rows[i].text in g:
                    full[i] = g[rows[i].text][name]
            guards[name] = np.nan_to_num(full, nan=0.0)

    vecs = sims = None
    if not args.no_head:
        folds_held = np.where(np.isin(src, [s for f in args.folds.split(",") if f for s in FOLDS[f]]))[0]
        vecs, sims = head_embeddings(rows, log, must={int(i) for i in folds_held}, cap=args.head_cap,
                                     seed=args.seed)

    tag = f"-{args.tag}" if args.tag else ""
    results: dict[str, dict] = {}
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for fold in [f for f in args.folds.split(",") if f]:
        held_src = FOLDS[fold]
        held = np.where(np.isin(src, held_src))[0]
        train = [rows[i] for i in np.where(~np.isin(src, held_src))[0]]
        out_dir = OUT / "loso" / f"{fold}{tag}-seed{args.seed}"
        t0 = time.perf_counter()
        if args.reuse and (out_dir / "classifier.json").is_file():
            clf = Classifier(out_dir, threads=args.threads)
            log(f"[{fold}] reusing {out_dir}")
        else:
            log(f"[{fold}] training on {len(train)} rows, holding out {len(held)}")
            clf = fit(train, out_dir, cfg, cache=cache, log=log, meta={"fold": fold, "held_out": list(held_src)})
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = clf.score([(rows[i].text, rows[i].kind) for i in held], calibrated=False)
        s_new = np.array([r.probability for r in res])
        t_score = time.perf_counter() - t0
        # training-side thresholds (2% FPR) for the held-out rows' kinds
        kinds = sorted({rows[i].kind for i in held})
        cal = clf.calibration
        thr_new = {k: float(cal.get(k, cal.get("query", {})).get("at_fpr", {}).get("0.02", 0.5)) for k in kinds}
        fit_rows, cal_rows = split_calibration(train, cfg.calib_fraction, cfg.seed)
        systems: dict[str, tuple[np.ndarray, dict[str, float]]] = {}

        def side_thr(scores_all: np.ndarray, pick) -> dict[str, float]:
            out = {}
            for k in kinds:
                m = np.array([pick(i) and rows[i].kind == k and rows[i].label == 0 for i in range(len(rows))])
                out[k] = train_side_threshold(scores_all[m]) if m.any() else 1.0
            return out

        train_mask = ~np.isin(src, held_src)
        systems["rules"] = (s_rules[held], side_thr(s_rules, lambda i: train_mask[i]))
        if vecs is not None:
            from promptguard.embeddings.head import bag_scores, train_head

            fit_ids = {r.id for r in fit_rows}
            cal_ids = {r.id for r in cal_rows}
            idx_fit = [i for i in range(len(rows)) if train_mask[i] and rows[i].id in fit_ids and len(vecs[i])]
            h = train_head([vecs[i] for i in idx_fit], [sims[i] for i in idx_fit], y[idx_fit], C=0.1, rounds=3)
            s_head_held = bag_scores(h, [vecs[i] for i in held], [sims[i] for i in held])
            idx_cal = [i for i in range(len(rows)) if train_mask[i] and rows[i].id in cal_ids and len(vecs[i])]
            s_head_cal = np.zeros(len(rows))
            s_head_cal[idx_cal] = bag_scores(h, [vecs[i] for i in idx_cal], [sims[i] for i in idx_cal])
            cal_set = set(idx_cal)
            systems["embeddings head"] = (s_head_held, side_thr(s_head_cal, lambda i: i in cal_set))
        systems["classifier"] = (s_new, thr_new)
        if args.no_views_too:
            plain = Classifier(out_dir, views=False, threads=args.threads)
            s_plain = np.array([r.probability for r in plain.score([(rows[i].text, rows[i].kind) for i in held],
                                                                    calibrated=False)])
            systems["classifier, no views"] = (s_plain, thr_new)
        # rules + classifier, ranked the way the policy decides: a rules hit at its act
        # threshold blocks whatever the classifier says; other rows by the larger score
        comb = np.where(s_rules[held] >= 0.85, 1.0 + s_rules[held], np.maximum(s_rules[held], s_new))
        systems["rules + classifier"] = (comb, {k: max(thr_new[k], 0.0) for k in kinds})
        for name, s_all in guards.items():
            # thresholds from the other evaluable sources' benign rows (the guards never train here)
            if not guard_has[held].all():
                log(f"[{fold}] {name}: {int((~guard_has[held]).sum())} held-out rows without a score (left out)")
                continue
            systems[name] = (s_all[held], side_thr(s_all, lambda i: train_mask[i] and evaluable[i] and guard_has[i]))

        fold_res = {}
        for name, (s, thr) in systems.items():
            t = np.array([thr[rows[i].kind] for i in held])
            m = fold_metrics(y[held], s, None)
            flagged = s >= t
            if (y[held] == 1).any():
                m["recall@train2%"] = float(flagged[y[held] == 1].mean())
            if (y[held] == 0).any():
                m["fpr@train2%"] = float(flagged[y[held] == 0].mean())
            fold_res[name] = m
            pooled.setdefault(name, []).append((y[held], s))
        # per sub-source inside the fold (classifier)
        subs = {}
        for s_name in held_src:
            mm = src[held] == s_name
            subs[s_name] = {name: fold_metrics(y[held][mm], s[mm], None) | (
                {"recall@train2%": float((s[mm] >= np.array([thr[rows[i].kind] for i in held[mm]]))[y[held][mm] == 1].mean())}
                if (y[held][mm] == 1).any() else {}) for name, (s, thr) in systems.items()}
        results[fold] = {"systems": fold_res, "sub_sources": subs, "fit_seconds": round(t_fit, 1),
                         "score_seconds": round(t_score, 1), "held_out_rows": int(len(held)),
                         "thresholds_classifier": thr_new}
        log(f"[{fold}] done: fit {t_fit:.0f} s, scoring {len(held)} rows {t_score:.0f} s")
        _print_fold(fold, fold_res)
        (OUT / f"classifier_loso{tag}-seed{args.seed}.json").write_text(json.dumps(
            {"corpus_sha256": corpus_meta["corpus_sha256"], "config": cfg.__dict__, "folds": results}, indent=2,
            default=float))

    _print_summary(results)


def _fmt(v) -> str:
    return f"{v:6.3f}" if isinstance(v, float) else f"{'–':>6s}"


def _print_fold(fold: str, res: dict) -> None:
    print(f"\n== held out: {fold} ==")
    print(f"{'system':22s} {'AUC':>6s} {'R@1%':>6s} {'R@2%':>6s} {'R@5%':>6s} | {'recall':>6s} {'FPR':>6s}  (at the training side's 2% threshold)")
    for name, m in res.items():
        print(f"{name:22s} {_fmt(m.get('auc'))} {_fmt(m.get('r@0.01'))} {_fmt(m.get('r@0.02'))} {_fmt(m.get('r@0.05'))} | "
              f"{_fmt(m.get('recall@train2%'))} {_fmt(m.get('fpr@train2%'))}")


def _print_summary(results: dict) -> None:
    if not results:
        return
    names = list(next(iter(results.values()))["systems"])
    print("\n== mean over held-out folds with both classes (macro) ==")
    print(f"{'system':22s} {'AUC':>6s} {'R@1%':>6s} {'R@2%':>6s} {'R@5%':>6s} | {'recall':>6s} {'FPR':>6s}")
    for name in names:
        ms = [r["systems"][name] for r in results.values() if "auc" in r["systems"][name]]
        row = {k: float(np.mean([m[k] for m in ms])) for k in ("auc", "r@0.01", "r@0.02", "r@0.05") if ms}
        rec = [r["systems"][name]["recall@train2%"] for r in results.values() if "recall@train2%" in r["systems"][name]]
        fp = [r["systems"][name]["fpr@train2%"] for r in results.values() if "fpr@train2%" in r["systems"][name]]
        print(f"{name:22s} {_fmt(row.get('auc'))} {_fmt(row.get('r@0.01'))} {_fmt(row.get('r@0.02'))} {_fmt(row.get('r@0.05'))} | "
              f"{_fmt(float(np.mean(rec)) if rec else None)} {_fmt(float(np.mean(fp)) if fp else None)}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
