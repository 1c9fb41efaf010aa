"""Short fine-tunes of a trained classifier: the hardening loop's retraining step.

`finetune(init_dir, rows, out_dir, cfg, calibration_rows=...)` starts from the top
layers and head of an existing classifier (its ``top.fp16.pt``, or, for a model
shipped without it, the int8 weights of its ONNX graph read back), trains them
for a small token budget on `rows` — the new attacks and clean prompts of a round
mixed with a replay sample of the corpus the model came from — over the cached
bottom-layer states (`training.FeatureCache`), then exports, quantizes and
re-calibrates per segment kind on `calibration_rows` (clean rows nobody trains on).

A round therefore costs the bottom layers of the new rows (once; the cache keeps
the replay sample's), a few hundred optimiser steps on two transformer layers,
one export and one calibration pass — minutes on a 2-core CPU, not the hour a
training from the base model takes.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .corpus.rows import Row
from .training import (
    FORMAT_VERSION,
    FeatureCache,
    TrainConfig,
    base_model_dir,
    export_onnx,
    finish_model_dir,
    open_feature_cache,
    rows_to_bags,
    train_top,
)

__all__ = ["finetune", "top_state", "FINETUNE_DEFAULTS"]

# a fine-tune moves less far than a training from the base model: lower learning
# rates, a short warm-up, a small budget
FINETUNE_DEFAULTS = dict(token_budget=150_000, lr=1e-4, head_lr=5e-4, warmup=0.1, calib_fraction=0.0)

_MODULE = re.compile(r"^/(bert/encoder/layer\.(\d+)/[\w/.]+?|head)/(?:MatMul|Gemm)")


def top_state(model_dir: Path, frozen_layers: int) -> dict[str, Any]:
    """The trained top layers + head of the classifier in `model_dir` as a torch state
    dict for `training._make_top`: from ``top.fp16.pt`` when the folder has it, else
    read back from the int8 ONNX graph (per-channel weights dequantized; layer norms
    and biases are stored in float)."""
    import torch

    pt = model_dir / "top.fp16.pt"
    if pt.is_file():
        state = torch.load(pt, map_location="cpu")
        return {k: v.float() for k, v in state.items()}
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_dir / "model.int8.onnx"))
    inits = {i.name: i for i in model.graph.initializer}

    def arr(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    out: dict[str, Any] = {}

    def target(module: str) -> str | None:
        """bert.encoder.layer.<k>.x -> layers.<k - frozen>.x (top layers only); head -> head."""
        if module == "head":
            return "head"
        m = re.match(r"bert\.encoder\.layer\.(\d+)\.(.+)$", module)
        if m and int(m.group(1)) >= frozen_layers:
            return f"layers.{int(m.group(1)) - frozen_layers}.{m.group(2)}"
        return None

    for node in model.graph.node:
        if node.op_type not in ("MatMulInteger", "MatMul"):
            continue
        m = _MODULE.match(node.output[0])
        if not m:
            continue
        module = m.group(1).replace("/", ".")
        tgt = target(module)
        if tgt is None:
            continue
        wname = node.input[1]
        if wname.endswith("_quantized"):
            stem = wname[: -len("_quantized")]
            q = arr(wname).astype(np.float32)
            zp = arr(stem + "_zero_point").astype(np.float32)
            sc = arr(stem + "_scale").astype(np.float32)
            w = (q - zp.reshape(1, -1)) * sc.reshape(1, -1)  # per output channel (axis 1 of [in, out])
        elif wname in inits:
            w = arr(wname).astype(np.float32)
        else:
            continue
        out[f"{tgt}.weight"] = torch.from_numpy(np.ascontiguousarray(w.T))
    for name in inits:
        tgt = target(name.rsplit(".", 1)[0]) if name.endswith((".bias", ".weight")) else None
        if tgt is not None and not name.endswith("_quantized"):
            key = f"{tgt}.{name.rsplit('.', 1)[1]}"
            if key not in out:
                out[key] = torch.from_numpy(arr(name).astype(np.float32).copy())
    return out


def finetune(
    init_dir: Path,
    rows: Sequence[Row],
    out_dir: Path,
    cfg: TrainConfig | None = None,
    *,
    calibration_rows: Sequence[Row],
    cache: FeatureCache | None = None,
    log: Callable[[str], None] | None = None,
    meta: dict[str, Any] | None = None,
):
    """Fine-tune the classifier in `init_dir` on `rows`, write it to `out_dir` and
    return it loaded (`runtime.Classifier`).

    `cfg` defaults to `FINETUNE_DEFAULTS` on the init model's own window settings;
    thresholds per kind come from `calibration_rows` (their clean rows), which must
    not overlap `rows`."""
    import torch

    from .runtime import Classifier

    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    init_info = json.loads((init_dir / "classifier.json").read_text(encoding="utf-8"))
    base_cfg = init_info.get("config") or {}
    if cfg is None:
        known = {k: v for k, v in base_cfg.items() if k in TrainConfig.__dataclass_fields__}
        cfg = replace(TrainConfig(**known), **FINETUNE_DEFAULTS)
    if int(base_cfg.get("frozen_layers", cfg.frozen_layers)) != cfg.frozen_layers:
        raise ValueError(f"{init_dir} was trained with frozen_layers={base_cfg.get('frozen_layers')}, not {cfg.frozen_layers}")
    rows = list(rows)
    if len({r.label for r in rows}) < 2:
        raise ValueError("fine-tuning needs both attack (1) and benign (0) rows")
    cal_ids = {r.id for r in calibration_rows}
    if any(r.id in cal_ids for r in rows):
        raise ValueError("a calibration row is also a training row")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok_path = base_model_dir() / "tokenizer.json"
    cache, tmp = open_feature_cache(cache, cfg, "promptguard-finetune-")
    bags = rows_to_bags(rows, cache, cfg)
    cache.fill(say)
    t1 = time.perf_counter()
    init = top_state(init_dir, cfg.frozen_layers)
    top = train_top(bags, cache, cfg, say, init=init)
    t2 = time.perf_counter()
    export_onnx(top, cfg.frozen_layers, out_dir / "model.int8.onnx")
    torch.save({k: v.half() for k, v in top.state_dict().items()}, out_dir / "top.fp16.pt")
    shutil.copyfile(init_dir / "tokenizer.json" if (init_dir / "tokenizer.json").is_file() else tok_path,
                    out_dir / "tokenizer.json")
    info = {
        "format": FORMAT_VERSION,
        "base_model": init_info.get("base_model"),
        "config": asdict(cfg),
        "kinds": init_info.get("kinds"),
        "calibration": {},
        "parent": {"path": str(init_dir), "corpus": (init_info.get("corpus") or {}).get("sha256"),
                   "command": init_info.get("command")},
        "training": {"finetune": True, "rows": len(rows), "bags": len(bags),
                     "calibration_rows": len(calibration_rows),
                     "seconds": {"features": round(t1 - t0, 1), "train": round(t2 - t1, 1)}},
        **(meta or {}),
    }
    finish_model_dir(out_dir, info, calibration_rows, cfg, t0, tmp)
    say(f"fine-tuned {init_dir.name} -> {out_dir} in {time.perf_counter() - t0:.0f} s")
    return Classifier(out_dir, threads=cfg.threads)
