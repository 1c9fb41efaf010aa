"""Text to model inputs: token windows with character spans, the segment-kind
prefix, and normalised views of obfuscated text.

The classifier reads ``[CLS] <kind> [SEP] <window> [SEP]``: the segment kind
(query, context, instruction, demonstration, example) conditions the score, so
"answer in French" can be an ordinary request in a query and an injected order
inside a retrieved document. A text is tokenized once (offsets kept) and cut
into windows of at most `window_tokens` tokens overlapping by `overlap_tokens`,
so a payload in the tail of a long document is read, and its span reported.

Only the `tokenizers` library is needed here (no torch, no transformers).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["KINDS", "Window", "WindowTokenizer", "View", "views", "pad_batch"]

KINDS = ("instruction", "example", "demonstration", "context", "query")


@dataclass(frozen=True, slots=True)
class Window:
    """Token ids of one window (kind prefix and special tokens included) and the
    character span [start, end) of the text it covers."""

    ids: tuple[int, ...]
    start: int
    end: int


class WindowTokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer, cutting texts into kind-prefixed windows."""

    def __init__(self, tokenizer_json: str | Path, *, window_tokens: int = 128, overlap_tokens: int = 32,
                 max_chars: int = 2_000_000) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_truncation()
        self._tok.no_padding()
        self._lock = threading.Lock()  # a Tokenizer is not documented as thread-safe for encode
        self.window_tokens = int(window_tokens)
        self.overlap_tokens = int(overlap_tokens)
        self.max_chars = int(max_chars)
        self.cls = self._tok.token_to_id("[CLS]")
        self.sep = self._tok.token_to_id("[SEP]")
        self.pad = self._tok.token_to_id("[PAD]") or 0
        self.unk = self._tok.token_to_id("[UNK]")
        self._kind_ids = {k: tuple(self._encode(k)[0]) for k in KINDS}
        longest = max(len(v) for v in self._kind_ids.values())
        if self.window_tokens - 3 - longest < 8:
            raise ValueError(f"window_tokens={window_tokens} leaves no room for text")
        if not 0 <= self.overlap_tokens < self.window_tokens - 3 - longest:
            raise ValueError(f"overlap_tokens must be smaller than the window, not {overlap_tokens}")

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        with self._lock:
            enc = self._tok.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets

    def prefix(self, kind: str) -> tuple[int, ...]:
        try:
            return (self.cls,) + self._kind_ids[kind] + (self.sep,)
        except KeyError:
            raise ValueError(f"unknown segment kind {kind!r}; known: {', '.join(KINDS)}") from None

    def windows(self, text: str, kind: str) -> list[Window]:
        """Windows covering `text` (an empty or blank text has none)."""
        head = self.prefix(kind)
        if not text or not text.strip():
            return []
        cut = len(text) > self.max_chars
        ids, offs = self._encode(text[: self.max_chars])
        keep = [i for i, (a, b) in enumerate(offs) if b > a]
        ids = [ids[i] for i in keep]
        offs = [offs[i] for i in keep]
        if not ids:  # e.g. only control characters: the model still sees [UNK]
            return [Window(head + (self.unk, self.sep), 0, len(text))]
        size = self.window_tokens - len(head) - 1
        step = size - self.overlap_tokens
        out: list[Window] = []
        i = 0
        while True:
            j = min(i + size, len(ids))
            start = offs[i][0] if i else 0
            end = offs[j - 1][1] if (j < len(ids) or cut) else len(text)
            out.append(Window(head + tuple(ids[i:j]) + (self.sep,), start, end))
            if j >= len(ids):
                break
            i += step
        return out

    def count(self, text: str) -> int:
        return len(self._encode(text)[0])


def pad_batch(windows: Sequence[Window], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64, padded to the longest window of the batch."""
    n = max(len(w.ids) for w in windows)
    ids = np.full((len(windows), n), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), n), dtype=np.int64)
    for i, w in enumerate(windows):
        ids[i, : len(w.ids)] = w.ids
        mask[i, : len(w.ids)] = 1
    return ids, mask


# -- normalised views ----------------------------------------------------------------------------
# An obfuscated payload (leetspeak, ROT13, base64, reversed, spaced-out letters,
# homoglyphs, zero-width characters) is also scored as the plain text it stands
# for. A view exists only when the text shows the obfuscation, so ordinary text
# costs nothing extra. `origin[i]` is the offset in the segment of view char i,
# so a finding on a view still points at the segment's own characters.


@dataclass(frozen=True)
class View:
    name: str
    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        if not self.origin:
            return (0, 0)
        a = self.origin[min(start, len(self.origin) - 1)]
        b = self.origin[min(max(end - 1, start), len(self.origin) - 1)]
        lo, hi = min(a, b), max(a, b)
        return (lo, hi + 1)


_STOP = frozenset("the and you your to of a in is it that for this all are be with not as on or now me my "
                  "what from ignore previous instructions system prompt tell say print reveal".split())
_WORD = re.compile(r"[A-Za-z]+")
_LEET_MAP = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t", "+": "t"})
_LEET_TOKEN = re.compile(r"(?=\S*[A-Za-z])(?=\S*[013457@$!+])[A-Za-z013457@$!+]{3,}")
_B64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_SPACED = re.compile(r"(?:\b\w\b[ \u00a0]){2,}\b\w\b")
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u180e\U000e0000-\U000e007f]")
_CONFUSABLE = str.maketrans({"а": "a", "с": "c", "е": "e", "і": "i", "о": "o", "р": "p", "х": "x", "у": "y", "ѕ": "s",
                             "ј": "j", "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "К": "K", "М": "M", "О": "O",
                             "Р": "P", "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "ԁ": "d", "ո": "n", "ɡ": "g",
                             "ⅰ": "i", "ı": "i", "ο": "o", "α": "a", "ε": "e", "ν": "v", "τ": "t", "ι": "i", "κ": "k"})
# a word that mixes ASCII letters with look-alikes from other scripts
_MIXED_WORD = re.compile(r"\w*(?:[A-Za-z][^\x00-\x7f\s]|[^\x00-\x7f\s][A-Za-z])\w*")


def _stop_share(text: str) -> float:
    words = _WORD.findall(text.lower())
    return sum(w in _STOP for w in words) / len(words) if words else 0.0


def _identity(text: str) -> tuple[int, ...]:
    return tuple(range(len(text)))


_COMMON = frozenset("""
the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she or
an will my one all would there their what so up out if about who get which go me when make can like time no just
him know take people into year your good some could them see other than then now look only come its over think also
back after use two how our work first well way even new want because any these give day most us is are was were
been has had did said should must please answer reply respond write tell print show reveal ignore disregard forget
previous prior above instructions instruction rules system prompt message messages user assistant everything
password secret key keys data send email link output text words word sentence following below new task only
never always instead stop now immediately do not dont you your yours hidden confidential admin developer mode
""".split())
_WORD_SPAN = re.compile(r"[A-Za-z']+")


def _decoded_runs(text: str, min_hits: int = 3) -> list[tuple[str, int, int]]:
    """(reading, start, end) for runs of words that are common English once ROT13-
    decoded or reversed, and are not as forwards."""
    words = [(m.start(), m.end(), m.group().lower()) for m in _WORD_SPAN.finditer(text)]
    out: list[tuple[str, int, int]] = []
    if len(words) < min_hits:
        return out
    fwd = [w in _COMMON for _, _, w in words]
    for name, dec in (("rot13", lambda w: codecs.decode(w, "rot13")), ("reversed", lambda w: w[::-1])):
        # one-letter words count for nothing ("n" is "a" in ROT13: variables in maths
        # would read as English)
        gain = [0 if len(w) < 2 else (1 if dec(w) in _COMMON else 0) - (1 if f else 0)
                for (_, _, w), f in zip(words, fwd)]
        i = 0
        while i < len(words):
            if gain[i] <= 0:
                i += 1
                continue
            # grow a run while the running sum stays positive
            j, total, best_j, best_total, hits = i, 0, i, 0, 0
            while j < len(words) and total + gain[j] > 0:
                total += gain[j]
                hits += gain[j] > 0
                if total >= best_total:
                    best_j, best_total = j, total
                j += 1
            if best_total >= min_hits:
                out.append((name, words[i][0], words[best_j][1]))
            i = max(j, i + 1)
    return out


def views(text: str, *, max_chars: int = 20000) -> list[View]:
    """Normalised readings of `text` worth scoring besides the text itself."""
    if not text:
        return []
    t = text[:max_chars]
    out: list[View] = []
    # invisible characters and homoglyphs: strip / fold (index map kept)
    mixed = any(any(c.translate(_CONFUSABLE) != c for c in m.group()) for m in _MIXED_WORD.finditer(t))
    if _INVISIBLE.search(t) or mixed:
        chars, origin = [], []
        for i, c in enumerate(t):
            if _INVISIBLE.match(c):
                continue
            chars.append(c.translate(_CONFUSABLE) if mixed else c)
            origin.append(i)
        folded = unicodedata.normalize("NFKC", "".join(chars)) if len(chars) == len(origin) else "".join(chars)
        if len(folded) == len(origin) and folded != t:
            out.append(View("unicode", folded, tuple(origin)))
            t_plain, o_plain = folded, tuple(origin)
        else:
            t_plain, o_plain = t, _identity(t)
    else:
        t_plain, o_plain = t, _identity(t)
    # leetspeak: digits/symbols standing for letters inside words
    leet = _LEET_TOKEN.findall(t_plain)
    if len(leet) >= 2 and sum(any(c.isdigit() for c in w) for w in leet) >= 2:
        folded = _LEET_TOKEN.sub(lambda m: m.group().translate(_LEET_MAP), t_plain)
        if len(folded) == len(t_plain) and _stop_share(folded) > _stop_share(t_plain):
            out.append(View("leetspeak", folded, o_plain))
    # s p a c e d - o u t letters
    if _SPACED.search(t_plain):
        chars, origin = [], []
        last = 0
        for m in _SPACED.finditer(t_plain):
            for i in range(last, m.start()):
                chars.append(t_plain[i])
                origin.append(o_plain[i])
            for i in range(m.start(), m.end()):
                if t_plain[i] not in " \u00a0":
                    chars.append(t_plain[i])
                    origin.append(o_plain[i])
            chars.append(" ")
            origin.append(o_plain[m.end() - 1])
            last = m.end()
        for i in range(last, len(t_plain)):
            chars.append(t_plain[i])
            origin.append(o_plain[i])
        out.append(View("spacing", "".join(chars), tuple(origin)))
    # ROT13 and reversed text: runs of words that read as common English only once
    # decoded (a payload is often one sentence inside ordinary prose)
    n_dec = 0
    for name, a, b in _decoded_runs(t_plain):
        chunk = t_plain[a:b]
        if name == "rot13":
            out.append(View(name, codecs.decode(chunk, "rot13"), tuple(o_plain[a:b])))
        else:
            out.append(View(name, chunk[::-1], tuple(reversed(o_plain[a:b]))))
        n_dec += 1
        if n_dec >= 8:
            break
    # base64 blobs that decode to readable text
    for m in _B64.finditer(t_plain):
        blob = m.group()
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if raw and sum(c.isprintable() or c.isspace() for c in raw) / len(raw) > 0.95 and _WORD.search(raw):
            s, e = o_plain[m.start()], o_plain[m.end() - 1] + 1
            out.append(View("base64", raw, tuple(s + min(int(i * (e - s) / max(1, len(raw))), e - s - 1) for i in range(len(raw)))))
        if len(out) > 8:
            break
    return out
