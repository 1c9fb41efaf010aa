"""The corpus row: one labelled text, tagged with where it came from and under which licence."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Row", "CorpusError", "KINDS", "normalise", "read_rows", "write_rows"]

# Segment kinds the classifier is conditioned on (promptguard.segments.SegmentKind values).
KINDS = ("instruction", "example", "demonstration", "context", "query")


class CorpusError(RuntimeError):
    """A source is missing or malformed, or a corpus file cannot be read."""


@dataclass
class Row:
    """One training or evaluation text.

    `source` is the unit of leave-one-source-out selection (a public dataset, a
    dev-set source, `synthetic` or `hard-benign`); `origin` says exactly which
    file or generator produced the row; `licence` is the licence the row is used
    under. `span` marks where a planted payload sits in `text` (synthetic rows),
    so training can label the windows that hold it.
    """

    text: str
    label: int
    kind: str
    source: str
    origin: str
    licence: str
    category: str = ""
    lang: str = "en"
    span: tuple[int, int] | None = None
    group: str = ""  # rows that must stay on the same side of a split (a document and its twin)
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise CorpusError(f"label must be 0 or 1, not {self.label!r}")
        if self.kind not in KINDS:
            raise CorpusError(f"unknown segment kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.span is not None:
            s, e = (int(x) for x in self.span)
            if not 0 <= s < e <= len(self.text):
                raise CorpusError(f"span {self.span} outside the text ({len(self.text)} chars)")
            self.span = (s, e)
        if not self.id:
            h = hashlib.blake2b(f"{self.source}\0{self.kind}\0{self.text}".encode("utf-8", "surrogatepass"),
                                digest_size=8).hexdigest()
            self.id = f"{self.source}-{h}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["span"] = list(self.span) if self.span else None
        if not d["meta"]:
            d.pop("meta")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Row":
        d = dict(d)
        span = d.pop("span", None)
        return cls(span=tuple(span) if span else None, **d)


_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The exact-duplicate key: NFKC, case-folded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def write_rows(rows: Iterable[Row], path: Path) -> int:
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_rows(path: Path) -> Iterator[Row]:
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None
    with fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield Row.from_json(json.loads(line))
            except (ValueError, TypeError) as e:
                raise CorpusError(f"{path}:{i}: not a corpus row ({e})") from None
