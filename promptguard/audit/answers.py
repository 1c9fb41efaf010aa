"""Final-answer extraction and comparison.

`extract_answer(text)` reads the final answer out of a completion: a number (with
its unit), a choice letter, yes/no, a short string, or, failing those, the free
text itself. An explicit answer statement ("The answer is …", "Answer: …",
`\\boxed{…}`, "#### …") wins over anything else in the text. `expect` (inferred
from the demonstrations' own answers by `expected_kind`) steers what to look for.

`compare(a, b)` says `SAME`, `DIFFERENT` or `UNKNOWN` (one side has no answer):
numbers within a tolerance, letters and yes/no exactly, short strings after
normalisation, free text by embedding similarity (all-MiniLM-L6-v2, loaded once)
with a token-overlap fallback when the model is unavailable.
"""

from __future__ import annotations

import enum
import math
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = [
    "AnswerKind",
    "Answer",
    "Same",
    "extract_answer",
    "expected_kind",
    "compare",
    "TextSimilarity",
]


class AnswerKind(str, enum.Enum):
    NUMBER = "number"
    CHOICE = "choice"
    YESNO = "yesno"
    STRING = "string"
    TEXT = "text"
    NONE = "none"


class Same(str, enum.Enum):
    SAME = "same"
    DIFFERENT = "different"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    value: Any = None  # float | "B" | "yes" | normalised str | the text
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

# -- patterns ----------------------------------------------------------------------

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
_CHOICE = re.compile(r"^\s*\(?([A-Ha-h])\)(?:\s|$|[.,:;])|^\s*\(?([A-H])(?:\)|\.|:|,)?(?:\s|$)")
_CHOICE_ANYWHERE = re.compile(r"\(([A-H])\)|\boption\s+([A-H])\b|\b([A-H])\)", re.IGNORECASE)
_YESNO = re.compile(r"^\s*[\"'(*]*\s*(yes|no|true|false)\b", re.IGNORECASE)
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


def _typed(tail: str, expect: AnswerKind | None, explicit: bool, last_number: bool) -> Answer | None:
    """Read `tail` as an answer of kind `expect` (or the first kind that fits)."""
    kinds = [expect] if expect and expect not in (AnswerKind.TEXT, AnswerKind.STRING) else [
        AnswerKind.CHOICE, AnswerKind.YESNO, AnswerKind.NUMBER]
    for kind in kinds:
        if kind is AnswerKind.CHOICE:
            m = _CHOICE.match(tail)
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
            m = _YESNO.match(tail)
            if m:
                v = m.group(1).lower()
                return Answer(AnswerKind.YESNO, "yes" if v in ("yes", "true") else "no", tail,
                              explicit=explicit)
            if expect is AnswerKind.YESNO:
                ms = list(_YESNO_ANY.finditer(tail))
                if ms:
                    return Answer(AnswerKind.YESNO, ms[-1].group(1).lower(), tail, explicit=explicit)
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
                   *, truncated: bool = False) -> Answer:
    """The final answer in `text`.

    `truncated` (the completion hit its token limit): without an explicit answer
    statement, a cut-off text has no answer (its last number is an intermediate).
    """
    if expect is not None and not isinstance(expect, AnswerKind):
        expect = AnswerKind(expect)
    if text is None or not text.strip():
        return NONE
    text = _nfkc(text).strip()
    tail = _statement_tail(text)
    if tail is not None:
        a = _typed(tail, expect, explicit=True, last_number=False)
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
        a = _typed(text, expect, explicit=False, last_number=True)
        if a is not None:
            return a
        if words:
            return Answer(AnswerKind.STRING, " ".join(words), text)
        return NONE
    if expect in (AnswerKind.NUMBER, AnswerKind.CHOICE, AnswerKind.YESNO):
        a = _typed(text, expect, explicit=False, last_number=True)
        if a is not None:
            return a
    elif expect is None:
        # reasoning without a statement: a leading yes/no is the answer...
        a = _typed(text, AnswerKind.YESNO, explicit=False, last_number=True)
        if a is not None and _YESNO.match(text):
            return a
    return Answer(AnswerKind.TEXT, text, text)


def expected_kind(answers: Iterable[str | None], query: str = "") -> AnswerKind | None:
    """The answer kind most demonstrations use (None when they disagree or there are none).

    A query offering lettered choices expects a choice."""
    if re.search(r"(?:^|\s)\(?[A-E]\)\s*\S", query) and re.search(r"\(?B\)", query):
        return AnswerKind.CHOICE
    kinds: dict[AnswerKind, int] = {}
    n = 0
    for a in answers:
        if not a:
            continue
        n += 1
        k = extract_answer(a).kind
        kinds[k] = kinds.get(k, 0) + 1
    if not n:
        return None
    kind, count = max(kinds.items(), key=lambda kv: kv[1])
    if count * 2 > n and kind in (AnswerKind.NUMBER, AnswerKind.CHOICE, AnswerKind.YESNO):
        return kind
    return None


# -- comparison --------------------------------------------------------------------


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
                        from ..embeddings import get_embedder

                        emb = get_embedder()
                        cls._model = lambda texts: emb.embed(list(texts))
                    except ImportError:
                        try:
                            from sentence_transformers import SentenceTransformer

                            from ..models import embedding_model_path

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
    if a.kind in (AnswerKind.CHOICE, AnswerKind.YESNO) or b.kind in (AnswerKind.CHOICE, AnswerKind.YESNO):
        return Same.SAME if (a.kind, a.value) == (b.kind, b.value) else Same.DIFFERENT
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


__all__ += ["answers_of", "NONE"]
