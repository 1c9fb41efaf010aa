"""Found text: real, clean prose and code from the local Python installation.

Hand-written carrier documents are few; a head trained only on them learns that
anything it has not seen is suspicious, and real documents then look like attacks.
This module gathers real text that is on every machine that runs promptguard —
the Python documentation topics shipped with the interpreter (`pydoc_data`), the
standard library's source, and the descriptions of the installed packages — and
serves it as carrier documents (retrieved chunks, web pages, code, tool snippets).

Documents are split three ways by a stable hash of their text: `train` (the
generator's carriers and the clean training data), `calib` (the clean prompts the
thresholds are chosen on) and `test` (the clean prompts the FPR is reported on),
so calibration measures false positives on documents the head has never seen.
Anything that mentions injections, jailbreaks or system prompts is left out (a
README that quotes an injection is not clean text).
"""

from __future__ import annotations

import re
import sysconfig
import zlib
from functools import lru_cache
from pathlib import Path

__all__ = ["found_documents", "SPLITS"]

SPLITS = ("train", "calib", "test")
_MAX_DOC = 1400
# a README that quotes an injection or a jailbreak is not clean text: leave it out
_INJECTIONISH = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,40}\b(?:instructions|prompt|rules)\b|system prompt|jailbreak|"
    r"prompt injection|\bDAN\b|do anything now|developer mode", re.IGNORECASE | re.DOTALL)


def _split_of(text: str) -> str:
    h = zlib.crc32(text.encode("utf-8", "surrogatepass")) % 20
    return "train" if h < 14 else ("calib" if h < 17 else "test")


def _paragraphs(text: str) -> list[str]:
    out = []
    for p in re.split(r"\n\s*\n", text):
        p = p.strip()
        if len(p) < 40:
            continue
        letters = sum(c.isalpha() for c in p)
        if letters < 0.5 * len(p):
            continue
        out.append(p)
    return out


def _group(paras: list[str], rng_key: str) -> list[str]:
    """Consecutive paragraphs grouped into documents of at most `_MAX_DOC` characters."""
    docs, cur = [], []
    size = 0
    for p in paras:
        p = p[:_MAX_DOC]
        if cur and size + len(p) > _MAX_DOC:
            docs.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(p)
        size += len(p) + 2
    if cur:
        docs.append("\n\n".join(cur))
    return docs


def _prose() -> list[str]:
    docs: list[str] = []
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - part of CPython
        topics = {}
    for name in sorted(topics):
        docs.extend(_group(_paragraphs(topics[name]), name))
    try:
        import importlib.metadata as md

        seen: set[str] = set()
        for dist in sorted(md.distributions(), key=lambda d: (d.metadata.get("Name") or "").lower()):
            name = (dist.metadata.get("Name") or "").lower()
            if not name or name in seen:
                continue
            seen.add(name)
            body = dist.metadata.get("Description") or ""
            if not body:
                payload = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""
                body = payload if isinstance(payload, str) else ""
            docs.extend(_group(_paragraphs(body), name))
    except Exception:  # noqa: BLE001 - metadata of a broken install: just fewer documents
        pass
    return docs


def _code() -> list[str]:
    out: list[str] = []
    try:
        root = Path(sysconfig.get_paths()["stdlib"])
        files = sorted(root.glob("*.py"))
    except (KeyError, OSError):  # pragma: no cover
        return out
    for f in files[::2]:
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        starts = [i for i, ln in enumerate(lines) if re.match(r"(def |class |    def )", ln)]
        for s in starts[::4][:6]:
            chunk = "\n".join(lines[s:s + 18]).rstrip()
            if 200 <= len(chunk) <= _MAX_DOC:
                out.append(chunk)
    return out


@lru_cache(maxsize=1)
def found_documents() -> dict[str, dict[str, list[str]]]:
    """{split: {"prose": [...], "code": [...]}}, deterministic for an installation."""
    def clean(text: str) -> bool:
        return _INJECTIONISH.search(text) is None

    out: dict[str, dict[str, list[str]]] = {s: {"prose": [], "code": []} for s in SPLITS}
    for kind, docs in (("prose", _prose()), ("code", _code())):
        seen: set[str] = set()
        for d in docs:
            if d in seen or not clean(d):
                continue
            seen.add(d)
            out[_split_of(d)][kind].append(d)
    return out
