"""The fixed validation set the loop never trains on, and held clean sets.

- ``../shared/data/badchain``: every prompt file in its manifest, parsed the way
  the scanner parses a prompt-library file; poisoned when the manifest lists
  poisoned demonstrations.
- ``../shared/data/injection/dev.jsonl``: each row as one segment — a context
  segment (retrieved/tool data) for indirect injections and benign contexts, a
  query for direct injections, jailbreaks and benign instructions.

Both are optional (`None` when missing). Held clean sets are clean twins drawn
from the attack space with seeds the training never uses.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..segments import Segment, SegmentBuilder, SegmentKind
from .attack_space import AttackSpace, ConstructionError

__all__ = ["LabelledPrompt", "load_badchain", "load_injection_dev", "clean_prompts", "default_shared_dir"]


@dataclass
class LabelledPrompt:
    id: str
    segments: list[Segment]
    label: int  # 1 attack, 0 benign
    group: str  # badchain/<task> | injection/<kind>


def default_shared_dir() -> Path | None:
    here = Path(__file__).resolve()
    for up in here.parents:
        cand = up.parent / "shared"
        if (cand / "data").is_dir():
            return cand
    return None


def load_badchain(shared: Path | None) -> list[LabelledPrompt] | None:
    if shared is None:
        return None
    root = shared / "data" / "badchain"
    man = root / "manifest.json"
    if not man.is_file():
        return None
    from ..parsing.files import parse_file

    out: list[LabelledPrompt] = []
    for rec in json.loads(man.read_text(encoding="utf-8"))["files"]:
        pf = parse_file(root / rec["file"])
        if pf.error or not pf.segments:
            continue
        out.append(LabelledPrompt(rec["file"], pf.segments, 1 if rec.get("n_poisoned") else 0, f"badchain/{rec['task']}"))
    return out


_CONTEXT_KINDS = {"indirect_injection", "benign_context"}


def load_injection_dev(shared: Path | None, limit: int | None = None) -> list[LabelledPrompt] | None:
    if shared is None:
        return None
    path = shared / "data" / "injection" / "dev.jsonl"
    if not path.is_file():
        return None
    out: list[LabelledPrompt] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            kind = SegmentKind.CONTEXT if row.get("kind") in _CONTEXT_KINDS else SegmentKind.QUERY
            b = SegmentBuilder()
            b.add(kind, row["text"], source="tool:retrieved" if kind is SegmentKind.CONTEXT else "user")
            out.append(LabelledPrompt(row["id"], b.segments, int(row["label"]), f"injection/{row.get('kind')}"))
            if limit and len(out) >= limit:
                break
    return out


def clean_prompts(space: AttackSpace, n: int, seed: int, families: Sequence[str] = ("demo", "inject")) -> list[tuple[list[Segment], dict]]:
    """`n` clean prompts (clean twins of random constructions), balanced over families."""
    rng = random.Random(seed)
    out: list[tuple[list[Segment], dict]] = []
    tries = 0
    while len(out) < n and tries < n * 20:
        tries += 1
        fam = families[len(out) % len(families)]
        c = space.random_construction(rng, fam)
        try:
            a = space.build(c, poison=False)
            segs = a.segments()
        except ConstructionError:
            continue
        except Exception:  # noqa: BLE001 - a prompt our parser rejects is not useful clean data
            continue
        out.append((segs, {"construction": c.to_dict()}))
    return out
