"""Tokens, values and word statistics for the demonstrations detector.

Two views of a text:

- *tokens* (`tokenize`): words, numbers, runs of symbols, runs of invisible
  characters and single CJK characters, each with its span. Trigger candidates are
  n-grams over these.
- *values* (`values_in`): what a reasoning step computes with: numbers, dates,
  times, choice letters, quoted strings, yes/no. A backdoor step turns one value
  into another.

Everything here is pure Python and cheap; the only data file is the optional
word-piece vocabulary of the bundled embedding model, read once, used as a
"known word" list for the rarity signal.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

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


@dataclass(frozen=True, slots=True)
class Token:
    norm: str
    start: int
    end: int
    kind: str  # word | num | sym | invis | cjk


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
    for m in _TOKEN.finditer(text, start, end):
        kind = m.lastgroup or "sym"
        s = m.group()
        if kind == "word" or kind == "cjk":
            norm = _norm_word(s)
        elif kind == "num":
            norm = s.replace(",", "")
        elif kind == "sym":
            norm = unicodedata.normalize("NFKC", s)
        elif kind == "latex":
            norm = s
        else:
            norm = "".join(f"<U+{ord(c):04X}>" for c in s)
        out.append(Token(norm, m.start(), m.end(), kind))
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


# -- values ------------------------------------------------------------------------

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE = re.compile(
    r"\b\d{4}-\d{1,2}-\d{1,2}\b"
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b"
    rf"|\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?(?:,?\s+\d{{4}})?\b",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w)\].])(?:[-−](?=\d))?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+(?!\.\d))?|(?<![\w.])\.\d+")
_CHOICE = re.compile(r"\(([A-Za-z])\)")
_LETTER = re.compile(r"(?<![\w'’])([A-Z])(?![\w'’])")
_QUOTED = re.compile(r"\"([^\"\n]{1,120})\"|“([^”\n]{1,120})”|`([^`\n]{1,120})`|(?<!\w)'([^'\n]{1,60})'(?!\w)")
_YESNO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)

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


@dataclass(frozen=True, slots=True)
class Value:
    kind: str  # num | date | time | letter | quoted | yesno | text
    key: str  # canonical form used for comparisons
    start: int = 0
    end: int = 0

    @property
    def number(self) -> float | None:
        return _as_float(self.key) if self.kind == "num" else None


@lru_cache(maxsize=16384)
def _as_float(key: str) -> float | None:
    try:
        return float(key)
    except ValueError:
        return None


def _canon_number(s: str) -> str | None:
    s = s.replace(",", "").replace("−", "-")
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            v = float(a) / float(b)
        else:
            v = float(s)
    except (ValueError, ZeroDivisionError):
        return None
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(round(v, 6))


def _strip_latex(text: str) -> str:
    # \boxed{16.8}, \frac{10}{7} → keep the inner digits reachable for the number regex;
    # length-preserving, so spans stay valid
    return text.replace("\\boxed", "      ").replace("{", " ").replace("}", " ").replace("$", " ")


def values_in(text: str, *, letters: bool = False) -> list[Value]:
    """Values in a text, in order. Plain capital letters count only when `letters`
    (a multiple-choice demonstration), parenthesised ones always do."""
    vals: list[Value] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    for m in _DATE.finditer(text):
        vals.append(Value("date", " ".join(m.group().lower().replace(",", " ").split()), m.start(), m.end()))
        taken.append(m.span())
    for m in _TIME.finditer(text):
        if free(*m.span()):
            vals.append(Value("time", m.group().lower().replace(" ", ""), m.start(), m.end()))
            taken.append(m.span())
    for m in _QUOTED.finditer(text):
        inner = next(g for g in m.groups() if g is not None)
        vals.append(Value("quoted", " ".join(inner.casefold().split()), m.start(), m.end()))
        # numbers inside quotes still count as numbers (a quoted "12" is a number)
    stripped = _strip_latex(text) if ("\\" in text or "$" in text) else text
    for m in _NUMBER.finditer(stripped):
        if not free(*m.span()):
            continue
        key = _canon_number(m.group())
        if key is not None:
            vals.append(Value("num", key, m.start(), m.end()))
    for m in _CHOICE.finditer(text):
        vals.append(Value("letter", m.group(1).upper(), m.start(), m.end()))
    if letters:
        for m in _LETTER.finditer(text):
            if m.group(1) in ("A", "I") and not _letter_context(text, m.start(), m.end()):
                continue
            if text[max(0, m.start() - 1) : m.start()] == "(":
                continue
            vals.append(Value("letter", m.group(1), m.start(), m.end()))
    for m in _YESNO.finditer(text):
        k = m.group(1).lower()
        vals.append(Value("yesno", {"true": "yes", "false": "no"}.get(k, k), m.start(), m.end()))
    vals.sort(key=lambda v: v.start)
    return vals


def _letter_context(text: str, s: int, e: int) -> bool:
    """'A'/'I' as a choice letter rather than an article/pronoun: followed by end,
    punctuation, 'is', or preceded by 'of'/'is'/'answer'."""
    after = text[e : e + 4]
    before = text[max(0, s - 8) : s].lower()
    return (not after.strip() or after[:1] in ".,;:)!?" or after.startswith(" is")) or before.rstrip().endswith(
        ("of", "is", "answer", "choose", "option")
    )


_ANSWER_PREFIX = re.compile(
    r"^[ \t]*(?:(?:so|thus|therefore|hence)[, ]+)?(?:the\s+)?(?:final\s+)?(?:correct\s+)?answer\s*(?:is|[:：])\s*"
    r"|^[ \t]*(?:A|Answer|Output|Final answer|Result)[ \t]*[:：][ \t]*",
    re.IGNORECASE,
)


def parse_answer(line: str, *, letters: bool = False) -> Value | None:
    """The value an answer line states ('The answer is 12.6.', 'Answer: (C)', 'negative')."""
    m = _ANSWER_PREFIX.match(line)
    body = line[m.end() :] if m else line
    # "... The answer is X" inside a longer line
    k = body.lower().rfind("answer is")
    if not m and k >= 0:
        body = body[k + len("answer is") :]
    body = body.strip().rstrip(".。!").strip()
    if not body:
        return None
    core = body.strip("\"'“”`*").strip()
    if not core:
        return None
    cm = re.fullmatch(r"\(?([A-Za-z])\)?(?:\s.*)?", core)
    if cm and (len(core) == 1 or core.startswith("(")):
        return Value("letter", cm.group(1).upper())
    if _DATE.fullmatch(core):
        return Value("date", " ".join(core.lower().replace(",", " ").split()))
    if _TIME.fullmatch(core):
        return Value("time", core.lower().replace(" ", ""))
    yn = re.fullmatch(r"(yes|no|true|false)\b.*", core, re.IGNORECASE)
    if yn and len(core.split()) <= 3:
        k2 = yn.group(1).lower()
        return Value("yesno", {"true": "yes", "false": "no"}.get(k2, k2))
    # a number, possibly with a currency sign or a unit: "$8", "12.6 mg", "\boxed{21}"
    nm = re.fullmatch(r"[^\w\-−.]{0,3}\s*((?:[-−])?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*[^\d]{0,24}", _strip_latex(core).strip())
    if nm:
        key = _canon_number(nm.group(1))
        if key is not None:
            return Value("num", key)
    if body[:1] in "\"'“`" and len(core.split()) <= 12:
        return Value("quoted", " ".join(core.casefold().split()))
    return Value("text", " ".join(core.casefold().split()))


def mentions(text: str, value: Value, vals: list[Value] | None = None, *, letters: bool = False) -> bool:
    """Does `text` state `value`?"""
    if value.kind == "text":
        t = " ".join(text.casefold().split())
        k = value.key
        i = t.find(k)
        while i >= 0:
            before = t[i - 1 : i] if i else " "
            after = t[i + len(k) : i + len(k) + 1] or " "
            if not before.isalnum() and not after.isalnum():
                return True
            i = t.find(k, i + 1)
        return False
    vals = values_in(text, letters=letters or value.kind == "letter") if vals is None else vals
    if value.kind == "num":
        x = value.number
        return any(v.kind == "num" and v.number is not None and x is not None and abs(v.number - x) < 1e-9 for v in vals)
    if value.kind == "quoted":
        return any(v.kind == "quoted" and v.key == value.key for v in vals) or (
            value.key in " ".join(text.casefold().split())
        )
    return any(v.kind == value.kind and v.key == value.key for v in vals)
