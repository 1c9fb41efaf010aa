"""Answers that leak: URLs that carry data out, and answers that repeat the system prompt.

An injected instruction rarely needs the model to *say* anything harmful. It only needs
the answer to contain a URL that something loads on its own: a markdown image or an
`<img>` that the chat UI renders (a zero-click request to the attacker's host with the
conversation in its query string), or a URL in a tool call that an agent fetches. A
link costs the attacker one click; a bare URL the same where the UI links it. So this
detector reads ANSWER segments (model output, tool-call arguments included) and reports:

- `PG-OUT-IMG`  an auto-loading reference (markdown image, `<img>`, `<iframe>`, ...,
  or a URL in a tool call's arguments) to a host outside `allowed_hosts`. With data in
  the URL (a query string, a fragment, or a path segment that looks encoded) it is an
  exfiltration attempt (score 0.95, the default policy removes it); without data it is
  an external load worth a flag (0.55).
- `PG-OUT-LINK` a link or bare URL to a host outside `allowed_hosts` whose URL carries a
  value that looks like data: text from the conversation, a secret-looking token (e-mail,
  card number, SSN, API key), or a long encoded blob (0.85); ordinary query strings
  (`?q=python`) stay below the flag threshold (0.4) so search links don't raise alarms.
- `PG-OUT-LEAK` the answer reproduces a long span of the request's instruction (system
  prompt): at least `leak_min_words` consecutive words (default 20), or half of it.

The instruction, and any query/context segments, travel with the answer segments only
as reference text for the data and leak checks (`reads_reference`: the faces pass the
request's segments as the guard's `reference`, which no other detector sees); they are
not themselves checked here.
Partial answers work (streaming): an image whose markup is not closed yet is judged on
the URL so far, so a stream is cut before the closing `)` makes it render.

Options (policy `detectors: exfiltration: {...}`): `allowed_hosts` (host globs, e.g.
`["*.example.com"]`; relative URLs and `data:` URIs never leave the page), `leak_min_words`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

from ..findings import Finding
from ..sanitize import Edit
from ..segments import Segment, SegmentKind

__all__ = ["ExfiltrationDetector", "UrlRef", "find_urls"]

NAME = "exfiltration"

# -- where URLs sit in an answer ------------------------------------------------------------
_URL = r"(?:https?:)?//[^\s<>\"'`)\]]*"
# ![alt](url "title") — the closing paren may not have arrived yet in a stream
_MD_IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]{0,500})\]\(\s*<?(?P<url>" + _URL + r")>?(?:\s+\"[^\"\n]*\")?\s*(?P<close>\))?")
_MD_LINK = re.compile(r"(?<!!)\[(?P<alt>[^\]\n]{0,500})\]\(\s*<?(?P<url>" + _URL + r")>?(?:\s+\"[^\"\n]*\")?\s*(?P<close>\))?")
# reference-style: ![alt][ref] ... [ref]: url
_MD_REF_DEF = re.compile(r"^[ \t]{0,3}\[(?P<ref>[^\]\n]+)\]:[ \t]*<?(?P<url>" + _URL + r")>?", re.M)
_MD_REF_IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]{0,500})\]\[(?P<ref>[^\]\n]*)\]")
# HTML elements that load on their own, and anchors
_HTML_LOADING = re.compile(
    r"<(?P<tag>img|iframe|script|video|audio|source|embed|object|link|input|image|track|frame)\b[^>]*?"
    r"\b(?P<attr>src|srcset|data|href|poster|background)\s*=\s*(?P<q>[\"']?)(?P<url>" + _URL + r")",
    re.I)
_HTML_ANCHOR = re.compile(r"<a\b[^>]*?\bhref\s*=\s*(?P<q>[\"']?)(?P<url>" + _URL + r")", re.I)
_CSS_URL = re.compile(r"url\(\s*[\"']?(?P<url>" + _URL + r")", re.I)
_BARE = re.compile(r"(?<![/\w])(?P<url>https?://[^\s<>\"'`)\]]+)")

# -- what looks like data ---------------------------------------------------------------------
_SECRETS = [
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),                   # e-mail
    re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),                          # US SSN
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),                         # card-like number
    re.compile(r"\b(?:sk|pk|rk|ghp|gho|xox[abp]|AKIA)[-_A-Za-z0-9]{12,}"),  # API keys/tokens
    re.compile(r"\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[:=]", re.I),
]
_ENCODED = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}|(?:%[0-9A-Fa-f]{2}[^%]{0,3}){6,}|[0-9a-fA-F]{32,}")
_WORD = re.compile(r"[^\W_]+", re.U)


@dataclass(frozen=True)
class UrlRef:
    """One URL in an answer: where it sits, how it gets loaded, and the markup around it
    (`start`/`end`), which is what sanitizing removes."""

    url: str
    how: str          # "image" (loads on its own) | "link" (needs a click) | "tool" (an agent fetches it)
    start: int
    end: int
    url_start: int
    alt: str = ""
    closed: bool = True

    @property
    def host(self) -> str:
        try:
            return (urlsplit(self.url if "://" in self.url else "http:" + self.url).hostname or "").lower()
        except ValueError:  # a malformed URL (bad port, brackets): judged by its text
            m = re.match(r"(?:https?:)?//([^/:?#]+)", self.url)
            return (m.group(1) if m else "").lower()


def find_urls(text: str, *, tool: bool = False) -> list[UrlRef]:
    """Every URL in `text`, with how it would be loaded; overlaps keep the first
    (an image inside a link counts as an image)."""
    found: list[UrlRef] = []
    taken: list[tuple[int, int]] = []

    def add(ref: UrlRef) -> None:
        if any(s <= ref.url_start < e for s, e in taken):
            return
        found.append(ref)
        taken.append((ref.url_start, ref.url_start + len(ref.url)))

    for m in _MD_IMAGE.finditer(text):
        add(UrlRef(m["url"], "image", m.start(), m.end(), m.start("url"), m["alt"], m["close"] is not None))
    refs = {m["ref"].strip().lower(): m for m in _MD_REF_DEF.finditer(text)}
    for m in _MD_REF_IMAGE.finditer(text):
        d = refs.get((m["ref"] or m["alt"]).strip().lower())
        if d is not None:
            add(UrlRef(d["url"], "image", d.start(), d.end(), d.start("url"), m["alt"]))
    for m in _HTML_LOADING.finditer(text):
        end = text.find(">", m.end())
        add(UrlRef(m["url"], "image", m.start(), end + 1 if end >= 0 else len(text), m.start("url"),
                   closed=end >= 0))
    for m in _CSS_URL.finditer(text):
        add(UrlRef(m["url"], "image", m.start("url"), m.end("url"), m.start("url")))
    for m in _MD_LINK.finditer(text):
        add(UrlRef(m["url"], "link", m.start(), m.end(), m.start("url"), m["alt"], m["close"] is not None))
    for m in _HTML_ANCHOR.finditer(text):
        add(UrlRef(m["url"], "link", m.start("url"), m.end("url"), m.start("url")))
    for m in _BARE.finditer(text):
        url = m["url"].rstrip(".,;:!?")
        add(UrlRef(url, "tool" if tool else "link", m.start("url"), m.start("url") + len(url), m.start("url")))
    return sorted(found, key=lambda r: r.start)


def _data_in(url: str) -> list[str]:
    """The parts of a URL that can carry data: query values, the fragment, and path
    segments that look encoded (file names like `logo.png` do not)."""
    try:
        parts = urlsplit(url if "://" in url else "http:" + url)
        query, fragment, path = parts.query, parts.fragment, parts.path
    except ValueError:
        query, fragment, path = url.partition("?")[2], "", url
    values = [v for _, v in parse_qsl(query, keep_blank_values=True) if v]
    if query and not values:
        values = [unquote(query)]
    if fragment:
        values.append(unquote(fragment))
    for seg in path.split("/"):
        seg = unquote(seg)
        if _ENCODED.search(seg) or " " in seg:
            values.append(seg)
    return values


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


# A streamed answer is checked every few dozen characters against the same request: the
# request's word sets are made once (keyed by its texts; strings cache their hash).
@functools.lru_cache(maxsize=16)
def _phrases(texts: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    """Word trigrams of the conversation: a URL value holding three of its words in a
    row carries conversation text."""
    out: set[tuple[str, ...]] = set()
    for t in texts:
        w = _words(t)
        out.update(tuple(w[i:i + 3]) for i in range(len(w) - 2))
    return frozenset(out)


@functools.lru_cache(maxsize=64)
def _shingles(text: str, k: int) -> tuple[int, frozenset[tuple[str, ...]]]:
    """The number of words of a system prompt and its k-word shingles."""
    w = _words(text)
    return len(w), frozenset(tuple(w[i:i + k]) for i in range(len(w) - k + 1))


class ExfiltrationDetector:
    """See the module docstring. Stateless and cheap (regular expressions and set lookups;
    the system prompt's shingles are cached, the conversation's trigrams are made only
    when an answer has a URL with data)."""

    name = NAME
    reads_reference = True  # the request's segments come along, as reference only

    def __init__(self, allowed_hosts: Iterable[str] = (), leak_min_words: int = 20,
                 leak_shingle: int = 6):
        self.allowed_hosts = [h.lower().strip() for h in allowed_hosts if h and h.strip()]
        if leak_min_words < leak_shingle:
            raise ValueError(f"exfiltration: leak_min_words must be at least {leak_shingle}")
        self.leak_min_words = leak_min_words
        self.shingle = leak_shingle

    @classmethod
    def from_config(cls, options: Mapping[str, Any], base_dir: Path) -> "ExfiltrationDetector":
        unknown = set(options) - {"allowed_hosts", "leak_min_words", "enabled"}
        if unknown:
            raise ValueError(f"exfiltration: unknown option(s) {sorted(unknown)}; "
                             "known: allowed_hosts, leak_min_words")
        hosts = options.get("allowed_hosts") or []
        if isinstance(hosts, str) or not all(isinstance(h, str) for h in hosts):
            raise ValueError("exfiltration: allowed_hosts must be a list of host names or globs")
        return cls(hosts, int(options.get("leak_min_words", 20)))

    # -- the contract ---------------------------------------------------------------------
    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        answers = [s for s in segments if s.kind is SegmentKind.ANSWER]
        if not answers:
            return []
        instructions = [s.text for s in segments if s.kind is SegmentKind.INSTRUCTION]
        conversation = tuple(s.text for s in segments if s.kind in (SegmentKind.INSTRUCTION, SegmentKind.QUERY,
                                                                    SegmentKind.CONTEXT))
        out: list[Finding] = []
        for seg in answers:
            out.extend(self._urls(seg, conversation))
            out.extend(self._leaks(seg, instructions))
        return out

    def sanitize(self, segments: Sequence[Segment], findings: Sequence[Finding]) -> list[Edit]:
        """Remove the markup of each reported URL: an image becomes its alt text, a link
        its text, a bare URL `[link removed]`. Leaks are not rewritten (flag only)."""
        by_key = {(s.kind, s.index, s.prompt): s for s in segments}
        edits = []
        for f in findings:
            if f.detector != NAME or f.rule == "PG-OUT-LEAK" or not f.span:
                continue
            seg = by_key.get((f.segment_kind, f.segment_index, f.prompt))
            if seg is None:
                continue
            alt = str(f.details.get("alt") or "").strip()
            rep = f"[{alt}]" if alt else "[link removed]"
            edits.append(Edit(seg, f.span[0], f.span[1], rep, f"{f.rule}: URL to {f.details.get('host')}"))
        return edits

    # -- URLs -------------------------------------------------------------------------------
    def allowed(self, host: str) -> bool:
        return not host or any(fnmatch.fnmatchcase(host, pat) for pat in self.allowed_hosts)

    def _urls(self, seg: Segment, conversation: tuple[str, ...]) -> list[Finding]:
        out = []
        tool = (seg.source or "").startswith("tool_call")
        for ref in find_urls(seg.text, tool=tool):
            if ref.url.lower().startswith("data:") or self.allowed(ref.host):
                continue
            values = _data_in(ref.url)
            why = self._why_data(values, _phrases(conversation)) if values else ""
            auto = ref.how in ("image", "tool")
            if auto:
                rule = "PG-OUT-IMG"
                score = 0.95 if values else 0.55
                what = "a URL an agent fetches" if ref.how == "tool" else "an auto-loading image/embed"
                msg = (f"{what} sends data to {ref.host} ({why or 'values in the URL'})" if values
                       else f"{what} loads from external host {ref.host}")
            else:
                if not values:
                    continue
                rule = "PG-OUT-LINK"
                score = 0.85 if why else 0.4
                msg = f"a link to {ref.host} carries " + (why or "a query string")
            out.append(Finding.on(seg, detector=NAME, rule=rule, score=score, message=msg,
                                  span=(ref.start, ref.end), evidence=ref.url[:300],
                                  details={"host": ref.host, "how": ref.how, "alt": ref.alt,
                                           "closed": ref.closed, "data": bool(values)}))
        return out

    @staticmethod
    def _why_data(values: list[str], phrases: set[tuple[str, ...]]) -> str:
        for v in values:
            text = unquote(unquote(v)).replace("+", " ")
            for rx in _SECRETS:
                if rx.search(text):
                    return "a secret-looking value"
            w = _words(text)
            if any(tuple(w[i:i + 3]) in phrases for i in range(len(w) - 2)):
                return "text from the conversation"
            if _ENCODED.search(v):
                return "an encoded blob"
            if len(w) >= 6:
                return "a sentence of text"
        return ""

    # -- the system prompt, repeated ---------------------------------------------------------------
    def _leaks(self, seg: Segment, instructions: list[str]) -> list[Finding]:
        k = self.shingle
        out = []
        ans = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(seg.text)]
        if len(ans) < k:
            return out
        for instr in instructions:
            n_words, shingles = _shingles(instr, k)
            if n_words < max(12, k):
                continue
            hits = [tuple(w for w, _, _ in ans[i:i + k]) in shingles for i in range(len(ans) - k + 1)]
            best = (0, 0, 0)  # (words, first word, last word) of the longest run of shared shingles
            i = 0
            while i < len(hits):
                if not hits[i]:
                    i += 1
                    continue
                j = i
                while j + 1 < len(hits) and hits[j + 1]:
                    j += 1
                if j - i + k > best[0]:
                    best = (j - i + k, i, j + k - 1)
                i = j + 1
            n, a, b = best
            need = min(self.leak_min_words, max(k, n_words // 2))
            if n >= need:
                frac = min(1.0, n / n_words)
                out.append(Finding.on(
                    seg, detector=NAME, rule="PG-OUT-LEAK", score=0.7 + 0.25 * frac,
                    message=f"the answer repeats {n} consecutive words of the system prompt ({frac:.0%} of it)",
                    span=(ans[a][1], ans[b][2]), details={"words": n, "fraction": round(frac, 3)}))
        return out
