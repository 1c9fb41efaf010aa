"""Tokens, values and word statistics for the demonstrations detector.

Two views of a text:

- *tokens* (`tokenize`): words, numbers, runs of symbols, runs of invisible
  characters and single CJK characters, each with its span. Trigger candidates are
  n-grams over these.
- *values* (`values_in`, from the shared answer parser `promptguard.answers`):
  what a reasoning step computes with: numbers, dates, times, choice letters,
  labels, quoted strings, printed lists, yes/no. A backdoor step turns one value
  into another.

Everything here is pure Python and cheap; the only data file is the optional
word-piece vocabulary of the bundled embedding model, read once, used as a
"known word" list for the rarity signal.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from ...answers import Value, mentions, parse_answer, values_in

__all__ = [
    "STOPWORDS",
    "Token",
    "Value",
    "is_content",
    "is_plain_symbol",
    "known_word",
    "mentions",
    "norm_text",
    "parse_answer",
    "stem",
    "tokenize",
    "values_in",
    "word_numbers",
]

INVISIBLE = (
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\u180e\U000e0000-\U000e007f"
)
_TOKEN = re.compile(
    rf"(?P<invis>[{INVISIBLE}]+)"
    r"|(?P<latex>\\[A-Za-z]+)"
    r"|(?P<num>\d+(?:[.,]\d+)*)"
    r"|(?P<cjk>[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    rf"|(?P<sym>(?:[^\w\s\\{INVISIBLE}]|_)+|\\)"
)


class Token(NamedTuple):
    """A token and its span (a named tuple: tokenizing is the hot path)."""

    norm: str
    start: int
    end: int
    kind: str  # word | num | sym | invis | cjk | latex


def _norm_word(w: str) -> str:
    if w.isascii():
        return w.lower()
    return unicodedata.normalize("NFKC", w).casefold().replace("’", "'")


def tokenize(text: str, start: int = 0, end: int | None = None) -> list[Token]:
    """Tokens of text[start:end], spans relative to `text` (treat the list as read-only)."""
    if start == 0 and (end is None or end == len(text)) and len(text) <= 4096:
        return _tokenize_whole(text)
    return _tokenize(text, start, end)


@lru_cache(maxsize=4096)
def _tokenize_whole(text: str) -> list[Token]:
    return _tokenize(text, 0, None)


def _tokenize(text: str, start: int = 0, end: int | None = None) -> list[Token]:
    end = len(text) if end is None else end
    out: list[Token] = []
    append = out.append
    for m in _TOKEN.finditer(text, start, end):
        kind = m.lastgroup or "sym"
        s = m.group()
        if kind == "word" or kind == "cjk":
            norm = s.lower() if s.isascii() else _norm_word(s)
        elif kind == "num":
            norm = s.replace(",", "") if "," in s else s
        elif kind == "sym":
            norm = s if s.isascii() else unicodedata.normalize("NFKC", s)
        elif kind == "latex":
            norm = s
        else:
            norm = "".join(f"<U+{ord(c):04X}>" for c in s)
        a, b = m.span()
        append(Token(norm, a, b, kind))
    return out


def norm_text(text: str) -> str:
    """The light normalisation trigger matching uses: NFKC, case-folded, one space."""
    return " ".join(t.norm for t in tokenize(text))


STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    let let's lets us also may might must shall ok one two three many much per each every get got
    make makes made take takes thus therefore hence since we're it's that's there's what's don't
    isn't aren't wasn't weren't won't can't doesn't didn't i'm you're they're""".split()  # noqa: SIM905
)


_PLAIN = set(".,;:!?()[]{}'\"-–—…$%&*+/=<>^|\\~`#«»“”‘’¿¡")


_MARKUP = set("{}$\\()[]")
_PLAIN_RUNS = frozenset(("...", "?!", "!?", "?!?", "!!!", "->", "=>", "<-", "--", "**", ".,", ",.", "'.", ".'", "%.", "%,"))


@lru_cache(maxsize=4096)
def is_plain_symbol(s: str) -> bool:
    """Ordinary punctuation / math / markup, as opposed to an odd symbol run
    ('@_@', '≈≈≈', '::>', an emoji) that could be a trigger."""
    if not s or not all(c in _PLAIN for c in s):
        return False
    if len(s) <= 2 or len(set(s)) == 1 or any(c in _MARKUP for c in s):
        return True
    return s in _PLAIN_RUNS


def is_content(tok: Token) -> bool:
    return tok.kind in ("word", "cjk") and tok.norm not in STOPWORDS and (
        tok.kind == "cjk" or len(tok.norm) >= 2
    )


_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "ly", "s")


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A crude suffix-stripping stem, enough to match 'trees'/'tree', 'planted'/'plant'."""
    w = word.casefold()
    for suf in _SUFFIXES:
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


# -- rarity ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _vocab() -> frozenset[str]:
    """Whole-word entries of the embedding model's word-piece vocabulary (optional)."""
    try:
        from ...models import embedding_model_path

        path = embedding_model_path() / "vocab.txt"
        with open(path, encoding="utf-8") as f:
            return frozenset(
                w for w in (line.strip() for line in f) if w and not w.startswith(("##", "[")) and w.isalpha()
            )
    except Exception:  # noqa: BLE001 - the signal is optional
        return frozenset()


def known_word(word: str) -> bool | None:
    """Is `word` an ordinary word? None when no vocabulary is available."""
    v = _vocab()
    if not v or not word.isascii():
        return None  # the vocabulary is English word pieces: no verdict on other scripts
    w = word.casefold()
    return w in v or stem(w) in v or w.rstrip("s") in v


# -- values (the shared answer parser) ---------------------------------------------

_WORD_NUMBERS: dict[str, tuple[float, ...]] = {
    "zero": (0,), "one": (1,), "two": (2,), "three": (3,), "four": (4,), "five": (5,),
    "six": (6,), "seven": (7,), "eight": (8,), "nine": (9,), "ten": (10,), "eleven": (11,),
    "twelve": (12,), "thirteen": (13,), "fourteen": (14,), "fifteen": (15,), "sixteen": (16,),
    "seventeen": (17,), "eighteen": (18,), "nineteen": (19,), "twenty": (20,), "thirty": (30,),
    "forty": (40,), "fifty": (50,), "sixty": (60,), "seventy": (70,), "eighty": (80,),
    "ninety": (90,), "hundred": (100,), "thousand": (1000,), "million": (1000000,),
    "dozen": (12,), "twice": (2,), "double": (2,), "doubled": (2,), "triple": (3,),
    "tripled": (3,), "thrice": (3,), "half": (2, 0.5), "halved": (2, 0.5), "quarter": (4, 0.25),
    "third": (3,), "percent": (100,), "once": (1,), "pair": (2,), "couple": (2,),
    # units whose conversion constants a reasoning chain may use without stating them
    "week": (7,), "weeks": (7,), "weekly": (7,), "hour": (60, 24), "hours": (60, 24),
    "minute": (60,), "minutes": (60,), "second": (60,), "seconds": (60,), "day": (24, 7),
    "days": (24, 7), "daily": (24, 7), "year": (12, 365, 52), "years": (12, 365, 52),
    "month": (30, 12), "months": (30, 12), "monthly": (30, 12), "dozens": (12,), "gram": (1000,),
    "grams": (1000,), "kg": (1000,), "milligrams": (1000,), "mg": (1000,), "meter": (100, 1000),
    "meters": (100, 1000), "km": (1000,), "cm": (100,), "liter": (1000,), "liters": (1000,),
    "ml": (1000,), "feet": (12, 3), "foot": (12, 3), "inches": (12,), "yard": (3,), "yards": (3,),
    "percentage": (100,), "cents": (100,), "cent": (100,), "dollars": (100,),
}
_WORD_NUMBERS = {k: tuple(float(x) for x in v) for k, v in _WORD_NUMBERS.items()}


def word_numbers(text: str) -> set[float]:
    """Numbers a text names in words ('five', 'twice', 'half') or implies by a unit
    ('hours' → 60, 24)."""
    out: set[float] = set()
    for w in _ALPHA.findall(text.lower()):
        v = _WORD_NUMBERS.get(w)
        if v:
            out.update(v)
    return out


_ALPHA = re.compile(r"[a-z]+")



