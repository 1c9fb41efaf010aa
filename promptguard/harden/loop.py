"""The hardening loop: Generator and Detector agents, alternated; artifacts and reports.

Round r:
  1. a generator (fresh each round by default) trains (REINFORCE) against detector
     r-1, then its evasion rate against it is measured on fresh samples;
  2. the detector agent refits the head on every evasion so far (weighted up), a
     sample of the attacks that were caught and of random attacks from the whole
     space (so the head covers more than the generator's current focus), plus
     clean data, and picks thresholds under the FPR constraint -> detector r;
  3. detector r is written as a versioned artifact (parent = r-1) with a report:
     evasion rate, how many of this round's evasions detector r now catches, FPR
     on held clean prompts (calibration and a fresh test set), recall/FPR on the
     fixed validation set (../shared; never trained on) when present.

Outputs under ``OUT``::

    rounds/round-01/ ...   one artifact per round (manifest.json, head.npz, report.json)
    detector/              the final artifact (a copy of the last round)
    policy.yaml            the base policy + `hardened` + the chosen thresholds
    generator/             the trained generator (for `promptguard redteam`)
    attacks.jsonl          every successful evasion, with its ground truth
    report.json, report.md per-round metrics
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..policy import Policy, default_policy_path, load_policy
from .attack_space import AttackSpace, UserPrompt
from .detector import ARTIFACT_FORMAT, ARTIFACT_VERSION, Head, load_artifact
from .detector_agent import BaseScorer, DetectorAgent, DetectorState, PromptRecord
from .dut import prompt_key
from .features import Featurizer
from .generator import Generator, GeneratorConfig, Sample
from .validation import LabelledPrompt, clean_prompts, default_shared_dir, load_badchain, load_injection_dev

__all__ = ["HardenConfig", "HardenResult", "harden", "write_policy", "write_artifact", "fresh_comparison",
           "Validation", "HardenError"]


class HardenError(RuntimeError):
    pass


@dataclass
class HardenConfig:
    rounds: int = 4
    steps: int = 25  # generator updates per round
    batch: int = 48  # constructions per update
    eval_samples: int = 192  # fresh samples to measure the evasion rate
    clean_train: int = 300  # clean prompts added to the training data per round
    clean_calib: int = 500  # held clean prompts the thresholds are chosen on
    clean_test: int = 500  # held clean prompts the FPR is reported on (never used to choose)
    detected_sample: int = 150  # detected attacks per round, kept for training and the threshold objective
    explore: int = 200  # random valid attacks per round from the whole space (coverage beyond the generator's focus)
    evasion_weight: float = 2.0  # training weight of a successful evasion relative to other attacks
    target_fpr: float | None = None  # None: the policy's detectors.hardened.target_fpr, else 0.05
    confidence: float = 0.9  # the FPR bound holds on unseen clean prompts with this confidence
    tune_base: bool = False  # True: also retune base thresholds; the FPR budget is then for the whole detector
    C: float = 1.0
    seed: int = 0
    validation: bool = True
    shared_dir: str | None = None
    # a fresh generator each round (the attacker best-responds to the current detector from a
    # uniform start); False: one generator keeps learning across rounds (it tends to collapse onto
    # the trick the last detector learned to catch, and stops exploring)
    reset_generator: bool = True
    # detectors of the base policy the loop runs (None: all but the model-based ones in SLOW_DETECTORS)
    base_detectors: list[str] | None = None
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)


# model-based detectors that cost a forward pass per window of every segment: too slow to
# run on every generated attack on a CPU; they stay in the output policy untouched
SLOW_DETECTORS = ("embeddings", "baseline")


@dataclass
class HardenResult:
    out_dir: Path
    rounds: list[dict[str, Any]]
    round0: dict[str, Any]
    states: list[DetectorState]
    generator: Generator
    agent: DetectorAgent
    space: AttackSpace
    validation: "Validation | None"
    seconds: float


# -- validation set ---------------------------------------------------------------------


@dataclass
class Validation:
    records: list[PromptRecord]
    prompts: list[LabelledPrompt]

    @classmethod
    def load(cls, agent: DetectorAgent, shared: Path | None, log: Callable[[str], None]) -> "Validation | None":
        bc = load_badchain(shared)
        dev = load_injection_dev(shared)
        prompts = (bc or []) + (dev or [])
        if not prompts:
            return None
        t0 = time.perf_counter()
        recs = [agent.record(p.segments, meta={"label": p.label, "group": p.group, "id": p.id}) for p in prompts]
        log(f"validation set: {sum(p.label for p in prompts)} attacks, {sum(1 - p.label for p in prompts)} benign "
            f"({len(bc or [])} BadChain files, {len(dev or [])} injection rows) in {time.perf_counter() - t0:.0f}s")
        return cls(recs, prompts)

    def metrics(self, state: DetectorState) -> dict[str, Any]:
        flags = np.array([state.flagged_record(r) for r in self.records])
        labels = np.array([p.label for p in self.prompts])
        groups = np.array([p.group.split("/")[0] for p in self.prompts])
        out: dict[str, Any] = {}
        att = labels == 1
        out["recall"] = round(float(flags[att].mean()), 4) if att.any() else None
        out["fpr_benign"] = round(float(flags[~att].mean()), 4) if (~att).any() else None
        for g in ("badchain", "injection"):
            m = groups == g
            if (m & att).any():
                out[f"recall_{g}"] = round(float(flags[m & att].mean()), 4)
            if (m & ~att).any():
                out[f"fpr_{g}"] = round(float(flags[m & ~att].mean()), 4)
        return out


# -- artifacts ------------------------------------------------------------------------------


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_artifact(directory: Path, state: DetectorState, fz: Featurizer, *, base_names: Sequence[str],
                   target_fpr: float, parent: dict[str, Any] | None, metrics: dict[str, Any],
                   training: dict[str, Any], base_policy: str) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    head = state.head or Head.empty(fz)
    digest = head.save(directory / "head.npz")
    art_id = "hd-" + hashlib.sha256(f"{digest}|{state.round}|{state.threshold}".encode()).hexdigest()[:12]
    state.id = art_id
    thr = state.threshold if math.isfinite(state.threshold) else 1.0 + 1e-9
    manifest = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "id": art_id,
        "created": _now(),
        "round": state.round,
        "parent": parent,
        "features": fz.describe(),
        "threshold": {"raw": min(thr, 1.0), "high": state.high, "head_enabled": math.isfinite(state.threshold)},
        "target_fpr": target_fpr,
        "base_policy": base_policy,
        "base_thresholds": {n: float(t) for n, t in zip(base_names, state.taus)},
        "metrics": metrics,
        "training": training,
        "weights_sha256": digest,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_jsonable), encoding="utf-8")
    return manifest


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _absolutize(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value) and (base_dir / value).exists():
        return str((base_dir / value).resolve())
    if isinstance(value, list):
        return [_absolutize(v, base_dir) for v in value]
    return value


def write_policy(path: Path, base_policy_path: Path, base: Policy, artifact_dir: Path,
                 taus: dict[str, float], target_fpr: float) -> Path:
    """The base policy file + the `hardened` detector + the chosen base thresholds.

    Relative paths in the base policy's detector options (rule sets) become absolute,
    since the new policy lives elsewhere; the artifact path is relative to it.
    """
    from ..yamlutil import safe_load

    raw = safe_load(base_policy_path.read_text(encoding="utf-8")) or {}
    dets = dict(raw.get("detectors") or {"rules": {}})
    dets.pop("hardened", None)
    for name, opts in list(dets.items()):
        if isinstance(opts, dict):
            dets[name] = {k: _absolutize(v, base.base_dir) for k, v in opts.items()}
    default = raw.get("default") or {}
    d_flag, d_act, d_action = float(default.get("flag_at", 0.5)), float(default.get("act_at", 0.85)), default.get("action", "block")
    thresholds = [dict(t) for t in (raw.get("thresholds") or [])]
    for name, tau in taus.items():
        if tau <= 0.0:
            continue
        if tau > 1.0:
            opts = dict(dets.get(name) or {})
            opts["enabled"] = False
            dets[name] = opts
            continue
        for t in thresholds:
            if t.get("detector") == name:
                t["flag_at"] = max(float(t.get("flag_at", 0.5)), tau)
                t["act_at"] = max(float(t.get("act_at", 0.85)), t["flag_at"])
        if not any(t.get("detector") == name and t.get("rule") is None and t.get("kinds") is None for t in thresholds):
            thresholds.append({"detector": name, "flag_at": max(d_flag, tau), "act_at": max(d_act, tau, d_flag),
                               "action": d_action})
    rel = os.path.relpath(artifact_dir.resolve(), path.parent.resolve())
    dets["hardened"] = {"path": rel, "report_at": 0.3, "target_fpr": target_fpr}
    thresholds = [t for t in thresholds if t.get("detector") != "hardened"]
    thresholds.append({"detector": "hardened", "flag_at": 0.5, "act_at": 0.85, "action": "block"})
    raw["detectors"] = dets
    raw["thresholds"] = thresholds
    raw["name"] = f"{raw.get('name', 'policy')}-hardened"
    import yaml

    header = (f"# Generated by `promptguard harden` on {_now()} from {base_policy_path}.\n"
              f"# The `hardened` detector and the thresholds below were chosen so that the false-positive\n"
              f"# rate on held clean prompts stays within {target_fpr:.3f}.\n")
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# -- the loop ---------------------------------------------------------------------------------


def _resolve_policy(policy_path: str | Path | None, only: Sequence[str] | None
                    ) -> tuple[Path, Policy, Policy, dict[str, Any] | None, list[str]]:
    """(path, the full base policy, the policy the loop runs, hardened init, skipped detectors)."""
    p = Path(policy_path) if policy_path else default_policy_path()
    full = load_policy(p)
    init = None
    dets = dict(full.detectors)
    if "hardened" in dets:
        opts = dets.pop("hardened").options
        ap = Path(str(opts.get("path", "")))
        init = {"path": str(ap if ap.is_absolute() else full.base_dir / ap), "target_fpr": opts.get("target_fpr")}
    enabled = [n for n, c in dets.items() if c.enabled]
    if only is not None:
        unknown = [n for n in only if n not in enabled]
        if unknown:
            raise HardenError(f"--base-detectors: {', '.join(unknown)} not enabled in {p} (enabled: {', '.join(enabled)})")
        keep = list(only)
    else:
        keep = [n for n in enabled if n not in SLOW_DETECTORS]
    skipped = [n for n in enabled if n not in keep]
    run = full.model_copy(update={"detectors": {n: c for n, c in dets.items() if n in keep}})
    run.base_dir = full.base_dir
    return p, full, run, init, skipped


def _attack_record(agent: DetectorAgent, s: Sample, rnd: int) -> PromptRecord:
    assert s.attack is not None
    return agent.record_attack(s.attack, meta={"round": rnd, "construction": s.construction.to_dict(),
                                               "family": s.attack.family})


def harden(
    out_dir: str | Path,
    config: HardenConfig | None = None,
    *,
    policy_path: str | Path | None = None,
    library: Sequence[UserPrompt] = (),
    log: Callable[[str], None] = print,
) -> HardenResult:
    cfg = config or HardenConfig()
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError as e:  # pragma: no cover - torch is a dependency
        raise HardenError("the generator needs torch") from e
    pol_path, full_policy, base_policy, init, skipped = _resolve_policy(policy_path, cfg.base_detectors)
    target = cfg.target_fpr or (init or {}).get("target_fpr") or 0.05
    base = BaseScorer(base_policy)
    fz = Featurizer()
    agent = DetectorAgent(base, fz, target_fpr=target, confidence=cfg.confidence, tune_base=cfg.tune_base, C=cfg.C)
    space = AttackSpace(library)
    log(f"harden: base policy {pol_path} (detectors: {', '.join(base.names) or 'none'}), target FPR {target:.3f} "
        f"({'whole detector, base thresholds retuned' if cfg.tune_base else 'added by the head over the base detectors'}), "
        f"{cfg.rounds} rounds x {cfg.steps} steps x {cfg.batch} attacks"
        + (f", {len(space.user_prompts)} library prompts with demonstrations" if library else ""))
    if skipped:
        log(f"harden: not run in the loop (model-based, too slow per attack; kept unchanged in the output policy): "
            f"{', '.join(skipped)}")

    # held clean data (seeds disjoint from training)
    t0 = time.perf_counter()
    # held clean prompts carry documents the training never sees (other splits of the found text)
    calib = [agent.record(s, meta=m) for s, m in clean_prompts(AttackSpace(library, material="calib"), cfg.clean_calib,
                                                             cfg.seed * 1000 + 101)]
    test = [agent.record(s, meta=m) for s, m in clean_prompts(AttackSpace(library, material="test"), cfg.clean_test,
                                                            cfg.seed * 1000 + 202)]
    lib_clean = [agent.record(s, meta={"library": True}) for s in _library_segments(library)]
    if lib_clean:
        calib += lib_clean[::2]
        test += lib_clean[1::2]
    train: list[PromptRecord] = [agent.record(s, meta=m) for s, m in clean_prompts(space, cfg.clean_train, cfg.seed * 1000 + 303)]
    log(f"clean data: {len(calib)} calibration, {len(test)} test, {len(train)} training prompts in {time.perf_counter() - t0:.0f}s")

    val = None
    if cfg.validation:
        shared = Path(cfg.shared_dir) if cfg.shared_dir else default_shared_dir()
        val = Validation.load(agent, shared, log)
        if val is None:
            log("validation set: ../shared not found, recall on the fixed validation set is not measured")

    # round 0: the base policy (plus an existing hardened artifact, if the policy had one)
    state = DetectorState(np.zeros(len(base.names)), None, math.inf, 1.0, 0)
    parent: dict[str, Any] | None = None
    if init is not None:
        meta0, fz0, head0 = load_artifact(init["path"])
        if fz0.describe() != fz.describe():
            raise HardenError(f"{init['path']}: made with other features; cannot continue from it")
        taus0 = np.array([float((meta0.get("base_thresholds") or {}).get(n, 0.0)) for n in base.names])
        state = DetectorState(taus0, head0, float(meta0["threshold"]["raw"]), float(meta0["threshold"].get("high", 1.0)), 0,
                              meta0.get("id"))
        parent = {"id": meta0.get("id"), "path": init["path"]}
    states = [state]
    round0 = {"round": 0, "fpr_calibration": round(agent.fpr(state, calib), 4), "fpr_test": round(agent.fpr(state, test), 4)}
    if round0["fpr_calibration"] > target and not cfg.tune_base:
        log(f"harden: note: the base policy alone flags {round0['fpr_calibration']:.1%} of the held clean prompts (over "
            f"the {target:.1%} target); its thresholds are kept (use --tune-base to retune them); the head adds at most "
            f"{target:.1%} on top")
    if val is not None:
        round0["validation"] = val.metrics(state)
    log(f"round 0: FPR calibration {round0['fpr_calibration']:.3f}, test {round0['fpr_test']:.3f}"
        + (f", validation {round0['validation']}" if val is not None else ""))

    gen = Generator(cfg.generator, seed=cfg.seed)
    objective: list[PromptRecord] = []
    evasions_out: list[dict[str, Any]] = []
    seen: set[str] = set()
    rounds: list[dict[str, Any]] = []
    rng = random.Random(cfg.seed + 7)
    for r in range(1, cfg.rounds + 1):
        tr0 = time.perf_counter()
        cur = state
        if cfg.reset_generator and r > 1:
            gen = Generator(cfg.generator, seed=cfg.seed + 1000 * r)

        def flagged(a, cur=cur) -> tuple[bool, float]:
            return agent.judge(cur, a.segments())

        hist = gen.train(space, flagged, steps=cfg.steps, batch=cfg.batch)
        rate, eval_samples = gen.evasion_rate(space, flagged, n=cfg.eval_samples)
        t_gen = time.perf_counter() - tr0
        samples = hist.samples + eval_samples
        evaded = [s for s in samples if s.evaded]
        detected = [s for s in samples if s.valid and s.flagged]
        new_ev: list[PromptRecord] = []
        for s in evaded:
            key = prompt_key(s.attack.segments())
            if key in seen:
                continue
            seen.add(key)
            rec = _attack_record(agent, s, r)
            rec.weight = cfg.evasion_weight
            new_ev.append(rec)
            evasions_out.append({"round": r, **s.attack.to_record()})
            twin = space.build(s.construction, poison=False)
            train.append(agent.record(twin.segments(), meta={"twin_of": key}))
        train.extend(new_ev)
        objective.extend(new_ev)
        others = [_attack_record(agent, s, r) for s in rng.sample(detected, min(len(detected), cfg.detected_sample))]
        others += [agent.record_attack(a, meta={"round": r, "explore": True})
                   for a in _explore(space, cfg.explore, cfg.seed * 1000 + 500 + r)]
        train.extend(others)
        objective.extend(others)
        train.extend(agent.record(s, meta=m) for s, m in clean_prompts(space, cfg.clean_train, cfg.seed * 1000 + 400 + r))
        t_fit0 = time.perf_counter()
        head, fit_info = agent.fit(train)
        taus, t, high, choose_info = agent.choose(head, objective, calib)
        state = DetectorState(taus, head, t, high, r)
        t_fit = time.perf_counter() - t_fit0
        caught = agent.recall(state, new_ev) if new_ev else None
        m: dict[str, Any] = {
            "round": r,
            "evasion_rate": round(rate, 4),
            "train_mean_reward_first": round(hist.mean_reward(first=3), 4),
            "train_mean_reward_last": round(hist.mean_reward(last=3), 4),
            "valid_rate": round(sum(s.valid for s in eval_samples) / max(1, len(eval_samples)), 4),
            "new_evasions": len(new_ev),
            "evasions_caught_after": None if caught is None else round(caught, 4),
            "objective_recall": choose_info.get("recall"),
            "fpr_calibration": round(agent.fpr(state, calib), 4),
            "fpr_test": round(agent.fpr(state, test), 4),
            "fpr_added_calibration": round(agent.fpr(state, calib) - agent.fpr(_base_only(state), calib), 4),
            "fpr_added_test": round(agent.fpr(state, test) - agent.fpr(_base_only(state), test), 4),
            "fpr_mode": choose_info.get("mode"),
            "target_fpr": target,
            "feasible": choose_info.get("feasible"),
            "base_thresholds": {n: float(x) for n, x in zip(base.names, taus)},
            "head_threshold": None if not math.isfinite(t) else round(float(t), 6),
            "fit": fit_info,
            "evasions_by_family": _count(s.construction.family for s in evaded),
            "seconds": {"generator": round(t_gen, 1), "fit": round(t_fit, 1)},
        }
        if val is not None:
            m["validation"] = val.metrics(state)
        m["seconds"]["round"] = round(time.perf_counter() - tr0, 1)
        rd = out / "rounds" / f"round-{r:02d}"
        manifest = write_artifact(rd, state, fz, base_names=base.names, target_fpr=target, parent=parent,
                                  metrics={k: v for k, v in m.items() if k not in ("fit",)},
                                  training={"records": len(train), "attack_records": sum(x.is_attack for x in train),
                                            **fit_info, "seed": cfg.seed},
                                  base_policy=str(pol_path))
        m["artifact"] = manifest["id"]
        (rd / "report.json").write_text(json.dumps(m, indent=2, default=_jsonable), encoding="utf-8")
        parent = {"id": manifest["id"], "path": str(rd.resolve())}
        rounds.append(m)
        states.append(state)
        log(f"round {r}: evasion {rate:.3f} vs detector {r - 1}; {len(new_ev)} new evasions, {m['evasions_caught_after']} "
            f"caught by detector {r}; FPR calib {m['fpr_calibration']:.3f} test {m['fpr_test']:.3f}"
            + (f"; validation {m['validation']}" if val is not None else "") + f" ({m['seconds']['round']:.0f}s)")

    # final outputs
    final = out / "detector"
    if final.exists():
        shutil.rmtree(final)
    if rounds:
        shutil.copytree(out / "rounds" / f"round-{len(rounds):02d}", final)
    else:
        write_artifact(final, state, fz, base_names=base.names, target_fpr=target, parent=parent, metrics=round0,
                       training={}, base_policy=str(pol_path))
    write_policy(out / "policy.yaml", pol_path, full_policy, final,
                 {n: float(x) for n, x in zip(base.names, state.taus)}, target)
    gen.save(out / "generator", {"rounds": len(rounds), "artifact": state.id})
    with (out / "attacks.jsonl").open("w", encoding="utf-8") as f:
        for row in evasions_out:
            f.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")
    seconds = time.perf_counter() - t_start
    report = {"config": _config_dict(cfg), "base_policy": str(pol_path), "base_detectors": base.names,
              "not_run_in_loop": skipped,
              "target_fpr": target, "round0": round0, "rounds": rounds, "seconds": round(seconds, 1),
              "detector": str(final), "policy": str(out / "policy.yaml")}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return HardenResult(out, rounds, round0, states, gen, agent, space, val, seconds)


def _explore(space: AttackSpace, n: int, seed: int) -> list:
    """`n` valid attacks from uniformly random constructions."""
    from .attack_space import ConstructionError
    from .validator import validate

    rng = random.Random(seed)
    out = []
    tries = 0
    while len(out) < n and tries < n * 10:
        tries += 1
        c = space.random_construction(rng)
        try:
            a = space.build(c)
        except ConstructionError:
            continue
        if validate(a).ok:
            out.append(a)
    return out


def _base_only(state: DetectorState) -> DetectorState:
    return DetectorState(state.taus, None, math.inf, 1.0, state.round)


def _library_segments(library: Sequence[UserPrompt]) -> list[list]:
    """The user's prompts, rendered clean, as held clean data."""
    from .attack_space import Construction

    out = []
    space = AttackSpace(library)
    for i, u in enumerate(library):
        if len(u.items) >= 2:
            c = Construction.make("demo", i, domain="user", format="completion")
            try:
                out.append(space.build(c, poison=False, base=u).segments())
            except Exception:  # noqa: BLE001
                continue
    return out


def _count(xs) -> dict[str, int]:
    d: dict[str, int] = {}
    for x in xs:
        d[x] = d.get(x, 0) + 1
    return d


def _config_dict(cfg: HardenConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return d


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# promptguard harden report", "",
             f"Base policy: `{report['base_policy']}` (detectors: {', '.join(report['base_detectors'])}); "
             f"target FPR {report['target_fpr']:.3f}; {report['seconds']:.0f} s.", "",
             "| round | evasion rate (vs previous detector) | new evasions | caught after retraining | FPR calib | FPR test | val. recall | val. recall BadChain | val. recall injection | val. FPR benign |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    r0 = report["round0"]
    v0 = r0.get("validation") or {}
    lines.append(f"| 0 | | | | {r0['fpr_calibration']:.3f} | {r0['fpr_test']:.3f} | {_f(v0.get('recall'))} | "
                 f"{_f(v0.get('recall_badchain'))} | {_f(v0.get('recall_injection'))} | {_f(v0.get('fpr_benign'))} |")
    for m in report["rounds"]:
        v = m.get("validation") or {}
        lines.append(f"| {m['round']} | {m['evasion_rate']:.3f} | {m['new_evasions']} | {_f(m['evasions_caught_after'])} | "
                     f"{m['fpr_calibration']:.3f} | {m['fpr_test']:.3f} | {_f(v.get('recall'))} | {_f(v.get('recall_badchain'))} | "
                     f"{_f(v.get('recall_injection'))} | {_f(v.get('fpr_benign'))} |")
    if report["rounds"]:
        last = report["rounds"][-1]
        lines += ["", f"Final base thresholds: {last['base_thresholds']}; head threshold {last['head_threshold']}."]
    if report.get("comparison"):
        c = report["comparison"]
        lines += ["", f"Fresh generator: evasion {c['round0']:.3f} vs round-0 detector, {c['hardened']:.3f} vs hardened "
                      f"(ratio {c['ratio']:.2f})."]
    return "\n".join(lines) + "\n"


def _f(x: Any) -> str:
    return "" if x is None else f"{x:.3f}"


def fresh_comparison(result: HardenResult, *, steps: int, batch: int, eval_samples: int, seed: int = 12345,
                     seeds: Sequence[int] | None = None, config: GeneratorConfig | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train fresh generators against the round-0 detector and (same seeds) against the
    hardened one; compare their evasion rates (mean over `seeds`)."""
    agent, space = result.agent, result.space
    seeds = list(seeds) if seeds else [seed]
    out: dict[str, Any] = {"steps": steps, "batch": batch, "eval_samples": eval_samples, "seeds": seeds}
    for name, state in (("round0", result.states[0]), ("hardened", result.states[-1])):
        rates, fams, secs = [], {}, 0.0
        for sd in seeds:
            t0 = time.perf_counter()
            g = Generator(config or result.generator.config, seed=sd)

            def flagged(a, st=state) -> tuple[bool, float]:
                return agent.judge(st, a.segments())

            g.train(space, flagged, steps=steps, batch=batch, keep_samples=False)
            rate, samples = g.evasion_rate(space, flagged, n=eval_samples)
            rates.append(round(rate, 4))
            for k, v in _count(s.construction.family for s in samples if s.evaded).items():
                fams[k] = fams.get(k, 0) + v
            secs += time.perf_counter() - t0
            log(f"fresh generator (seed {sd}) vs {name} detector: evasion {rate:.3f} ({time.perf_counter() - t0:.0f}s)")
        out[name] = round(sum(rates) / len(rates), 4)
        out[f"{name}_per_seed"] = rates
        out[f"{name}_evasions_by_family"] = fams
        out[f"{name}_seconds"] = round(secs, 1)
    out["ratio"] = round(out["hardened"] / out["round0"], 4) if out["round0"] > 0 else None
    return out
