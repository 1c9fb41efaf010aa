"""Answers, typed and comparable: what a worked example or a completion concludes.

One parser, shared by the demonstrations detector (the answer a demonstration states
against the value its reasoning had reached) and the answer audit (the original
answer against the re-asked ones), so that "the same answer" means one thing in both.

Answer types (`AnswerKind`): numbers (with a unit), option letters, yes/no (and
true/false), dates, clock times, labels (one of a small closed set: sentiment,
topic, weekday …), short strings, code output (a printed list), and free text.
Each value has a canonical *key*: `2024-03-05` for "March 5, 2024" and "2024-03-05",
`17:15` for "5:15 pm", `B` for "(B)", `yes` for "True", `[1,2,3]` for "[1, 2, 3]".

Two levels:

- in a text, with spans: `values_in(text)` → `Value`s (kind, key, start, end), and
  `parse_answer(line)` for the answer line of a demonstration; `mentions`, `same_value`;
- for a completion: `extract_answer(text, expect)` → `Answer` (an explicit answer
  statement — "The answer is …", "Answer: …", `\\boxed{…}`, "#### …" — wins over
  anything else), `expected_kind(demo_answers, query)`, `answer_labels(demo_answers)`
  and `compare(a, b)` → `SAME` / `DIFFERENT` / `UNKNOWN` (numbers within a tolerance,
  typed values by key, short strings after normalisation, free text by embedding
  similarity with all-MiniLM-L6-v2, loaded once, or token overlap when it is missing).
"""

from __future__ import annotations

import enum
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

__all__ = [
    "NONE",
    "WEEKDAYS",
    "Answer",
    "AnswerKind",
    "Same",
    "TextSimilarity",
    "Value",
    "answer_labels",
    "answers_of",
    "canonical_date",
    "canonical_time",
    "compare",
    "expected_kind",
    "extract_answer",
    "labels_of",
    "mentions",
    "parse_answer",
    "same_value",
    "values_in",
]


class AnswerKind(str, enum.Enum):
    NUMBER = "number"
    CHOICE = "choice"
    YESNO = "yesno"
    DATE = "date"
    TIME = "time"
    LABEL = "label"
    STRING = "string"
    CODE = "code"  # code output that is not a number, string or boolean: a printed list
    TEXT = "text"
    NONE = "none"


class Same(str, enum.Enum):
    SAME = "same"
    DIFFERENT = "different"
    UNKNOWN = "unknown"


# -- canonical forms --------------------------------------------------------------------------

_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december")
_MONTH_NUM = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)} | {
    m[:3]: i + 1 for i, m in enumerate(_MONTH_NAMES)} | {"sept": 9}
_MONTHS = "|".join(sorted(_MONTH_NUM, key=len, reverse=True))
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_DATE = re.compile(
    r"\b(?P<iso>\d{4}-\d{1,2}-\d{1,2})\b"
    r"|\b(?P<us>\d{1,2}/\d{1,2}/\d{2,4})\b"
    rf"|\b(?P<md>(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?)\b"
    rf"|\b(?P<dm>\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?(?:,?\s+\d{{4}})?)\b",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([ap])\.?m\b\.?)?", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


def canonical_date(s: str) -> str | None:
    """`YYYY-MM-DD` (`XXXX-MM-DD` without a year) for a date written as ISO, M/D/Y, or
    with a month name; None when `s` is not one date."""
    m = _DATE.fullmatch(s.strip())
    if m is None:
        return None
    return _date_key(m)


def _date_key(m: re.Match) -> str | None:
    g = m.lastgroup
    t = m.group().lower()
    if g == "iso":
        y, mo, d = (int(x) for x in t.split("-"))
    elif g == "us":
        a, b, c = t.split("/")
        mo, d, y = int(a), int(b), int(c)
        if y < 100:
            y += 2000 if y < 50 else 1900
    else:
        name = next(k for k in sorted(_MONTH_NUM, key=len, reverse=True) if re.search(rf"\b{k}\b", t))
        mo = _MONTH_NUM[name]
        nums = [int(x) for x in _DIGITS.findall(t)]
        d = nums[0]
        y = nums[1] if len(nums) > 1 else None
        if y is None:
            return f"XXXX-{mo:02d}-{d:02d}" if 1 <= d <= 31 else None
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{mo:02d}-{d:02d}"


def canonical_time(s: str) -> str | None:
    """`HH:MM` (24-hour; `HH:MM:SS` with seconds) for "5:15 pm", "17:15", "9:05am"."""
    m = _TIME.fullmatch(s.strip())
    return _time_key(m) if m else None


def _time_key(m: re.Match) -> str | None:
    h, mi = int(m.group(1)), int(m.group(2))
    ap = (m.group(4) or "").lower()
    if ap:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if ap == "p" else 0)
    if h > 24 or mi > 59:
        return None
    sec = f":{int(m.group(3)):02d}" if m.group(3) else ""
    return f"{h:02d}:{mi:02d}{sec}"


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


def _canon_list(inner: str) -> str:
    """`[1,2,'a']`: items stripped, strings in single quotes, numbers canonical."""
    items: list[str] = []
    buf: list[str] = []
    quote = ""
    quoted = False
    for ch in inner + ",":
        if quote:
            if ch == quote:
                quote = ""
            else:
                buf.append(ch)
        elif ch in "'\"":
            quote, quoted = ch, True
        elif ch == ",":
            raw = "".join(buf).strip()
            if quoted:
                items.append(f"'{''.join(buf).strip() if not raw else raw}'")
            elif raw:
                items.append(_canon_number(raw) or raw)
            buf, quoted = [], False
        else:
            buf.append(ch)
    return "[" + ",".join(items) + "]"


def _norm_words(s: str) -> str:
    return " ".join(s.casefold().split())


# -- values in a text (with spans) ---------------------------------------------------------------


class Value(NamedTuple):
    """A typed value in a text: ``num | letter | yesno | date | time | label | quoted |
    list | text`` (quoted = a short string, list = printed code output). A named
    tuple: reasoning lines are scanned for values on the hot path."""

    kind: str
    key: str  # canonical form used for comparisons
    start: int = 0
    end: int = 0

    @property
    def number(self) -> float | None:
        return _as_float(self.key) if self.kind == "num" else None

    @property
    def answer_kind(self) -> AnswerKind:
        return VALUE_KINDS[self.kind]


VALUE_KINDS = {"num": AnswerKind.NUMBER, "letter": AnswerKind.CHOICE, "yesno": AnswerKind.YESNO,
               "date": AnswerKind.DATE, "time": AnswerKind.TIME, "label": AnswerKind.LABEL,
               "quoted": AnswerKind.STRING, "list": AnswerKind.CODE, "text": AnswerKind.TEXT}


@lru_cache(maxsize=16384)
def _as_float(key: str) -> float | None:
    try:
        return float(key)
    except ValueError:
        return None


_NUMBER = re.compile(r"(?<![\w)\].])(?:[-−](?=\d))?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+(?!\.\d))?|(?<![\w.])\.\d+")
_CHOICE = re.compile(r"\(([A-Za-z])\)")
_LETTER = re.compile(r"(?<![\w'’])([A-Z])(?![\w'’])")
_QUOTED = re.compile(r"\"([^\"\n]{1,120})\"|“([^”\n]{1,120})”|`([^`\n]{1,120})`|(?<!\w)'([^'\n]{1,60})'(?!\w)")
_YESNO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_LIST = re.compile(r"\[([^\[\]\n]{0,200})\]")
_WORD_AFTER = re.compile(r"[ \t]+[^\W\d_]")
_ANY_DIGIT = re.compile(r"\d")
_START = itemgetter(2)  # Value.start
_ANY_QUOTE = re.compile(r"[\"'`“]")


_WORD = re.compile(r"(?<![\w-])[^\W\d_]+(?:[-'][^\W\d_]+)*(?![\w-])")


def _label_spans(text: str, labels: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """(start, end, label) of each label a text names, as whole words (one- and
    two-word labels; no pattern is compiled per label set)."""
    if not labels:
        return []
    folded = text.casefold()
    if not any(x in folded for x in labels):
        return []
    one = {x for x in labels if " " not in x}
    two = {x for x in labels if " " in x}
    words = [(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(text)]
    out = []
    i = 0
    while i < len(words):
        s, e, w = words[i]
        if two and i + 1 < len(words) and f"{w} {words[i + 1][2]}" in two and text[e : words[i + 1][0]].isspace():
            out.append((s, words[i + 1][1], f"{w} {words[i + 1][2]}"))
            i += 2
            continue
        if w in one:
            out.append((s, e, w))
        i += 1
    return out


def _strip_latex(text: str) -> str:
    # \boxed{16.8}, \frac{10}{7} → keep the inner digits reachable for the number regex;
    # length-preserving, so spans stay valid
    return text.replace("\\boxed", "      ").replace("{", " ").replace("}", " ").replace("$", " ")


def values_in(text: str, *, letters: bool = False, labels: tuple[str, ...] = ()) -> list[Value]:
    """Values in a text, in order. Plain capital letters count only when `letters`
    (a multiple-choice demonstration), parenthesised ones always do; label values only
    for the given (case-folded) label set."""
    vals: list[Value] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    digits = _ANY_DIGIT.search(text) is not None
    if digits:
        for m in _DATE.finditer(text):
            key = _date_key(m)
            if key is not None:
                vals.append(Value("date", key, m.start(), m.end()))
                taken.append(m.span())
        if ":" in text:
            for m in _TIME.finditer(text):
                if free(*m.span()):
                    key = _time_key(m)
                    if key is not None:
                        vals.append(Value("time", key, m.start(), m.end()))
                        taken.append(m.span())
    if "[" in text:
        for m in _LIST.finditer(text):
            if "," in m.group(1) or m.group(1).strip():
                vals.append(Value("list", _canon_list(m.group(1)), m.start(), m.end()))
    if _ANY_QUOTE.search(text):
        for m in _QUOTED.finditer(text):
            inner = next(g for g in m.groups() if g is not None)
            # case kept: 'abc' and 'ABC' are different strings
            vals.append(Value("quoted", " ".join(inner.split()), m.start(), m.end()))
            # numbers inside quotes still count as numbers (a quoted "12" is a number)
    if digits:
        stripped = _strip_latex(text) if ("\\" in text or "$" in text) else text
        for m in _NUMBER.finditer(stripped):
            if taken and not free(*m.span()):
                continue
            key = _canon_number(m.group())
            if key is not None:
                vals.append(Value("num", key, m.start(), m.end()))
    if "(" in text:
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
        if k == "no" and _WORD_AFTER.match(text, m.end()):
            continue  # "no prime divides it": a determiner, not a verdict
        vals.append(Value("yesno", {"true": "yes", "false": "no"}.get(k, k), m.start(), m.end()))
    for s0, e0, lab in _label_spans(text, labels):
        if free(s0, e0):
            vals.append(Value("label", lab, s0, e0))
    vals.sort(key=_START)
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
_NUM_ANSWER = re.compile(r"[^\w\-−.]{0,3}\s*((?:[-−])?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*[^\d]{0,24}")


def parse_answer(line: str, *, letters: bool = False, labels: Iterable[str] = ()) -> Value | None:
    """The value an answer line states ('The answer is 12.6.', 'Answer: (C)', 'negative',
    'March 5, 2024', '[1, 2, 3]'); `labels`: the task's closed label set, if any."""
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
    dm = _DATE.fullmatch(core)
    if dm and (key := _date_key(dm)):
        return Value("date", key)
    tm = _TIME.fullmatch(core)
    if tm and (key := _time_key(tm)):
        return Value("time", key)
    yn = re.fullmatch(r"(yes|no|true|false)\b.*", core, re.IGNORECASE)
    if yn and len(core.split()) <= 3:
        k2 = yn.group(1).lower()
        return Value("yesno", {"true": "yes", "false": "no"}.get(k2, k2))
    if core.startswith("[") and core.endswith("]"):
        return Value("list", _canon_list(core[1:-1]))
    # a number, possibly with a currency sign or a unit: "$8", "12.6 mg", "\boxed{21}"
    nm = _NUM_ANSWER.fullmatch(_strip_latex(core).strip())
    if nm:
        key = _canon_number(nm.group(1))
        if key is not None:
            return Value("num", key)
    folded = _norm_words(core)
    if folded in WEEKDAYS or folded in {x.casefold() for x in labels}:
        return Value("label", folded)
    if body[:1] in "\"'“`" and len(core.split()) <= 12:
        return Value("quoted", " ".join(core.split()))
    # free text keeps its case: "PLNT" is not "plnt" (see `mentions`)
    return Value("text", " ".join(core.split()))


def mentions(text: str, value: Value, vals: list[Value] | None = None, *, letters: bool = False) -> bool:
    """Does `text` state `value`?"""
    if value.kind in ("text", "label"):
        # case matters only for a value written in capitals ("PLNT", an upper-cased string)
        strict = value.kind == "text" and sum(1 for c in value.key if c.isupper()) >= 2
        t = " ".join(text.split()) if strict else " ".join(text.casefold().split())
        k = value.key if strict else value.key.casefold()
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
        if any(v.kind == "quoted" and v.key == value.key for v in vals):
            return True
        k = value.key
        i = text.find(k)
        while i >= 0:  # the string unquoted, as a whole word
            before = text[i - 1 : i] if i else " "
            after = text[i + len(k) : i + len(k) + 1] or " "
            if not (before.isalnum() or before in "-_") and not (after.isalnum() or after in "-_"):
                return True
            i = text.find(k, i + 1)
        return False
    return any(v.kind == value.kind and v.key == value.key for v in vals)


def same_value(a: Value, b: Value) -> bool:
    """Same kind and key (numbers within 1e-9)."""
    if a.kind != b.kind:
        return False
    if a.kind == "num":
        x, y = a.number, b.number
        return x is not None and y is not None and abs(x - y) < 1e-9
    return a.key == b.key


# -- the answer of a completion -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    value: Any = None  # float | "B" | "yes" | "2024-03-05" | "17:15" | normalised str | the text
    raw: str = ""  # the part of the completion the answer was read from
    unit: str | None = None
    explicit: bool = False  # came from an answer statement

    @property
    def ok(self) -> bool:
        return self.kind is not AnswerKind.NONE

    def show(self) -> str:
        if self.kind is AnswerKind.NONE:
            return "<no answer>"
        if self.kind is AnswerKind.NUMBER:
            v = self.value
            s = str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"
            return f"{s} {self.unit}" if self.unit else s
        if self.kind is AnswerKind.TEXT:
            return self.raw[:120]
        return str(self.value)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind.value, "value": self.show()}
        if self.unit:
            d["unit"] = self.unit
        return d


NONE = Answer(AnswerKind.NONE)

_STATEMENT = re.compile(
    r"(?:the\s+)?(?:final\s+|correct\s+|right\s+)?answer\s*(?:is|would\s+be|will\s+be|=)\s*[:：]?\s*"
    r"|(?:^|\n)[ \t]*(?:final\s+)?answer\s*[:：]\s*"
    r"|(?:^|\n)[ \t]*####\s*",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUM = re.compile(
    r"(?<![\w.])(?P<sign>[-−+])?\s?(?P<cur>[$€£¥])?\s?"
    r"(?P<n>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+)"
    r"(?:\s?(?P<pct>%|percent\b))?"
    r"(?:\s?(?P<unit>[A-Za-z]{1,15}\b))?"
)
_FRAC_LATEX = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")
_CHOICE_START = re.compile(r"^\s*\(?([A-Ha-h])\)(?:\s|$|[.,:;])|^\s*\(?([A-H])(?:\)|\.|:|,)?(?:\s|$)")
_CHOICE_ANYWHERE = re.compile(r"\(([A-H])\)|\boption\s+([A-H])\b|\b([A-H])\)", re.IGNORECASE)
_YESNO_START = re.compile(r"^\s*[\"'(*]*\s*(yes|no|true|false)\b", re.IGNORECASE)
_YESNO_ANY = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_UNIT_STOP = {
    "and", "or", "the", "a", "an", "of", "in", "on", "at", "to", "for", "is", "are", "was", "so",
    "then", "because", "since", "which", "that", "this", "it", "he", "she", "they", "we", "you",
    "i", "per", "each", "more", "less", "than", "as", "by", "with", "from", "left", "total",
    "altogether", "now", "if", "but", "x", "times", "plus", "minus",
}
_ANSWER_END = re.compile(r"(?<!\d)\.(?:\s|$)|\n")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def _norm_string(s: str) -> str:
    s = _nfkc(s).casefold().strip()
    s = re.sub(r"[\"'“”‘’`*_]", "", s)
    s = _ARTICLES.sub(" ", s)
    s = re.sub(r"[^\w\s]", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def _to_float(m: re.Match) -> float | None:
    n = m.group("n").replace(",", "")
    try:
        if "/" in n:
            a, b = n.split("/")
            v = float(a) / float(b)
        else:
            v = float(n)
    except (ValueError, ZeroDivisionError):
        return None
    if m.group("sign") in ("-", "−"):
        v = -v
    return v


def _number(text: str, last: bool) -> Answer | None:
    text = _FRAC_LATEX.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
    matches = [m for m in _NUM.finditer(text) if _to_float(m) is not None]
    if not matches:
        return None
    m = matches[-1] if last else matches[0]
    unit = m.group("unit")
    if unit and unit.lower() in _UNIT_STOP:
        unit = None
    if m.group("pct"):
        unit = "%"
    elif m.group("cur"):
        unit = m.group("cur")
    return Answer(AnswerKind.NUMBER, _to_float(m), m.group(0).strip(), unit=unit)


def _statement_tail(text: str) -> str | None:
    """The text after the last answer statement, up to the end of its sentence."""
    boxed = list(_BOXED.finditer(text))
    stmts = list(_STATEMENT.finditer(text))
    cands: list[tuple[int, str]] = []
    if stmts:
        m = stmts[-1]
        rest = text[m.end():]
        e = _ANSWER_END.search(rest)
        cands.append((m.start(), rest[: e.start()] if e else rest))
    if boxed:
        cands.append((boxed[-1].start(), boxed[-1].group(1)))
    if not cands:
        return None
    tail = max(cands, key=lambda c: c[0])[1].strip()
    tail = _BOXED.sub(lambda m: m.group(1), tail)
    return tail.strip(" \t*:") or None


def _find_last(pattern: re.Pattern[str], text: str, key) -> tuple[str, str] | None:
    """(key, raw) of the last match of `pattern` in `text` whose key is not None."""
    out = None
    for m in pattern.finditer(text):
        k = key(m)
        if k is not None:
            out = (k, m.group())
    return out


# dates and times: read the same way, each with its pattern and canonical key
_CLOCK = {AnswerKind.DATE: (_DATE, _date_key), AnswerKind.TIME: (_TIME, _time_key)}
_DEFAULT_KINDS = (AnswerKind.CHOICE, AnswerKind.YESNO, AnswerKind.DATE, AnswerKind.TIME, AnswerKind.CODE,
                  AnswerKind.NUMBER)


def _typed(tail: str, expect: AnswerKind | None, explicit: bool, last_number: bool,
           labels: Sequence[str] = ()) -> Answer | None:
    """Read `tail` as an answer of kind `expect` (or the first kind that fits)."""
    kinds = [expect] if expect and expect not in (AnswerKind.TEXT, AnswerKind.STRING) else list(_DEFAULT_KINDS)
    if labels and AnswerKind.LABEL not in kinds:
        kinds.insert(0, AnswerKind.LABEL)
    whole = not explicit and len(tail.split()) <= 3  # a bare short answer: the value is all of it
    for kind in kinds:
        if kind is AnswerKind.CHOICE:
            m = _CHOICE_START.match(tail)
            if m and expect is None and m.group(2) and len(tail.split()) > 1:
                m = None  # "A dog" is not choice A unless choices are expected
            if m:
                return Answer(AnswerKind.CHOICE, (m.group(1) or m.group(2)).upper(), tail, explicit=explicit)
            if expect is AnswerKind.CHOICE:
                ms = list(_CHOICE_ANYWHERE.finditer(tail))
                if ms:
                    g = next(x for x in ms[-1].groups() if x)
                    return Answer(AnswerKind.CHOICE, g.upper(), tail, explicit=explicit)
        elif kind is AnswerKind.YESNO:
            m = _YESNO_START.match(tail)
            if m:
                v = m.group(1).lower()
                return Answer(AnswerKind.YESNO, "yes" if v in ("yes", "true") else "no", tail,
                              explicit=explicit)
            if expect is AnswerKind.YESNO:
                ms = list(_YESNO_ANY.finditer(tail))
                if ms:
                    return Answer(AnswerKind.YESNO, ms[-1].group(1).lower(), tail, explicit=explicit)
        elif kind in _CLOCK:
            pattern, key = _CLOCK[kind]
            if expect is kind:  # expected: the last one anywhere in the text
                if got := _find_last(pattern, tail, key):
                    return Answer(kind, got[0], got[1], explicit=explicit)
            elif (explicit or whole) and (m := pattern.match(tail.strip())) and (k := key(m)):
                return Answer(kind, k, m.group(), explicit=explicit)
        elif kind is AnswerKind.CODE:
            s = tail.strip().strip("`").strip()
            if s.startswith("[") and s.endswith("]"):
                return Answer(AnswerKind.CODE, _canon_list(s[1:-1]), s, explicit=explicit)
            if expect is AnswerKind.CODE and (got := _find_last(_LIST, tail, lambda m: _canon_list(m.group(1)))):
                return Answer(AnswerKind.CODE, got[0], got[1], explicit=explicit)
        elif kind is AnswerKind.LABEL:
            spans = _label_spans(tail, tuple(_norm_words(x) for x in labels))
            if spans:
                return Answer(AnswerKind.LABEL, spans[-1][2], tail, explicit=explicit)
            if expect is AnswerKind.LABEL and not labels:
                s = _norm_string(tail)
                if s and len(s.split()) <= 3:
                    return Answer(AnswerKind.LABEL, s, tail, explicit=explicit)
        elif kind is AnswerKind.NUMBER:
            if explicit and "=" in tail:  # "The answer is 2.1 * 8 = 16.8": the result
                tail = tail.rsplit("=", 1)[1]
            a = _number(tail, last=last_number)
            if a is not None:
                if expect is None and explicit and len(_norm_string(tail).split()) > 6:
                    continue  # a sentence that happens to hold a number: not a numeric answer
                return Answer(AnswerKind.NUMBER, a.value, a.raw, unit=a.unit, explicit=explicit)
    return None


def extract_answer(text: str | None, expect: AnswerKind | str | None = None,
                   *, truncated: bool = False, labels: Sequence[str] = ()) -> Answer:
    """The final answer in `text`.

    `expect` steers what to look for (see `expected_kind`); `labels`, a task's closed
    label set (see `answer_labels`), lets a label be found in a sentence. `truncated`
    (the completion hit its token limit): without an explicit answer statement, a
    cut-off text has no answer (its last number is an intermediate).
    """
    if expect is not None and not isinstance(expect, AnswerKind):
        expect = AnswerKind(expect)
    if text is None or not text.strip():
        return NONE
    text = _nfkc(text).strip()
    tail = _statement_tail(text)
    if tail is not None:
        a = _typed(tail, expect, explicit=True, last_number=False, labels=labels)
        if a is not None:
            return a
        s = _norm_string(tail)
        if s:
            kind = AnswerKind.STRING if len(s.split()) <= 8 else AnswerKind.TEXT
            return Answer(kind, s if kind is AnswerKind.STRING else tail, tail, explicit=True)
    if truncated:
        return NONE
    words = _norm_string(text).split()
    if len(words) <= 6:  # a bare short answer: "B", "yes", "42 apples", "Paris"
        a = _typed(text, expect, explicit=False, last_number=True, labels=labels)
        if a is not None:
            return a
        if words:
            return Answer(AnswerKind.STRING, " ".join(words), text)
        return NONE
    if expect in (AnswerKind.NUMBER, AnswerKind.CHOICE, AnswerKind.YESNO, AnswerKind.DATE, AnswerKind.TIME,
                  AnswerKind.CODE) or labels:
        a = _typed(text, expect, explicit=False, last_number=True, labels=labels)
        if a is not None:
            return a
    elif expect is None:
        # reasoning without a statement: a leading yes/no is the answer...
        a = _typed(text, AnswerKind.YESNO, explicit=False, last_number=True)
        if a is not None and _YESNO_START.match(text):
            return a
    return Answer(AnswerKind.TEXT, text, text)


_TYPED_KINDS = (AnswerKind.NUMBER, AnswerKind.CHOICE, AnswerKind.YESNO, AnswerKind.DATE, AnswerKind.TIME,
                AnswerKind.CODE)


def expected_kind(answers: Iterable[str | None], query: str = "") -> AnswerKind | None:
    """The answer kind most demonstrations use (None when they disagree or there are none).

    A query offering lettered choices expects a choice; short answers drawn from a small
    set that several demonstrations share (see `answer_labels`) are labels."""
    if re.search(r"(?:^|\s)\(?[A-E]\)\s*\S", query) and re.search(r"\(?B\)", query):
        return AnswerKind.CHOICE
    answers = [a for a in answers if a]
    kinds: dict[AnswerKind, int] = {}
    for a in answers:
        k = extract_answer(a).kind
        kinds[k] = kinds.get(k, 0) + 1
    if not answers:
        return None
    kind, count = max(kinds.items(), key=lambda kv: kv[1])
    if count * 2 > len(answers) and kind in _TYPED_KINDS:
        return kind
    if answer_labels(answers):
        return AnswerKind.LABEL
    return None


def answer_labels(answers: Iterable[str | None]) -> tuple[str, ...]:
    """The closed label set the demonstrations answer from ("positive"/"negative",
    weekdays …), or () when their answers do not look like labels: short (one or two
    words), not numbers/letters/yes-no/dates, and fewer distinct values than answers
    (one word repeated by three or more demonstrations counts too)."""
    return labels_of([parse_answer(a) if a else None for a in answers])


def labels_of(values: Iterable[Value | None]) -> tuple[str, ...]:
    """`answer_labels` for answers already parsed (None: a demonstration without one)."""
    vals = []
    for v in values:
        if v is None:
            continue
        if v.kind == "label":
            vals.append(v.key)
        elif v.kind in ("text", "quoted") and 1 <= len(v.key.split()) <= 2 and len(v.key) <= 24:
            vals.append(v.key.casefold())
        else:
            return ()
    distinct = sorted(set(vals))
    if len(vals) >= 3 and len(distinct) < len(vals) and (len(distinct) >= 2 or len(vals[0].split()) == 1):
        return tuple(distinct)
    if distinct and all(v in WEEKDAYS for v in distinct):
        return WEEKDAYS
    return ()


# -- comparison --------------------------------------------------------------------------------


class TextSimilarity:
    """Cosine similarity of free-text answers with the bundled sentence embedder,
    loaded once; token-overlap (Jaccard) when it cannot load."""

    _model: Any = None
    _failed: str | None = None
    _lock = threading.Lock()

    @classmethod
    def _load(cls) -> Any:
        if cls._model is None and cls._failed is None:
            with cls._lock:
                if cls._model is None and cls._failed is None:
                    try:  # the process-wide embedder the detectors share, when present
                        from .embeddings import get_embedder

                        emb = get_embedder()
                        cls._model = lambda texts: emb.embed(list(texts))
                    except ImportError:
                        try:
                            from sentence_transformers import SentenceTransformer

                            from .models import embedding_model_path

                            st = SentenceTransformer(str(embedding_model_path()), device="cpu")
                            cls._model = lambda texts: st.encode(
                                list(texts), normalize_embeddings=True, convert_to_numpy=True)
                        except Exception as e:  # noqa: BLE001 - fall back, say why
                            cls._failed = f"{type(e).__name__}: {e}"
                    except Exception as e:  # noqa: BLE001
                        cls._failed = f"{type(e).__name__}: {e}"
        return cls._model

    @classmethod
    def similarity(cls, a: str, b: str) -> tuple[float, str]:
        model = cls._load()
        if model is not None:
            try:
                emb = model([a, b])
                return float((emb[0] * emb[1]).sum()), "embedding"
            except Exception as e:  # noqa: BLE001 - a broken model must not break the audit
                cls._model, cls._failed = None, f"{type(e).__name__}: {e}"
        ta, tb = set(_norm_string(a).split()), set(_norm_string(b).split())
        if not ta and not tb:
            return 1.0, "tokens"
        return len(ta & tb) / max(1, len(ta | tb)), "tokens"


_KEYED = (AnswerKind.CHOICE, AnswerKind.YESNO, AnswerKind.DATE, AnswerKind.TIME, AnswerKind.CODE, AnswerKind.LABEL)


def compare(a: Answer, b: Answer, *, rel_tol: float = 1e-4, abs_tol: float = 1e-6,
            text_threshold: float = 0.9, token_threshold: float = 0.6) -> Same:
    if not a.ok or not b.ok:
        return Same.UNKNOWN
    if a.kind is AnswerKind.NUMBER and b.kind is AnswerKind.NUMBER:
        x, y = float(a.value), float(b.value)
        if math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol):
            return Same.SAME
        # 25% vs 0.25
        if (a.unit == "%") != (b.unit == "%"):
            x, y = (x / 100, y) if a.unit == "%" else (x, y / 100)
            if math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol):
                return Same.SAME
        return Same.DIFFERENT
    if a.kind is b.kind and a.kind in _KEYED:
        return Same.SAME if a.value == b.value else Same.DIFFERENT
    if a.kind in (AnswerKind.CHOICE, AnswerKind.YESNO) or b.kind in (AnswerKind.CHOICE, AnswerKind.YESNO):
        return Same.DIFFERENT
    if {a.kind, b.kind} <= {AnswerKind.LABEL, AnswerKind.STRING}:
        # a label read as a short string on one side ("negative" vs the label negative)
        return Same.SAME if _norm_string(str(a.value)) == _norm_string(str(b.value)) else Same.DIFFERENT
    if a.kind in _KEYED and b.kind in _KEYED:
        return Same.DIFFERENT  # a date against a time, a list against a label
    if AnswerKind.NUMBER in (a.kind, b.kind):
        # "5 apples" vs "five apples" style mismatches: compare the strings
        sa, sb = _norm_string(a.raw), _norm_string(b.raw)
        return Same.SAME if sa == sb else Same.DIFFERENT
    if a.kind is AnswerKind.STRING and b.kind is AnswerKind.STRING:
        if a.value == b.value:
            return Same.SAME
        ta, tb = set(str(a.value).split()), set(str(b.value).split())
        overlap = len(ta & tb) / max(1, len(ta | tb))
        return Same.SAME if overlap >= 0.75 else Same.DIFFERENT
    # free text on at least one side
    sim, how = TextSimilarity.similarity(a.raw, b.raw)
    return Same.SAME if sim >= (text_threshold if how == "embedding" else token_threshold) else Same.DIFFERENT


def answers_of(texts: Sequence[str]) -> list[Answer]:  # convenience for benchmarks
    return [extract_answer(t) for t in texts]
