"""What the report formats share: how a finding is named, located and ranked."""

from __future__ import annotations

from typing import Any

from ..scanner import FileResult

__all__ = ["ACTION_RANK", "VERDICTS", "one_line", "shown_findings", "top_finding", "where", "who"]

ACTION_RANK = {"allow": 0, "flag": 1, "sanitize": 2, "block": 3}
VERDICTS = ("block", "sanitize", "flag", "allow", "error")


def who(f: dict[str, Any]) -> str:
    """`detector/rule`, or the detector alone."""
    return f"{f['detector']}/{f['rule']}" if f.get("rule") else f["detector"]


def where(f: dict[str, Any]) -> str:
    """`kind[index] · line N · chars s–e` (`· message M` for a chat message)."""
    out = f"{f['segment_kind']}[{f['segment_index']}] · line {f.get('line', 1)}"
    span = f.get("span")
    if span:
        out += f" · chars {span[0]}–{span[1]}"
    if f.get("message_index") is not None:
        out += f" · message {f['message_index']}"
    return out


def one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def shown_findings(fr: FileResult, everything: bool = False) -> list[dict[str, Any]]:
    """The findings a report shows: those at or above their flag threshold (action other
    than `allow`), or all of them."""
    return list(fr.findings) if everything else [f for f in fr.findings if f.get("action", "flag") != "allow"]


def top_finding(fr: FileResult) -> dict[str, Any] | None:
    """The finding a file's verdict rests on: the most severe action, then the highest score,
    then the first in the file."""
    best = None
    for f in fr.findings:
        key = (ACTION_RANK.get(f.get("action", "flag"), 1), f["score"])
        if best is None or key > best[0]:
            best = (key, f)
    return best[1] if best is not None else None
