"""A user's prompt library as attack material (`UserPrompt`s).

Files are parsed with the scanner's own parser (`parse_file`). Per prompt: its
demonstrations become typed worked examples (their answers parsed: number,
choice letter, yes/no, label, date, text, SQL), its instruction and its query
are kept, so the attack keeps the user's own wording and format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..parsing.files import iter_prompt_files, parse_file
from ..segments import SegmentKind, by_prompt
from .attack_space import UserPrompt
from .domains import items_from_segments

__all__ = ["load_library", "LibraryError"]


class LibraryError(ValueError):
    pass


def load_library(paths: Sequence[str | Path]) -> tuple[list[UserPrompt], list[str]]:
    """(prompts, problems): every prompt group of every prompt file under `paths`."""
    prompts: list[UserPrompt] = []
    problems: list[str] = []
    files = list(iter_prompt_files([Path(p) for p in paths]))
    if not files:
        raise LibraryError(f"no prompt files under {', '.join(map(str, paths))}")
    for f in files:
        pf = parse_file(f)
        if pf.error:
            problems.append(f"{f}: {pf.error}")
            continue
        for gi, segs in by_prompt(pf.segments).items():
            items = items_from_segments(segs)
            instr = "\n\n".join(s.text for s in segs if s.kind is SegmentKind.INSTRUCTION).strip() or None
            queries = [s.text for s in segs if s.kind is SegmentKind.QUERY]
            query = queries[-1].strip() if queries else None
            n_demo_segs = sum(1 for s in segs if s.kind is SegmentKind.DEMONSTRATION)
            if n_demo_segs and len(items) < n_demo_segs:
                problems.append(f"{f} prompt {gi}: {n_demo_segs - len(items)} demonstration(s) without a readable answer skipped")
            if not items and not instr and not query:
                continue
            demo_segs = [s for s in segs if s.kind is SegmentKind.DEMONSTRATION]
            fmt = None
            if demo_segs:
                if demo_segs[0].message_index is None:
                    fmt = "completion"
                elif demo_segs[0].source == "few-shot":
                    fmt = "chat_pairs"
                else:
                    fmt = "chat_system"
            marker = "Question: "
            if demo_segs and demo_segs[0].parts is not None and demo_segs[0].parts.question.start > 0:
                raw = demo_segs[0].text[: demo_segs[0].parts.question.start]
                if raw.strip() and len(raw) <= 20 and "\n" not in raw:
                    marker = raw
            prompts.append(UserPrompt(items=items, instruction=instr, query=query, source=f"{f}#{gi}", format=fmt,
                                      marker=marker))
    return prompts, problems
