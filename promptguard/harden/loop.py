"""The hardening loop: a generator against the policy's real detectors, which are
retrained in turn under a false-positive budget; judged on attack families it never
generated.

Round 0 is the policy as it is. Round r:

1. a fresh generator trains (REINFORCE) against detector set r-1 — the policy's
   rules, demonstrations detector and classifier, run as the scanner runs them — and
   its evasion rate is measured on fresh samples;
2. the classifier is fine-tuned from set r-1's model on the round's injections (their
   payload segments and clean twins), clean prompts (the clean corpus's `train`
   split, twins, the library's training files) and a replay sample of its own corpus,
   and its thresholds re-set on clean rows nobody trains on (its corpus's calibration
   split and half of the clean `train` files, by file);
   the demonstrations detector's weights are refitted on the poisoned demonstrations
   found so far and clean few-shot prompts (`retrain`);
3. the budget gate: the candidate set runs over the clean corpus's `gate` split; a set
   that flags more than round 0 did (few-shot files: also more than 1%) or loses
   in-space recall is rejected, then the candidate with only one of the two retrained
   detectors is tried; when none passes, the round is REJECTED and set r-1 stays;
4. the accepted set is scored on the held-out families (recall at the policy's
   operating point and at 1% / 5% false positives of the clean `test` split), on
   in-space validation attacks and on the clean `test` split.

Outputs under ``OUT``::

    rounds/round-NN/        detector set of each accepted round (classifier/, demonstrations.json,
                            manifest.json) and report.json (every round, rejected ones included)
    detector/               the final detector set
    policy.yaml             the base policy pointing at it (use it anywhere)
    generator/              the last round's generator (for `promptguard redteam`)
    attacks.jsonl           every evasion, with its ground truth
    clean/manifest.json     the clean corpus's provenance and splits
    report.json, report.md  the per-round table
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..policy import Policy, default_policy_path, load_policy
from ..segments import Segment
from .attack_space import Attack, AttackSpace, ConstructionError, Holdout
from .cleanset import CleanPrompt, clean_corpus, library_prompts, manifest
from .detector_set import DetectorSet, Evaluator, Verdict, save_set, write_policy
from .dut import prompt_key
from .evaluation import (
    Budget,
    clean_metrics,
    gate,
    heldout_attacks,
    inspace_attacks,
    recall_at_fpr,
    recall_metrics,
)
from .generator import Generator, GeneratorConfig, Sample
from .validator import validate

__all__ = ["HardenConfig", "HardenResult", "HardenError", "harden", "render_markdown", "fresh_comparison",
           "LEARNED"]

LEARNED = ("classifier", "demonstrations")


class HardenError(RuntimeError):
    pass


@dataclass
class HardenConfig:
    rounds: int = 3
    steps: int = 8  # generator updates per round
    batch: int = 32  # constructions per update
    eval_samples: int = 96  # fresh samples: the round's evasion rate
    detected_sample: int = 60  # caught attacks kept for training per round
    explore: int = 120  # random valid attacks of the action space per round (coverage beyond the generator's focus)
    evasion_weight: float = 2.0  # demonstrations refit: weight of an evasion (the classifier gives evasions their own cell)
    retrain: tuple[str, ...] = LEARNED  # which learned detectors to retrain
    holdout: tuple[str, ...] = ()  # more held-out families (family.factor=value) beyond the default ones
    heldout_per_family: int = 30
    inspace: int = 120
    clean: dict[str, int] = field(default_factory=lambda: {"fewshot": 30})  # clean_corpus() sizes (fewshot per family, system, ...)
    budget: Budget = field(default_factory=Budget)
    replay: int = 1000  # corpus rows replayed per fine-tune
    calib_per_kind: int = 300  # clean calibration rows per segment kind
    # share of the clean corpus's train files whose segments set the classifier's per-kind
    # thresholds (with the corpus's calibration rows) instead of being trained on
    clean_calibration: float = 0.5
    token_budget: int = 40_000  # classifier fine-tune tokens per round
    demo_l2: float = 5.0  # demonstrations refit: pull towards the weights in use
    corpus: str | None = None  # the classifier's corpus (default: .cache/classifier-corpus when present)
    feature_cache: str | None = None  # bottom-layer states kept across runs (default: .cache/harden/features)
    fprs: tuple[float, ...] = (0.01, 0.05)
    validation: bool = True  # also score ../shared BadChain prompt files when present
    seed: int = 0
    threads: int = 2
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)


@dataclass
class HardenResult:
    out_dir: Path
    rounds: list[dict[str, Any]]
    round0: dict[str, Any]
    sets: list[DetectorSet]  # the accepted set after each round (index 0: the base policy's)
    generator: Generator
    space: AttackSpace
    evaluator: Evaluator
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)


class Judge:
    """`flagged(attack) -> (flagged, suspicion)` for the generator, against one detector
    set; `many` judges a batch in one evaluator pass. Cached per rendered prompt."""

    def __init__(self, ev: Evaluator, ds: DetectorSet) -> None:
        self.ev, self.ds = ev, ds
        self.cache: dict[str, Verdict] = {}

    def many(self, attacks: Sequence[Attack]) -> list[tuple[bool, float]]:
        keys = [prompt_key(a.segments()) for a in attacks]
        todo = {k: a for k, a in zip(keys, attacks) if k not in self.cache}
        if todo:
            for k, v in zip(todo, self.ev.verdicts(self.ds, [a.segments() for a in todo.values()])):
                self.cache[k] = v
        out = []
        for k in keys:
            v = self.cache[k]
            out.append((v.flagged, float(min(1.0, max(0.0, 0.5 + v.margin))) if v.flagged else 0.0))
        return out

    def __call__(self, attack: Attack) -> tuple[bool, float]:
        return self.many([attack])[0]


# -- setup helpers ------------------------------------------------------------------------------------


def _classifier_dir(policy: Policy) -> Path | None:
    cfg = policy.detectors.get("classifier")
    if cfg is None or not cfg.enabled:
        return None
    from ..classifier.runtime import default_model_dir

    m = cfg.options.get("model")
    if m in (None, "default"):
        return default_model_dir()
    p = Path(str(m)).expanduser()
    if not p.is_absolute():
        p = policy.base_dir / p if (policy.base_dir / p).exists() else Path.cwd() / p
    return p.resolve()


def _demo_weights(policy: Policy) -> str | None:
    cfg = policy.detectors.get("demonstrations")
    if cfg is None or not cfg.enabled:
        return None
    from ..detectors.demonstrations.scoring import NAMED

    w = str(cfg.options.get("weights", "auto"))
    if w in NAMED:
        return w
    p = Path(w).expanduser()
    return str((policy.base_dir / p).resolve() if not p.is_absolute() else p)


def _explore(space: AttackSpace, n: int, seed: int) -> list[Attack]:
    """`n` valid attacks from uniformly random constructions of the action space."""
    rng = random.Random(seed)
    out: list[Attack] = []
    tries = 0
    while len(out) < n and tries < n * 20:
        tries += 1
        try:
            a = space.build(space.random_construction(rng))
        except ConstructionError:
            continue
        except Exception:  # noqa: BLE001
            continue
        if validate(a).ok:
            out.append(a)
    return out


def _twin(space: AttackSpace, a: Attack) -> Attack | None:
    try:
        return space.build(a.construction, poison=False)
    except Exception:  # noqa: BLE001
        return None


def _count(xs) -> dict[str, int]:
    d: dict[str, int] = {}
    for x in xs:
        d[x] = d.get(x, 0) + 1
    return d


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (Path, set, tuple)):
        return str(o) if isinstance(o, Path) else list(o)
    return str(o)


class _Scorer:
    """The fixed evaluation sets and how a detector set scores on them."""

    def __init__(self, ev: Evaluator, heldout: list[tuple[str, Attack]], inspace: list[Attack],
                 gate_set: list[CleanPrompt], test_set: list[CleanPrompt], fprs: Sequence[float],
                 shared: list[tuple[str, list[Segment], int]] | None) -> None:
        self.ev, self.heldout, self.inspace = ev, heldout, inspace
        self.gate_set, self.test_set, self.fprs, self.shared = gate_set, test_set, fprs, shared

    def gate(self, ds: DetectorSet) -> tuple[dict[str, Any], float]:
        g = clean_metrics(self.gate_set, self.ev.verdicts(ds, [p.segments() for p in self.gate_set]))
        ins = self.ev.verdicts(ds, [a.segments() for a in self.inspace])
        return g, round(sum(v.flagged for v in ins) / max(1, len(ins)), 4)

    def full(self, ds: DetectorSet) -> dict[str, Any]:
        names = [n for n, _ in self.heldout]
        hv = self.ev.verdicts(ds, [a.segments() for _, a in self.heldout])
        tv = self.ev.verdicts(ds, [p.segments() for p in self.test_set])
        clean_v = [v for p, v in zip(self.test_set, tv) if p.category != "library"]
        out: dict[str, Any] = {"heldout": recall_metrics(names, hv),
                               "heldout_at_fpr": recall_at_fpr(hv, clean_v, self.fprs, names),
                               "test": clean_metrics(self.test_set, tv)}
        if self.shared:
            sv = self.ev.verdicts(ds, [s for _, s, _ in self.shared])
            lab = np.array([y for _, _, y in self.shared])
            fl = np.array([v.flagged for v in sv])
            out["shared_badchain"] = {"recall": round(float(fl[lab == 1].mean()), 4) if (lab == 1).any() else None,
                                      "clean_flagged": f"{int(fl[lab == 0].sum())}/{int((lab == 0).sum())}"}
        return out


def _load_shared(enabled: bool) -> list[tuple[str, list[Segment], int]] | None:
    if not enabled:
        return None
    from .validation import default_shared_dir, load_badchain

    bc = load_badchain(default_shared_dir())
    return [(p.id, p.segments, p.label) for p in bc] if bc else None


# -- the loop -------------------------------------------------------------------------------------------


def harden(
    out_dir: str | Path,
    config: HardenConfig | None = None,
    *,
    policy_path: str | Path | None = None,
    library: Sequence[str | Path] = (),
    log: Callable[[str], None] = print,
) -> HardenResult:
    cfg = config or HardenConfig()
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(max(1, cfg.threads))
    pol_path = Path(policy_path) if policy_path else default_policy_path()
    base = load_policy(pol_path)
    clf_dir = _classifier_dir(base)
    demo_w = _demo_weights(base)
    retrain = [d for d in cfg.retrain if d in LEARNED]
    unknown = [d for d in cfg.retrain if d not in LEARNED]
    if unknown:
        raise HardenError(f"cannot retrain {', '.join(unknown)}: the learned detectors are {', '.join(LEARNED)}")
    missing = [d for d in retrain if (clf_dir if d == "classifier" else demo_w) is None]
    if missing:
        log(f"harden: {', '.join(missing)} not enabled in {pol_path}: not retrained")
        retrain = [d for d in retrain if d not in missing]
    if not retrain:
        raise HardenError(f"{pol_path} enables none of the learned detectors ({', '.join(LEARNED)}): nothing to harden")
    try:
        holdout = Holdout.parse(list(cfg.holdout))
    except ValueError as e:
        raise HardenError(str(e)) from None

    # the clean corpus (+ the user's library, split by file) and the attack material
    t0 = time.perf_counter()
    lib = library_prompts(library, seed=cfg.seed) if library else []
    if library and not lib:
        raise HardenError(f"no prompt files under {', '.join(map(str, library))}")
    clean = clean_corpus(cfg.seed, **cfg.clean)
    clean += lib
    lib_train = [Path(p.path) for p in lib if p.split == "train" and p.path]
    user_prompts = []
    if lib_train:
        from .library import load_library

        user_prompts, problems = load_library(lib_train)
        for pr in problems:
            log(f"harden: library: {pr}")
    space = AttackSpace(user_prompts, material="train", holdout=holdout)
    gate_set = [p for p in clean if p.split == "gate"]
    test_set = [p for p in clean if p.split == "test"]
    train_clean = [p for p in clean if p.split == "train"]
    (out / "clean").mkdir(exist_ok=True)
    (out / "clean" / "manifest.json").write_text(json.dumps(manifest(clean), indent=2, ensure_ascii=False), encoding="utf-8")
    heldout = heldout_attacks(holdout, cfg.heldout_per_family, cfg.seed + 101)
    inspace = inspace_attacks(holdout, cfg.inspace, cfg.seed + 202)
    shared = _load_shared(cfg.validation)
    log(f"harden: base policy {pol_path}; retraining {', '.join(retrain)}; held-out families: {', '.join(holdout.names())}")
    log(f"harden: clean corpus {len(train_clean)} train / {len(gate_set)} gate / {len(test_set)} test prompts"
        + (f" ({len(lib)} library files: {len(lib_train)} train, {len(lib) - len(lib_train)} gate)" if lib else "")
        + f"; {len(heldout)} held-out-family attacks, {len(inspace)} in-space validation attacks"
        + (f", {len(shared)} shared BadChain files" if shared else "") + f" ({time.perf_counter() - t0:.0f} s)")

    ev = Evaluator(base, face="scanner")
    scorer = _Scorer(ev, heldout, inspace, gate_set, test_set, cfg.fprs, shared)

    # the classifier's replay corpus, calibration rows and feature cache
    replay = cache = None
    train_cfg = None
    if "classifier" in retrain:
        from ..classifier.finetune import FINETUNE_DEFAULTS
        from ..classifier.text import WindowTokenizer
        from ..classifier.training import FeatureCache, TrainConfig, base_model_dir
        from .retrain import Replay, default_corpus_dir

        info = json.loads((clf_dir / "classifier.json").read_text(encoding="utf-8"))
        icfg = {k: v for k, v in (info.get("config") or {}).items() if k in TrainConfig.__dataclass_fields__}
        train_cfg = replace(TrainConfig(**icfg), **{**FINETUNE_DEFAULTS, "token_budget": cfg.token_budget,
                                                     "seed": cfg.seed, "threads": cfg.threads})
        corpus = Path(cfg.corpus) if cfg.corpus else default_corpus_dir()
        replay = Replay.load(corpus, holdout, n=cfg.replay, per_kind=cfg.calib_per_kind,
                             calib_fraction=float(icfg.get("calib_fraction", 0.15)), seed=cfg.seed,
                             model_seed=int(icfg.get("seed", 0)), log=log)
        fc_dir = Path(cfg.feature_cache) if cfg.feature_cache else Path(".cache") / "harden" / "features"
        fc_dir.mkdir(parents=True, exist_ok=True)
        tok = WindowTokenizer(base_model_dir() / "tokenizer.json", window_tokens=train_cfg.window_tokens,
                              overlap_tokens=train_cfg.overlap_tokens)
        cache = FeatureCache(tok, train_cfg.frozen_layers, fc_dir, cfg.threads)
        state_file = fc_dir / f"states-{train_cfg.frozen_layers}-{train_cfg.window_tokens}"
        if cache.load(state_file):
            log(f"harden: feature cache: {len(cache.table.windows)} windows from {state_file}")
        cache.autosave = state_file

    # round 0
    d0 = DetectorSet(str(clf_dir) if clf_dir else None, demo_w, 0, "base")
    t0 = time.perf_counter()
    g0, ins0 = scorer.gate(d0)
    full0 = scorer.full(d0)
    round0 = {"round": 0, "set": d0.id, "gate": g0, "inspace_recall": ins0, **full0,
              "seconds": round(time.perf_counter() - t0, 1)}
    log("round 0: " + _summary(round0))
    if lib:
        lf = [k for k, v in zip(lib, ev.verdicts(d0, [p.segments() for p in lib])) if v.flagged]
        if lf:
            log(f"harden: note: the base policy flags {len(lf)} of the {len(lib)} library files "
                f"({', '.join(Path(p.path).name for p in lf[:5])}{' ...' if len(lf) > 5 else ''}); they are treated as clean")

    sets = [d0]
    cur = d0
    attacks_out: list[dict[str, Any]] = []
    seen: set[str] = set()
    cls_rows: list[Any] = []  # classifier rows from attacks so far (all rounds)
    demo_examples: list[Any] = []  # demonstrations refit examples so far
    rounds: list[dict[str, Any]] = []
    gen = Generator(cfg.generator, seed=cfg.seed)
    rng = random.Random(cfg.seed + 7)
    from .retrain import attack_rows, clean_demo_example, clean_rows, demo_example, unique_rows

    from .cleanset import _h

    clean_train_rows: list[Any] = []
    clean_calib_rows: list[Any] = []  # clean-corpus train files the classifier calibrates on instead of training
    clean_demo = []
    for p in train_clean:
        src = "harden-library" if p.category == "library" else "harden-clean"
        rows_p = clean_rows(p.segments(), f"clean-{p.id}", src, f"clean corpus: {p.source}", p.licence)
        if p.category != "library" and _h(f"{cfg.seed}:calib:{p.id}") < cfg.clean_calibration:
            clean_calib_rows += rows_p
        else:
            clean_train_rows += rows_p
        ex = clean_demo_example(p.segments())
        if ex is not None:
            clean_demo.append(ex)
    for r in range(1, cfg.rounds + 1):
        tr0 = time.perf_counter()
        gen = Generator(cfg.generator, seed=cfg.seed + 1000 * r)
        judge = Judge(ev, cur)
        hist = gen.train(space, judge, steps=cfg.steps, batch=cfg.batch)
        rate, eval_samples = gen.evasion_rate(space, judge, n=cfg.eval_samples)
        t_gen = time.perf_counter() - tr0
        samples: list[Sample] = hist.samples + eval_samples
        evaded, new_ev = [s for s in samples if s.evaded], []
        for s in evaded:
            k = prompt_key(s.attack.segments())
            if k not in seen:
                seen.add(k)
                new_ev.append(s.attack)
                attacks_out.append({"round": r, **s.attack.to_record()})
        detected = [s.attack for s in samples if s.valid and s.flagged]
        detected = rng.sample(detected, min(len(detected), cfg.detected_sample))
        explore = _explore(space, cfg.explore, cfg.seed * 1000 + 500 + r)
        for group, src, w in ((new_ev, "harden-evasion", cfg.evasion_weight), (detected, "harden-attack", 1.0),
                              (explore, "harden-explore", 1.0)):
            for a in group:
                twin = _twin(space, a)
                tag = f"r{r}-{a.construction.seed}"
                cls_rows += attack_rows(a, twin, tag, source=src)
                ex = demo_example(a, weight=w)
                if ex is not None:
                    demo_examples.append(ex)
                    if twin is not None:
                        cex = clean_demo_example(twin.segments())
                        if cex is not None:
                            demo_examples.append(cex)
                if twin is not None and a.family == "demo":
                    cls_rows += clean_rows(twin.segments(), tag, "harden-twin", "promptguard harden: clean twin")

        rd = out / "rounds" / f"round-{r:02d}"
        rd.mkdir(parents=True, exist_ok=True)
        cand_clf, cand_dem = cur.classifier, cur.demonstrations
        fit_info: dict[str, Any] = {}
        t_fit0 = time.perf_counter()
        if "classifier" in retrain and cls_rows:
            from ..classifier.finetune import finetune

            rows = unique_rows(cls_rows + clean_train_rows + list(replay.rows))
            ids = {x.id for x in rows}
            calib = unique_rows([x for x in list(replay.calibration) + clean_calib_rows if x.id not in ids])
            finetune(Path(cur.classifier), rows, rd / "candidate" / "classifier", train_cfg, calibration_rows=calib,
                     cache=cache, log=lambda m: None, meta={"harden": {"round": r, "parent": cur.id}})
            cand_clf = str(rd / "candidate" / "classifier")
            fit_info["classifier"] = {"rows": len(rows), "attack_rows": sum(x.label for x in rows),
                                      "calibration_rows": len(calib),
                                      "by_source": _count(x.source.split(":")[0] for x in rows)}
        if "demonstrations" in retrain and demo_examples:
            from ..detectors.demonstrations.fitting import fit_weights, save_weights
            from ..detectors.demonstrations.scoring import load_weights

            prior = load_weights(cur.demonstrations or "auto")
            weights, rep = fit_weights(demo_examples + clean_demo, prior=prior, l2=cfg.demo_l2)
            save_weights(weights, rd / "candidate" / "demonstrations.json", report=rep, round=r,
                         about=f"Refitted by promptguard harden round {r} from {cur.demonstrations} "
                               f"({len(demo_examples)} attack/twin prompts, {len(clean_demo)} clean few-shot prompts).")
            cand_dem = str(rd / "candidate" / "demonstrations.json")
            fit_info["demonstrations"] = {"prompts": len(demo_examples) + len(clean_demo), "report": rep}
        t_fit = time.perf_counter() - t_fit0

        # the budget gate: the full candidate, then each retrained detector alone
        cands = [(cand_clf, cand_dem)]
        if cand_clf != cur.classifier and cand_dem != cur.demonstrations:
            cands += [(cand_clf, cur.demonstrations), (cur.classifier, cand_dem)]
        tried: list[dict[str, Any]] = []
        accepted: DetectorSet | None = None
        accepted_gate: tuple[dict[str, Any], float] | None = None
        t_gate0 = time.perf_counter()
        for i, (c, d) in enumerate(cands):
            ds = DetectorSet(c, d, r, f"r{r:02d}" + ("" if i == 0 else f"-{'clf' if c != cur.classifier else 'demo'}"),
                             cur.id)
            g, ins = scorer.gate(ds)
            ok, why, limits = gate(g, round0["gate"], cfg.budget, ins, round0["inspace_recall"])
            tried.append({"set": ds.id, "classifier": c != cur.classifier, "demonstrations": d != cur.demonstrations,
                          "accepted": ok, "reasons": why, "gate": g, "inspace_recall": ins, "limits": limits})
            if ok:
                accepted, accepted_gate = ds, (g, ins)
                break
            ev.forget(ds)
        t_gate = time.perf_counter() - t_gate0
        m: dict[str, Any] = {
            "round": r, "evasion_rate": round(rate, 4), "valid_rate": round(sum(s.valid for s in eval_samples) / max(1, len(eval_samples)), 4),
            "reward_first": round(hist.mean_reward(first=3), 4), "reward_last": round(hist.mean_reward(last=3), 4),
            "new_evasions": len(new_ev), "evasions_by_family": _count(a.family for a in new_ev),
            "evasions_by_signature": _count("/".join(map(str, a.construction.signature()[1:3])) for a in new_ev),
            "candidates": tried, "fit": fit_info,
        }
        if accepted is None:
            m.update(accepted=False, set=cur.id, rejected_because=tried[0]["reasons"])
            for k in ("gate", "inspace_recall", "heldout", "heldout_at_fpr", "test", "shared_badchain"):
                prev = rounds[-1] if rounds else round0
                if k in prev:
                    m[k] = prev[k]
            log(f"round {r}: evasion {rate:.3f} vs set {cur.id}; {len(new_ev)} new evasions; REJECTED by the budget gate ("
                + " | ".join(f"{c['set']}: {'; '.join(c['reasons'])}" for c in tried) + f"); detector set {cur.id} stays")
        else:
            t0 = time.perf_counter()
            full = scorer.full(accepted)
            m.update(accepted=True, set=accepted.id, partial=accepted.id.endswith(("-clf", "-demo")),
                     gate=accepted_gate[0], inspace_recall=accepted_gate[1], **full)
            m["seconds_eval"] = round(time.perf_counter() - t0, 1)
            saved = save_set(accepted, rd, metrics={k: m[k] for k in ("heldout", "heldout_at_fpr", "gate", "test")})
            accepted = replace(saved, id=accepted.id)
            cur = accepted
            log(f"round {r}: evasion {rate:.3f} vs set {sets[-1].id}; {len(new_ev)} new evasions; accepted {cur.id}: "
                + _summary(m))
        m["seconds"] = {"generator": round(t_gen, 1), "retrain": round(t_fit, 1), "gate": round(t_gate, 1),
                        "round": round(time.perf_counter() - tr0, 1)}
        (rd / "report.json").write_text(json.dumps(m, indent=2, default=_jsonable), encoding="utf-8")
        # candidates are written apart from the accepted set's files: a model or weights file
        # is loaded once per path and process, so no path may be reused for other weights
        shutil.rmtree(rd / "candidate", ignore_errors=True)
        rounds.append(m)
        sets.append(cur)

    # the user's library: none of its files may stay flagged
    final = cur
    lib_info = None
    if lib:
        final, lib_info = _library_pass(ev, base, cur, lib, out, log)
        if final is not cur:
            full = scorer.full(final)
            g, ins = scorer.gate(final)
            lib_info["after"] = {"gate": g, "inspace_recall": ins, **full}

    # final outputs
    det_dir = out / "detector"
    if det_dir.exists():
        shutil.rmtree(det_dir)
    last = rounds[-1] if rounds else round0
    final_saved = save_set(final, det_dir, metrics={k: last.get(k) for k in ("heldout", "heldout_at_fpr", "gate", "test")})
    write_policy(out / "policy.yaml", pol_path, base, final_saved,
                 note=("Thresholds of the demonstrations detector raised above the library's clean files.\n"
                       if final.thresholds else ""))
    gen.save(out / "generator", {"rounds": len(rounds), "detector_set": final.id})
    with (out / "attacks.jsonl").open("w", encoding="utf-8") as f:
        for row in attacks_out:
            f.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
    seconds = time.perf_counter() - t_start
    report = {"config": _config_dict(cfg), "base_policy": str(pol_path), "retrained": retrain,
              "held_out_families": holdout.names(), "budget": cfg.budget.to_json(),
              "replay": replay.info if replay else None, "round0": round0, "rounds": rounds,
              "library": lib_info, "final_set": final.id, "seconds": round(seconds, 1),
              "evaluator": {"prompts": ev.prompts, "seconds": round(ev.seconds, 1)},
              "detector": str(det_dir), "policy": str(out / "policy.yaml")}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return HardenResult(out, rounds, round0, sets, gen, space, ev, seconds, report)


def _summary(m: dict[str, Any]) -> str:
    g = m.get("gate") or {}
    t = m.get("test") or {}
    h = m.get("heldout") or {}
    at = m.get("heldout_at_fpr") or {}
    parts = [f"held-out recall {h.get('mean')}",
             "at FPR " + ", ".join(f"{k}: {v['recall']}" for k, v in at.items()),
             f"in-space {m.get('inspace_recall')}",
             "gate FP " + ", ".join(f"{c} {v['flagged']}/{v['n']}" for c, v in g.items() if c != "all"),
             "test FP " + ", ".join(f"{c} {v['flagged']}/{v['n']}" for c, v in t.items() if c != "all")]
    if m.get("shared_badchain"):
        parts.append(f"shared BadChain {m['shared_badchain']}")
    return "; ".join(parts)


def _config_dict(cfg: HardenConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return d


# -- the library pass ---------------------------------------------------------------------------------


def _library_pass(ev: Evaluator, base: Policy, ds: DetectorSet, lib: list[CleanPrompt], out: Path,
                  log: Callable[[str], None]) -> tuple[DetectorSet, dict[str, Any]]:
    """Make sure no file of the user's library is flagged by the final set: the
    classifier's per-kind thresholds are raised just above the library's segments
    where needed, and the demonstrations detector's flag thresholds above its
    findings on them. Rules are not retrained: a library file a rule flags is reported."""
    from ..classifier.runtime import Classifier
    from ..classifier.training import _shift

    verdicts = ev.verdicts(ds, [p.segments() for p in lib])
    flagged = [p for p, v in zip(lib, verdicts) if v.flagged]
    info: dict[str, Any] = {"files": len(lib), "flagged_before": [p.path for p in flagged]}
    if not flagged:
        info["flagged_after"] = []
        log(f"library: none of the {len(lib)} files is flagged by set {ds.id}")
        return ds, info
    g = ev.guard(ds)
    raise_clf: dict[str, float] = {}
    demo_max: dict[str, float] = {}
    rule_hits: list[str] = []
    for p in flagged:
        for f in g.check(p.segments()).decision.reasons:
            if f.detector == "classifier":
                k = f.segment_kind.value
                raise_clf[k] = max(raise_clf.get(k, 0.0), float((f.details or {}).get("probability", 0.0)))
            elif f.detector == "demonstrations":
                demo_max[f.rule or ""] = max(demo_max.get(f.rule or "", 0.0), f.score)
            else:
                rule_hits.append(f"{Path(p.path).name}: {f.detector}/{f.rule}")
    clf = ds.classifier
    if raise_clf and ds.classifier:
        dst = out / "library-classifier"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(ds.classifier, dst)
        meta_p = dst / "classifier.json"
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
        cal = meta.get("calibration") or {}
        changed = {}
        for k, pmax in raise_clf.items():
            c = cal.get(k)
            if c is None:
                continue
            flag = min(max(float(c["flag"]), _shift(pmax, 0.5)), 0.999999)
            act = min(max(float(c["act"]), _shift(flag, 2.0)), 0.9999999)
            changed[k] = {"flag": [c["flag"], flag], "act": [c["act"], act]}
            c["flag"], c["act"] = flag, act
        meta["calibration"] = cal
        meta["library_calibration"] = {"kinds": changed, "files": [p.path for p in flagged]}
        meta_p.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        Classifier(dst)  # loads: the thresholds are well formed
        clf = str(dst)
        info["classifier_thresholds"] = changed
    extra: list[dict[str, Any]] = []
    for rule, smax in demo_max.items():
        t = base.threshold_for(_probe("demonstrations", rule))
        flag_at = min(0.99, max(t.flag_at, smax + 0.01))
        extra.append({"detector": "demonstrations", "rule": rule or None, "flag_at": round(flag_at, 4),
                      "act_at": round(max(t.act_at, flag_at), 4), "action": t.action.value})
    new = DetectorSet(clf, ds.demonstrations, ds.round, f"{ds.id}-lib", ds.id, dict(ds.meta),
                      tuple(ds.thresholds) + tuple(extra))
    after = ev.verdicts(new, [p.segments() for p in lib])
    info["flagged_after"] = [p.path for p, v in zip(lib, after) if v.flagged]
    info["rule_findings"] = rule_hits
    info["demonstrations_thresholds"] = extra
    log(f"library: {len(flagged)} of {len(lib)} files flagged by set {ds.id}; after raising thresholds on them: "
        f"{len(info['flagged_after'])}" + (f" (rules, not retrainable: {'; '.join(rule_hits[:5])})" if rule_hits else ""))
    return new, info


def _probe(detector: str, rule: str):
    from ..findings import Finding, Severity
    from ..segments import SegmentKind

    return Finding(detector=detector, rule=rule or None, segment_kind=SegmentKind.DEMONSTRATION, segment_index=0,
                   score=0.0, severity=Severity.LOW, message="")


# -- reports ------------------------------------------------------------------------------------------


def _f(x: Any) -> str:
    return "" if x is None else f"{x:.3f}"


def _fp(m: dict[str, Any] | None, cat: str) -> str:
    v = (m or {}).get(cat)
    return "" if not v else f"{v['flagged']}/{v['n']}"


def render_markdown(report: dict[str, Any]) -> str:
    fprs = [str(x) for x in report["config"].get("fprs", (0.01, 0.05))]
    lines = ["# promptguard harden report", "",
             f"Base policy `{report['base_policy']}`; retrained: {', '.join(report['retrained'])}; "
             f"held-out families: {', '.join(report['held_out_families'])}; {report['seconds'] / 60:.1f} min.", "",
             "| round | set | accepted | evasion (fresh generator vs previous set) | held-out recall | "
             + " | ".join(f"held-out recall @{float(x):.0%} FPR" for x in fprs)
             + " | in-space recall | FP few-shot (test) | FP other (test) | FP gate few-shot | FP gate all |",
             "|---|---|---|---|---|" + "---|" * len(fprs) + "---|---|---|---|---|"]
    rows = [report["round0"]] + report["rounds"]
    for m in rows:
        t = m.get("test") or {}
        other_k = sum(v["flagged"] for c, v in t.items() if c not in ("all", "fewshot", "library"))
        other_n = sum(v["n"] for c, v in t.items() if c not in ("all", "fewshot", "library"))
        at = m.get("heldout_at_fpr") or {}
        acc = "" if m["round"] == 0 else ("yes" + (" (one detector)" if m.get("partial") else "") if m.get("accepted")
                                          else "**REJECTED**")
        lines.append(f"| {m['round']} | {m.get('set')} | {acc} | {_f(m.get('evasion_rate'))} | "
                     f"{_f((m.get('heldout') or {}).get('mean'))} | "
                     + " | ".join(_f((at.get(x) or {}).get('recall')) for x in fprs)
                     + f" | {_f(m.get('inspace_recall'))} | {_fp(t, 'fewshot')} | {other_k}/{other_n} | "
                     f"{_fp(m.get('gate'), 'fewshot')} | {_fp(m.get('gate'), 'all')} |")
    rej = [m for m in report["rounds"] if not m.get("accepted")]
    if rej:
        lines += [""] + [f"- round {m['round']} rejected: {'; '.join(m.get('rejected_because') or [])}" for m in rej]
    fams = sorted({n for m in rows for n in ((m.get("heldout") or {}).get("families") or {})})
    if fams:
        lines += ["", "| held-out family | " + " | ".join(f"round {m['round']}" for m in rows) + " |",
                  "|---|" + "---|" * len(rows)]
        for n in fams:
            lines.append(f"| {n} | " + " | ".join(_f(((m.get("heldout") or {}).get("families") or {}).get(n, {}).get("recall"))
                                                   for m in rows) + " |")
    cats = sorted({c for m in rows for c in (m.get("test") or {}) if c != "all"})
    if cats:
        lines += ["", "| clean test split, flagged | " + " | ".join(f"round {m['round']}" for m in rows) + " |",
                  "|---|" + "---|" * len(rows)]
        for c in cats:
            lines.append(f"| {c} | " + " | ".join(_fp(m.get("test"), c) for m in rows) + " |")
    if report.get("library"):
        li = report["library"]
        lines += ["", f"Library: {len(li['flagged_before'])} of {li['files']} files flagged by the last round's set, "
                      f"{len(li['flagged_after'])} by the final one."]
    if report.get("comparison"):
        c = report["comparison"]
        lines += ["", f"Fresh generators: evasion {c['round0']:.3f} vs the round-0 set, {c['hardened']:.3f} vs the final set."]
    return "\n".join(lines) + "\n"


def fresh_comparison(result: HardenResult, *, steps: int, batch: int, eval_samples: int,
                     seeds: Sequence[int] = (12345,), config: GeneratorConfig | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fresh generators (same budget, several seeds) against the round-0 set and the final set."""
    out: dict[str, Any] = {"steps": steps, "batch": batch, "eval_samples": eval_samples, "seeds": list(seeds)}
    for name, ds in (("round0", result.sets[0]), ("hardened", result.sets[-1])):
        rates = []
        for sd in seeds:
            t0 = time.perf_counter()
            g = Generator(config or result.generator.config, seed=sd)
            judge = Judge(result.evaluator, ds)
            g.train(result.space, judge, steps=steps, batch=batch, keep_samples=False)
            rate, _ = g.evasion_rate(result.space, judge, n=eval_samples)
            rates.append(round(rate, 4))
            log(f"fresh generator (seed {sd}) vs {name} set: evasion {rate:.3f} ({time.perf_counter() - t0:.0f}s)")
        out[name] = round(sum(rates) / len(rates), 4)
        out[f"{name}_per_seed"] = rates
    out["ratio"] = round(out["hardened"] / out["round0"], 4) if out["round0"] > 0 else None
    return out
