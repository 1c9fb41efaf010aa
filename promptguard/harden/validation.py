"""The ../shared BadChain prompt files as an extra held-out set.

``../shared/data/badchain``: every prompt file in its manifest, parsed the way the
scanner parses a prompt-library file; poisoned when the manifest lists poisoned
demonstrations. Neither the demonstrations detector's weights nor any hardening
round is fitted on these files. Optional (`None` when missing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..segments import Segment

__all__ = ["LabelledPrompt", "load_badchain", "default_shared_dir"]


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
