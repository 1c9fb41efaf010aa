"""Features the hardened head reads: two views of a prompt's segments.

*text view* (every input segment, window by window: lines, long lines cut at
sentence ends, so an instruction planted in a long document is scored on its own
and a document's length tells nothing): each window is first canonicalised — NFKC,
invisible characters dropped, Cyrillic/Greek look-alikes folded inside
mixed-script words, spaced-out letters joined, leetspeak words folded, base64
blobs and ROT13 lines decoded and appended — so that an obfuscated instruction
shows the same words as a plain one. Features: hashed word uni/bigrams of the
canonical text (also conditioned on the segment kind, so "reply only with" in a
retrieved document can weigh differently from the same words in a system
prompt), and a few dense statistics (how much canonicalisation changed, URLs,
second-person address, invisible characters, ...).

*demonstration view* (each worked example, read against its siblings and the
query): dense relational features (extra final step, numbers the last step
brings from nowhere, an n-gram of the question echoed at the start of a step,
a question tail shared with siblings or with the query, an answer outside the
offered choices, a conclusion that contradicts an earlier step) plus the
`demonstrations` detector's own signals and scores when that detector is
installed, and hashed *shapes* of the last step and of the question's edges
(numbers become `0`, symbol runs `SYM`), which carry over to triggers never seen.

Nothing here loads a model. `FEATURE_VERSION` changes whenever the meaning of a
column changes; artifacts record it and refuse to load on a mismatch.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import math
import re
import unicodedata
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..segments import Segment, SegmentKind

__all__ = [
    "FEATURE_VERSION",
    "TEXT_HASH_DIM",
    "DEMO_HASH_DIM",
    "canonicalize",
    "Featurizer",
    "PromptFeatures",
]

FEATURE_VERSION = 5
TEXT_HASH_DIM = 1 << 13
DEMO_HASH_DIM = 1 << 11

_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\u180e\U000e0000-\U000e007f]")
_CONF = {
    "а": "a", "с": "c", "е": "e", "і": "i", "о": "o", "р": "p", "х": "x", "у": "y", "ѕ": "s", "ј": "j", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ӏ": "l", "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "К": "K", "М": "M", "О": "O",
    "Р": "P", "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "α": "a", "ο": "o", "ν": "v", "ρ": "p", "τ": "t",
    "υ": "u", "ι": "i", "κ": "k", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}
_LEET = {"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"}
_SPACED = re.compile(r"(?<!\S)(?:\S[ .\-_·]){2,}\S(?!\S)")
_B64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_UNIT = re.compile(r"[\d.,]+(?:st|nd|rd|th|mg|ml|kg|km|cm|mm|g|m|h|s|x|k|am|pm|l|min|hz|gb|mb|kb|px|pt|em|d|y)", re.IGNORECASE)
_LEETISH = re.compile(r"[\w@$]*[013457@$][\w@$]*")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"\w+", re.UNICODE)
_COMMON = frozenset(
    "the a an and or of to in on at for with by from is are was were be been it this that these those as "
    "so then there here what which who how many much if not no yes do does did has have had can will would "
    "should could each every all any some more most one two three four five six seven eight nine ten".split()
)
_SECOND = frozenset("you your yours yourself du dich dein deine tu toi ton ta tes vous votre vos usted tú".split())
_ENGLISH = frozenset("the and to of a in is you that for it with on as are this be your not or have".split())


# -- canonicalisation ------------------------------------------------------------------


@dataclass
class CanonStats:
    invisible: int = 0
    confusable: int = 0
    mixed_words: int = 0
    spaced_runs: int = 0
    leet_words: int = 0
    b64_decoded: int = 0
    rot13_lines: int = 0
    changed: float = 0.0


def _script(ch: str) -> str:
    if ch.isascii():
        return "L" if ch.isalpha() else ""
    if not ch.isalpha():
        return ""
    name = unicodedata.name(ch, "")
    for s in ("LATIN", "CYRILLIC", "GREEK"):
        if name.startswith(s):
            return s[0]
    return "O"


def _fold_word(w: str, st: CanonStats) -> str:
    scripts = {_script(c) for c in w} - {""}
    if len(scripts) > 1 and "L" in scripts:
        st.mixed_words += 1
        out = []
        for c in w:
            if c in _CONF:
                st.confusable += 1
                out.append(_CONF[c])
            else:
                out.append(c)
        return "".join(out)
    if scripts and scripts <= {"C", "G"} and all(c in _CONF or not c.isalpha() for c in w) and len(w) >= 3:
        # a whole word of look-alikes ("рау") written to pass as Latin
        st.confusable += len(w)
        return "".join(_CONF.get(c, c) for c in w)
    return w


def _englishness(text: str) -> float:
    ws = [w.lower() for w in _WORD.findall(text)]
    return sum(w in _ENGLISH for w in ws) / max(1, len(ws))


def canonicalize(text: str) -> tuple[str, CanonStats]:
    st = CanonStats()
    raw = text
    t = _INVISIBLE.sub("", text)
    st.invisible = len(text) - len(t)
    if not t.isascii():
        t = "".join(c for c in t if unicodedata.category(c) != "Cf")
        t = unicodedata.normalize("NFKC", t)
        t = re.sub(r"\S+", lambda m: _fold_word(m.group(), st), t)

    extra: list[str] = []
    for m in _B64.finditer(t):
        blob = m.group()
        if blob.isalpha() or blob.isdigit():
            continue
        try:
            dec = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        printable = sum(c.isprintable() for c in dec) / max(1, len(dec))
        if printable > 0.95 and len(dec) >= 8 and re.search(r"[A-Za-z]{3}", dec):
            st.b64_decoded += 1
            extra.append(dec)

    def join_spaced(m: re.Match[str]) -> str:
        st.spaced_runs += 1
        return re.sub(r"(?<=\S)[ .\-_·](?=\S)", "", m.group())

    t = _SPACED.sub(join_spaced, t)
    t = re.sub(r" {3,}", " ", t)

    def unleet(m: re.Match[str]) -> str:
        w = m.group()
        letters = sum(c.isalpha() for c in w)
        leet = sum(c in _LEET for c in w)
        if letters >= 1 and leet >= 1 and len(w) >= 3 and not _UNIT.fullmatch(w) \
                and not re.fullmatch(r"[a-zA-Z]+\d+", w) and not w.startswith(("http", "$")):
            st.leet_words += 1
            return "".join(_LEET.get(c, c) for c in w)
        return w

    t = _LEETISH.sub(unleet, t)
    for line in re.split(r"[\n.:;!?]\s*", t):
        if len(line) < 15 or not re.search(r"[A-Za-z]{3}", line):
            continue
        rot = codecs.decode(line, "rot13")
        if _englishness(rot) >= _englishness(line) + 0.15:
            st.rot13_lines += 1
            extra.append(rot)
    if extra:
        t = t + "\n" + "\n".join(extra)
    st.changed = 1.0 - (_overlap(raw, t) if raw else 1.0)
    return t, st


def _overlap(a: str, b: str) -> float:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wb:
        return 1.0
    return len(wa & wb) / len(wb)


# -- hashing ---------------------------------------------------------------------------


_HCACHE: dict[tuple[str, int], tuple[int, float]] = {}


def _h(token: str, dim: int) -> tuple[int, float]:
    key = (token, dim)
    hit = _HCACHE.get(key)
    if hit is not None:
        return hit
    v = zlib.crc32(token.encode("utf-8", "surrogatepass"))
    out = (v % dim, (1.0 if (v >> 31) & 1 else -1.0))
    if len(_HCACHE) > 500_000:
        _HCACHE.clear()
    _HCACHE[key] = out
    return out


def _hash_counts(tokens: Sequence[str], dim: int) -> dict[int, float]:
    acc: dict[int, float] = {}
    for tok in tokens:
        i, s = _h(tok, dim)
        acc[i] = acc.get(i, 0.0) + s
    out = {}
    for i, v in acc.items():
        if v:
            out[i] = math.copysign(1.0 + math.log(abs(v)), v)
    norm = math.sqrt(sum(v * v for v in out.values())) or 1.0
    return {i: v / norm for i, v in out.items()}


def _norm_tok(w: str) -> str:
    if _NUMBER.fullmatch(w):
        return "0"
    return w.lower()


def shape(tok: str) -> str:
    """A trigger-agnostic shape: numbers `0`/`0.0`, symbol runs `SYM<n>`, non-ASCII `NA`."""
    if _NUMBER.fullmatch(tok):
        return "0.0" if "." in tok else "0"
    if not tok.isascii():
        return "NA" if any(c.isalpha() for c in tok) else f"NASYM{min(len(tok), 4)}"
    if tok.isalpha():
        return tok.lower() if len(tok) <= 15 else "LONGWORD"
    if not any(c.isalnum() for c in tok):
        return f"SYM{min(len(tok), 4)}"
    return "MIX"


def _toks(text: str) -> list[str]:
    return [t.strip(".,;:!?\"'()[]") or t for t in text.split()]


# -- the featurizer ----------------------------------------------------------------------

_KINDS = (SegmentKind.INSTRUCTION, SegmentKind.CONTEXT, SegmentKind.QUERY, SegmentKind.EXAMPLE, SegmentKind.DEMONSTRATION)
# Dense features describe the *payload* (obfuscation, second-person address), never the carrier:
# length, non-ASCII share, URLs, addresses, table/code shape and position separate synthetic payloads
# from synthetic documents but not real injections from real documents (a head that had them flagged
# a third of real benign e-mails, tables and code, and most non-English text).
TEXT_DENSE = ("invisible", "mixed_words", "confusable", "spaced", "leet", "b64", "rot13",
              "second_person", "changed") + tuple(f"kind_{k.value}" for k in _KINDS)
MAX_WINDOW = 400
MAX_WINDOWS = 300
_SENT_END = re.compile(r"(?<=[.!?])\s+")


def windows(text: str, max_len: int = MAX_WINDOW) -> list[tuple[int, int]]:
    """Lines, long lines cut at sentence ends (and hard at `max_len`), blank ones skipped."""
    out: list[tuple[int, int]] = []
    for m in re.finditer(r"[^\n]+", text):
        s, e = m.span()
        line = m.group()
        lead = len(line) - len(line.lstrip())
        s += lead
        e = s + len(line.strip())
        if e <= s:
            continue
        if e - s <= 120:
            out.append((s, e))
            continue
        pos = s
        for mm in _SENT_END.finditer(text, s, e):
            if mm.start() - pos >= 20:
                out.append((pos, mm.start()))
                pos = mm.end()
        while e - pos > max_len:
            cut = text.rfind(" ", pos + max_len // 2, pos + max_len)
            cut = cut if cut > pos else pos + max_len
            out.append((pos, cut))
            pos = cut + (1 if text[cut:cut + 1] == " " else 0)
        if e > pos:
            out.append((pos, e))
        if len(out) >= MAX_WINDOWS:
            break
    return out[:MAX_WINDOWS]
DEMO_OWN = ("steps_vs_siblings", "novel_operands", "last_has_eq", "echo_last", "echo_any",
            "tail_len", "tail_shared", "tail_in_query", "shared_with_query", "q_non_ascii", "invisible",
            "answer_more_decimals", "not_in_choices", "candidate_conflict", "len_z", "last_grounding",
            "answer_in_prior_steps", "n_demos")
DEMO_DET = ("det_score", "det_step", "det_trigger", "det_prompt", "det_active")


def _demo_signal_names() -> tuple[str, ...]:
    try:
        from ..detectors.demonstrations.scoring import DEMO_FEATURES, STEP_FEATURES, TRIGGER_FEATURES
    except Exception:  # noqa: BLE001 - the demonstrations detector is optional
        return ()
    return tuple(dict.fromkeys(STEP_FEATURES + TRIGGER_FEATURES + DEMO_FEATURES))


@dataclass
class PromptFeatures:
    """Sparse rows for one prompt: text view for every window of every input
    segment, demo view for each demonstration. `text_keys` / `demo_keys` say which
    segment each row is; `text_spans` where the window sits in the segment text."""

    text_rows: list[dict[int, float]]
    text_keys: list[tuple[SegmentKind, int]]
    demo_rows: list[dict[int, float]]
    demo_keys: list[tuple[SegmentKind, int]]
    text_spans: list[tuple[int, int]] = field(default_factory=list)


class Featurizer:
    """Turns a prompt's segments into sparse feature rows (see the module doc)."""

    def __init__(self, demo_signals: Sequence[str] | None = None, use_demonstrations: bool = True) -> None:
        self.use_demonstrations = use_demonstrations
        self.demo_signals = tuple(demo_signals) if demo_signals is not None else (
            _demo_signal_names() if use_demonstrations else ())
        self.text_dim = len(TEXT_DENSE) + TEXT_HASH_DIM
        self.demo_dense = DEMO_OWN + DEMO_DET + tuple(f"sig_{n}" for n in self.demo_signals)
        self.demo_dim = len(self.demo_dense) + DEMO_HASH_DIM
        self._text_cache: dict[tuple[Any, ...], dict[int, float]] = {}

    def describe(self) -> dict[str, Any]:
        return {"feature_version": FEATURE_VERSION, "text_dense": list(TEXT_DENSE), "text_hash_dim": TEXT_HASH_DIM,
                "demo_dense": list(self.demo_dense), "demo_hash_dim": DEMO_HASH_DIM,
                "demo_signals": list(self.demo_signals), "use_demonstrations": self.use_demonstrations}

    # -- text view -------------------------------------------------------------------
    def text_windows(self, seg: Segment) -> list[tuple[tuple[int, int], dict[int, float]]]:
        """(span, row) for each window of the segment."""
        tool = (seg.source or "").startswith("tool")
        out = []
        for i, (a, b) in enumerate(windows(seg.text)):
            key = (seg.kind, tool, i == 0, seg.text[a:b])
            hit = self._text_cache.get(key)
            if hit is None:
                hit = self._window_row(seg.text[a:b], seg.kind, tool, i == 0)
                if len(self._text_cache) > 50_000:
                    self._text_cache.clear()
                self._text_cache[key] = hit
            out.append(((a, b), hit))
        return out

    def _window_row(self, text: str, kind: SegmentKind, tool: bool, first: bool) -> dict[int, float]:
        canon, st = canonicalize(text)
        low = canon.lower()
        words = [_norm_tok(w) for w in _WORD.findall(low)]
        n = max(1, len(words))
        dense = [
            math.log1p(st.invisible),
            math.log1p(st.mixed_words),
            math.log1p(st.confusable),
            math.log1p(st.spaced_runs),
            math.log1p(st.leet_words),
            float(min(st.b64_decoded, 3)),
            float(min(st.rot13_lines, 3)),
            min(1.0, 5 * sum(w in _SECOND for w in words) / n),
            st.changed,
        ] + [1.0 if kind is k else 0.0 for k in _KINDS]
        toks = [f"u:{w}" for w in words] + [f"b:{a}_{b}" for a, b in zip(words, words[1:])]
        kp = kind.value[:3]
        toks += [f"k{kp}:{w}" for w in words]
        # a request's own first line vs. text further down (pasted data, documents)
        pp = "p0" if first else "p1"
        toks += [f"{pp}{kp}:{w}" for w in words]
        row = {i: v for i, v in enumerate(dense) if v}
        off = len(TEXT_DENSE)
        for i, v in _hash_counts(toks, TEXT_HASH_DIM).items():
            row[off + i] = row.get(off + i, 0.0) + v
        return row

    # -- demonstration view -------------------------------------------------------------
    def demo_rows(self, segments: Sequence[Segment]) -> tuple[list[dict[int, float]], list[tuple[SegmentKind, int]]]:
        demos = [s for s in segments if s.kind is SegmentKind.DEMONSTRATION]
        if not demos:
            return [], []
        queries = [s for s in segments if s.kind is SegmentKind.QUERY]
        qtext = " ".join(q.text for q in queries)
        qtoks = set(t.lower() for t in _toks(qtext))
        report = None
        if self.use_demonstrations:
            try:
                from ..detectors.demonstrations import analyze_demonstrations

                report = analyze_demonstrations(segments)
            except Exception:  # noqa: BLE001 - features degrade to our own
                report = None
        infos = [_demo_info(d) for d in demos]
        steps_counts = [len(i["steps"]) for i in infos]
        lens = [len(d.text) for d in demos]
        med_steps = float(np.median(steps_counts))
        mu, sd = float(np.mean(lens)), float(np.std(lens)) or 1.0
        rows, keys = [], []
        for j, (seg, info) in enumerate(zip(demos, infos)):
            sib = [x for k, x in enumerate(infos) if k != j]
            own = _demo_own(info, sib, qtoks, qtext)
            own["steps_vs_siblings"] = max(-3.0, min(3.0, len(info["steps"]) - med_steps)) / 3
            own["len_z"] = max(-3.0, min(3.0, (len(seg.text) - mu) / sd)) / 3
            own["n_demos"] = math.log1p(len(demos)) / 3
            det = {k: 0.0 for k in DEMO_DET}
            sigs: dict[str, float] = {}
            if report is not None:
                v = report.demo(seg.index)
                det["det_prompt"] = float(report.score)
                det["det_active"] = 1.0 if report.active is not None else 0.0
                if v is not None:
                    det["det_score"] = float(v.score)
                    det["det_step"] = float(getattr(v, "step_score", 0.0))
                    det["det_trigger"] = float(getattr(v, "trigger_score", 0.0))
                    sigs = {k: float(x) for k, x in (v.signals or {}).items() if isinstance(x, (int, float))}
            dense = [own.get(k, 0.0) for k in DEMO_OWN] + [det[k] for k in DEMO_DET] + [
                max(-5.0, min(5.0, sigs.get(n, 0.0))) for n in self.demo_signals]
            row = {i: float(v) for i, v in enumerate(dense) if v}
            off = len(self.demo_dense)
            for i, v in _hash_counts(_demo_hash_tokens(info, qtoks), DEMO_HASH_DIM).items():
                row[off + i] = row.get(off + i, 0.0) + v
            rows.append(row)
            keys.append((seg.kind, seg.index))
        return rows, keys

    def prompt(self, segments: Sequence[Segment]) -> PromptFeatures:
        tr, tk, ts = [], [], []
        for s in segments:
            if s.kind is SegmentKind.ANSWER or not s.text.strip():
                continue
            for span, row in self.text_windows(s):
                tr.append(row)
                tk.append((s.kind, s.index))
                ts.append(span)
        dr, dk = self.demo_rows(segments)
        return PromptFeatures(tr, tk, dr, dk, ts)


# -- demonstration helpers ----------------------------------------------------------------

_QMARK = re.compile(r"^\s*(?:Question|Q|Problem|Input)\s*[:：]\s*", re.IGNORECASE)


def _demo_info(seg: Segment) -> dict[str, Any]:
    q = seg.question
    q = _QMARK.sub("", q)
    q_main = re.split(r"\s*\b(?:Answer Choices|Choices|Options)\s*[:：]", q, maxsplit=1, flags=re.IGNORECASE)
    choices_text = q_main[1] if len(q_main) > 1 else ""
    q_line = q_main[0].strip()
    letters = set(re.findall(r"\(([A-Za-z])\)", choices_text))
    cut = max(q_line.rfind("?"), -1)
    tail = q_line[cut + 1:].strip() if cut >= 0 else ""
    steps = [s.strip() for s in seg.steps if s.strip()]
    ans = (seg.answer or "").strip()
    m = re.search(r"answer\s+is\s*[:：]?\s*(.+)$|^(?:A|Answer)\s*[:：]\s*(.+)$", ans, re.IGNORECASE)
    ans_val = ((m.group(1) or m.group(2)) if m else ans).strip().rstrip(".").strip()
    return {"q": q_line, "tail": tail, "letters": letters, "choices": choices_text, "steps": steps, "answer": ans_val}


def _nums(text: str) -> list[str]:
    return [n.replace(",", "").lstrip("+") for n in _NUMBER.findall(text)]


def _numset(text: str) -> set[float]:
    out = set()
    for n in _nums(text):
        try:
            out.add(round(float(n), 4))
        except ValueError:
            pass
    return out


def _ngrams(tokens: list[str], nmax: int = 4) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for n in range(1, nmax + 1) for i in range(len(tokens) - n + 1)}


def _demo_own(info: dict[str, Any], sib: list[dict[str, Any]], qtoks: set[str], qtext: str) -> dict[str, float]:
    f: dict[str, float] = {}
    steps = info["steps"]
    q = info["q"]
    last = steps[-1] if steps else ""
    prior = " ".join([q] + steps[:-1])
    prior_nums = _numset(prior)
    last_nums = _nums(last)
    novel = 0
    for k, n in enumerate(last_nums):
        try:
            v = round(float(n), 4)
        except ValueError:
            continue
        is_result = k == len(last_nums) - 1
        if v not in prior_nums and not is_result:
            novel += 1
    f["novel_operands"] = min(novel, 3) / 3
    f["last_has_eq"] = 1.0 if "=" in last else 0.0
    qt = [t.lower() for t in _toks(q)]
    qgrams = {g for g in _ngrams(qt) if not all(w in _COMMON or _NUMBER.fullmatch(w) for w in g)}

    def echo(step: str) -> bool:
        st = [t.lower() for t in _toks(step)]
        return any(tuple(st[:n]) in qgrams for n in range(1, 5) if len(st) >= n)

    f["echo_last"] = 1.0 if last and echo(last) else 0.0
    f["echo_any"] = 1.0 if any(echo(s) for s in steps) else 0.0
    tail = info["tail"]
    f["tail_len"] = min(len(tail.split()), 10) / 10
    if tail and sib:
        f["tail_shared"] = sum(1 for s in sib if s["tail"] == tail) / len(sib)
    f["tail_in_query"] = 1.0 if tail and tail.lower() in qtext.lower() else 0.0
    if sib and qtoks:
        best = 0.0
        sib_grams = [_ngrams([t.lower() for t in _toks(s["q"])]) for s in sib]
        for g in qgrams:
            if not all(w in qtoks for w in g):
                continue
            share = sum(1 for sg in sib_grams if g in sg) / len(sib)
            if 0 < share < 1:
                best = max(best, share)
        f["shared_with_query"] = best
    f["q_non_ascii"] = sum(not c.isascii() for c in q) / max(1, len(q))
    f["invisible"] = math.log1p(len(_INVISIBLE.findall(q + " ".join(steps))))
    ans = info["answer"]
    adec = len(ans.split(".")[1]) if re.fullmatch(r"[-+]?\d+\.\d+", ans) else 0
    pdec = max((len(n.split(".")[1]) for n in _nums(prior) if "." in n), default=0)
    f["answer_more_decimals"] = 1.0 if adec > pdec else 0.0
    letters = info["letters"]
    am = re.fullmatch(r"\(?([A-Za-z])\)?", ans)
    f["not_in_choices"] = 1.0 if letters and am and am.group(1).upper() not in {x.upper() for x in letters} else 0.0
    cands = {"yes", "no", "positive", "negative", "true", "false"} | {f"({x.lower()})" for x in letters}
    al = ans.lower()
    earlier = " ".join(steps[:-1]).lower()
    if al in cands or (am and letters):
        key = f"({am.group(1).lower()})" if am and letters else al
        others = [c for c in cands if c != key and re.search(r"(?<!\w)" + re.escape(c) + r"(?!\w)", earlier)]
        f["candidate_conflict"] = 1.0 if others and key not in earlier else 0.0
    content = [t.lower() for t in _toks(last) if t.isalpha() and t.lower() not in _COMMON and len(t) > 2]
    if content:
        pw = set(t.lower() for t in _toks(prior))
        f["last_grounding"] = 1.0 - sum(w in pw for w in content) / len(content)
    f["answer_in_prior_steps"] = 1.0 if ans and ans.lower() in earlier else 0.0
    return f


def _demo_hash_tokens(info: dict[str, Any], qtoks: set[str]) -> list[str]:
    steps = info["steps"]
    last = steps[-1] if steps else ""
    ls = [shape(t) for t in last.split()]
    toks = [f"ls:{s}" for s in ls] + [f"lb:{a}_{b}" for a, b in zip(ls, ls[1:])]
    toks += [f"lf:{'_'.join(ls[:2])}"]
    tail = [shape(t) for t in info["tail"].split()][:6]
    toks += [f"qt:{s}" for s in tail] + [f"qtl:{len(tail)}"]
    qh = [shape(t) for t in info["q"].split()[:2]]
    toks += [f"qh:{'_'.join(qh)}"]
    shared = [shape(t) for t in _toks(info["q"]) if t.lower() in qtoks and t.lower() not in _COMMON
              and not t.isalpha()]
    toks += [f"qx:{s}" for s in shared[:6]]
    return toks
