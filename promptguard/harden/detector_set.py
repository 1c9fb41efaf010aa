"""A hardened detector set: the policy's own detectors with retrained weights.

`promptguard harden` does not stack a second opinion on a policy. It retrains the
two learned detectors the policy already runs — the injection classifier (a model
folder) and the demonstrations detector (a weights file) — and a round's output is
one `DetectorSet`: which classifier folder and which demonstrations weights the
policy's `classifier` and `demonstrations` detectors load. Everything else in the
policy (rules, thresholds, trust, limits) is kept.

`Evaluator` runs a detector set over many prompts the way the scanner does (a real
`Guard`, face ``scanner``: nothing trusted), with the classifier's windows for a
whole batch computed in one pass first, and returns per prompt whether it was
flagged and by how much (the largest finding score above its flag threshold, so
thresholds can be shifted afterwards to compare detector sets at the same
false-positive rate).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..guard import Guard
from ..policy import Action, DetectorConfig, Policy
from ..segments import Segment

__all__ = ["DetectorSet", "Verdict", "Evaluator", "write_policy", "save_set", "merge_thresholds", "SET_FORMAT"]

SET_FORMAT = "promptguard-detector-set"
SET_VERSION = 1


@dataclass
class DetectorSet:
    """The trainable part of a policy: classifier model folder + demonstrations weights."""

    classifier: str | None  # a model folder, or None for the policy's own (`default`: the packaged model)
    demonstrations: str | None  # a weights file, or a name (auto | principled | fitted), None: the policy's own
    round: int = 0
    id: str = "base"
    parent: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # threshold entries that replace the base policy's for the same detector and rule
    # (the library pass raises the demonstrations detector's above a user's clean files)
    thresholds: tuple[dict[str, Any], ...] = ()

    def policy(self, base: Policy, *, evidence: bool = True) -> Policy:
        """`base` with this set's classifier folder, demonstrations weights and threshold
        overrides (`evidence=False`: the classifier names no nearest attack; faster,
        same decisions)."""
        from ..policy import Threshold

        dets = dict(base.detectors)
        if "classifier" in dets:
            opts = _cfg(dets["classifier"])
            if self.classifier is not None:
                opts["model"] = str(self.classifier)
            if not evidence:
                opts["evidence"] = False
            dets["classifier"] = DetectorConfig(**opts)
        if self.demonstrations is not None and "demonstrations" in dets:
            dets["demonstrations"] = DetectorConfig(**{**_cfg(dets["demonstrations"]), "weights": str(self.demonstrations)})
        update: dict[str, Any] = {"detectors": dets}
        if self.thresholds:
            update["thresholds"] = merge_thresholds(list(base.thresholds), [Threshold(**t) for t in self.thresholds])
        p = base.model_copy(update=update)
        p.base_dir = base.base_dir
        return p


def merge_thresholds(base: list[Any], extra: list[Any]) -> list[Any]:
    """`base` with the entries for the same detector and rule as one of `extra`
    replaced by it (works on `Threshold`s and on plain dicts)."""
    def key(t: Any) -> tuple[Any, Any]:
        return (t.get("detector"), t.get("rule")) if isinstance(t, dict) else (t.detector, t.rule)

    keys = {key(t) for t in extra}
    return [t for t in base if key(t) not in keys] + list(extra)


def _cfg(c: DetectorConfig) -> dict[str, Any]:
    return {"enabled": c.enabled, "skip_trusted": c.skip_trusted, **c.options}


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    # largest (finding score - its flag threshold) over the findings; -1 without findings,
    # +inf when a detector error decided (fail closed)
    margin: float
    fired: tuple[str, ...] = ()


class Evaluator:
    """Runs detector sets over prompts as the scanner would; guards are cached per set."""

    def __init__(self, base: Policy, face: str = "scanner", batch: int = 64, fast: bool = True) -> None:
        self.base = base
        self.face = face
        self.batch = batch
        self.fast = fast  # no nearest-attack evidence (decisions are the same)
        self._guards: dict[str, Guard] = {}
        self.seconds = 0.0
        self.prompts = 0

    def guard(self, ds: DetectorSet) -> Guard:
        key = f"{ds.id}|{ds.classifier}|{ds.demonstrations}|{ds.thresholds}"
        g = self._guards.get(key)
        if g is None:
            if len(self._guards) >= 6:  # a few sets at a time (each holds a classifier session)
                self._guards.pop(next(iter(self._guards)))
            g = self._guards[key] = Guard(ds.policy(self.base, evidence=not self.fast), face=self.face)
        return g

    def forget(self, ds: DetectorSet) -> None:
        for k in [k for k in self._guards if k.startswith(f"{ds.id}|")]:
            self._guards.pop(k)

    def verdicts(self, ds: DetectorSet, prompts: Sequence[Sequence[Segment]]) -> list[Verdict]:
        g = self.guard(ds)
        t0 = time.perf_counter()
        out: list[Verdict] = []
        for i in range(0, len(prompts), self.batch):
            chunk = prompts[i : i + self.batch]
            _prefetch(g, chunk)
            for segs in chunk:
                out.append(self._one(g, segs))
        self.seconds += time.perf_counter() - t0
        self.prompts += len(prompts)
        return out

    def _one(self, g: Guard, segs: Sequence[Segment]) -> Verdict:
        res = g.check(list(segs))
        margin = -1.0
        for f in res.findings:
            margin = max(margin, f.score - g.policy.threshold_for(f).flag_at)
        if res.decision.errors and res.action is not Action.ALLOW:
            margin = math.inf
        fired = tuple(sorted({f"{f.detector}/{f.rule}" if f.rule else f.detector for f in res.decision.reasons}))
        return Verdict(res.action is not Action.ALLOW, margin, fired)


def _prefetch(g: Guard, prompts: Sequence[Sequence[Segment]]) -> None:
    """Compute the classifier's windows for every segment of `prompts` in one batched
    pass (its window cache then answers the per-prompt checks)."""
    det = next((d for d in g.detectors if getattr(d, "name", "") == "classifier" and hasattr(d, "clf")), None)
    if det is None:
        return
    kinds = getattr(det, "kinds", None)
    items = []
    for segs in prompts:
        for s in g.mark_trust(segs):
            if s.text.strip() and (kinds is None or s.kind in kinds):
                items.append((s.text, s.kind.value))
    if items:
        try:
            det.clf.score(items)
        except Exception:  # noqa: BLE001 - the real check reports the error
            pass


# -- artifacts -------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_set(ds: DetectorSet, directory: Path, *, metrics: dict[str, Any] | None = None) -> DetectorSet:
    """Copy the set's files into `directory` (``classifier/``, ``demonstrations.json``)
    with a ``manifest.json``; returns the set pointing at the copies."""
    directory.mkdir(parents=True, exist_ok=True)
    clf = dem = None
    files: dict[str, str] = {}
    if ds.classifier is not None and Path(ds.classifier).resolve() != (directory / "classifier").resolve():
        if (directory / "classifier").exists():
            shutil.rmtree(directory / "classifier")
        shutil.copytree(ds.classifier, directory / "classifier")
    if ds.classifier is not None:
        clf = str(directory / "classifier")
        files["classifier/model.int8.onnx"] = _sha(directory / "classifier" / "model.int8.onnx")
    if ds.demonstrations is not None and Path(ds.demonstrations).is_file():
        if Path(ds.demonstrations).resolve() != (directory / "demonstrations.json").resolve():
            shutil.copyfile(ds.demonstrations, directory / "demonstrations.json")
        dem = str(directory / "demonstrations.json")
        files["demonstrations.json"] = _sha(directory / "demonstrations.json")
    elif ds.demonstrations is not None:
        dem = ds.demonstrations  # a named weight set (auto, principled, fitted)
    out = DetectorSet(clf, dem, ds.round, ds.id, ds.parent, dict(ds.meta), tuple(ds.thresholds))
    manifest = {"format": SET_FORMAT, "format_version": SET_VERSION, "id": ds.id, "round": ds.round,
                "parent": ds.parent, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "classifier": "classifier" if clf else None,
                "demonstrations": ("demonstrations.json" if dem and Path(dem).is_file() else dem),
                "thresholds": list(ds.thresholds), "sha256": files, "metrics": metrics or {}, **ds.meta}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return out


def _absolutize(value: Any, base_dir: Path) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value) and (base_dir / value).exists():
        return str((base_dir / value).resolve())
    if isinstance(value, list):
        return [_absolutize(v, base_dir) for v in value]
    return value


def write_policy(path: Path, base_policy_path: Path, base: Policy, ds: DetectorSet, *, note: str = "") -> Path:
    """The base policy file with the set's classifier folder and demonstrations weights
    (paths relative to the new policy); relative paths of the base policy's other
    options (rule sets) become absolute, since the new policy lives elsewhere."""
    import yaml

    from ..yamlutil import safe_load

    raw = safe_load(base_policy_path.read_text(encoding="utf-8")) or {}
    dets = dict(raw.get("detectors") or {})
    for name, opts in list(dets.items()):
        if isinstance(opts, dict):
            dets[name] = {k: _absolutize(v, base.base_dir) for k, v in opts.items()}
    here = path.parent.resolve()
    if ds.classifier is not None and "classifier" in dets:
        dets["classifier"] = {**(dets.get("classifier") or {}), "model": os.path.relpath(Path(ds.classifier).resolve(), here)}
    if ds.demonstrations is not None and "demonstrations" in dets:
        w = ds.demonstrations
        if Path(w).is_file():
            w = os.path.relpath(Path(w).resolve(), here)
        dets["demonstrations"] = {**(dets.get("demonstrations") or {}), "weights": w}
    raw["detectors"] = dets
    if ds.thresholds:
        raw["thresholds"] = merge_thresholds(list(raw.get("thresholds") or []), [dict(t) for t in ds.thresholds])
    raw["name"] = f"{raw.get('name', 'policy')}-hardened"
    header = (f"# Generated by `promptguard harden` on {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} from "
              f"{base_policy_path}.\n# The classifier and the demonstrations detector load the retrained weights of "
              f"detector set {ds.id} (round {ds.round});\n# everything else is the base policy's.\n"
              + "".join(f"# {line}\n" for line in note.splitlines() if line))
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
