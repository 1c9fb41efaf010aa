"""A record: what one face decided about one request, in one shape for every face.

The proxy writes one record per request (its inbound and outbound checks merged),
the LangChain integration one per check it makes, the scanner one per file. The
findings in a record are the findings JSON of `promptguard.inspection` whichever face
made them, and a block has one status everywhere (`BLOCKED_STATUS`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..policy import Action

if TYPE_CHECKING:  # pragma: no cover
    from ..inspection import Inspection

__all__ = ["BLOCKED_STATUS", "ERROR_DECISION", "Record", "scrub", "sha256_text", "worst"]

# The status of a blocked request in every face: the proxy answers it (OpenAI clients
# raise BadRequestError), the LangChain integration and the scanner record it.
BLOCKED_STATUS = 400
# the decision of a request rejected before any check ran (bad input, authentication)
ERROR_DECISION = "error"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() if text else ""


def worst(*actions: Action) -> Action:
    return max(actions, key=lambda a: a.rank)


@dataclass
class Record:
    request_id: str
    ts: float = field(default_factory=time.time)  # unix time when the request arrived
    endpoint: str = ""
    decision: str = ERROR_DECISION  # allow | flag | sanitize | block | error
    stage: str = "inbound"  # which check decided: inbound | outbound | request (invalid input) | upstream
    status: int = 200
    client: str = ""  # client address, or the face ("langchain", "scanner")
    api_key: str = ""  # the proxy key's name, never the key
    model: str = ""
    stream: bool = False
    summary: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # the detectors that really ran
    prompt_sha256: str = ""
    answer_sha256: str = ""
    prompt_text: str | None = None
    answer_text: str | None = None
    latency_ms: float = 0.0
    upstream_ms: float | None = None
    worker: int = field(default_factory=os.getpid)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def action(self) -> Action:
        return Action(self.decision) if self.decision in _ACTIONS else Action.ALLOW

    def note(self, inspection: "Inspection") -> "Record":
        """Take in one inspection. The first (inbound, or the only one) sets the
        findings, errors, changes, stage and summary; a later one (the answer) adds
        to them, and takes the stage and summary when it flags or worse. The decision
        is the worst so far; the checks are every detector that ran."""
        d = inspection.decision
        found = inspection.findings_json()
        self.checks = sorted(set(self.checks) | set(d.checks))
        if not self._noted:
            self.findings, self.errors, self.changes = found, list(d.errors), list(d.changes)
            self.stage, self.summary = inspection.stage, d.summary()
        else:
            self.findings.extend(found)
            self.errors.extend(d.errors)
            self.changes.extend(d.changes)
            if inspection.action.rank >= Action.FLAG.rank:
                self.stage = inspection.stage
                self.summary = (self.summary + f"; {inspection.stage}: " + d.summary()).lstrip("; ")
        self.decision = worst(self.action if self._noted else Action.ALLOW, inspection.action).value
        self._noted = True
        return self

    def hash_texts(self, *, prompt: str | None = None, answer: str | None = None, keep: bool = False) -> None:
        """Record the prompt's and the answer's hashes (and, with `keep`, their texts)."""
        if prompt is not None:
            self.prompt_sha256 = sha256_text(prompt)
            self.prompt_text = prompt if keep else None
        if answer is not None:
            self.answer_sha256 = sha256_text(answer)
            self.answer_text = answer if keep else None
        # what `redact` looks for (in memory only, never stored)
        self._seen = [*self._seen, *(t for t in (prompt, answer) if t)]

    def redact(self) -> "Record":
        """Leave no request or answer text in the record (`store_text: false`): the
        texts go, each finding's `evidence` (the matched text) goes, `details` keep
        only numbers and flags, and messages, changes, the summary and errors are
        scrubbed of what quotes the texts (see `scrub`). Hashes, rules, kinds, spans
        and scores stay, so a record still says what was found where."""
        self.prompt_text = self.answer_text = None
        seen = "\n".join(self._seen).lower()
        for f in self.findings:
            f["evidence"] = ""
            if isinstance(f.get("message"), str):
                f["message"] = scrub(f["message"], seen)
            if "details" in f:
                f["details"] = _text_free(f["details"])
        self.changes = [scrub(c, seen) for c in self.changes]
        self.errors = [scrub(e, seen) for e in self.errors]
        self.summary = scrub(self.summary, seen)
        return self

    # set once `note` took a first inspection (a plain attribute, not a record field)
    _noted = False
    _seen = ()  # the texts hashed (per record, set by `hash_texts`; not a field)


# how messages quote request or answer text: quoted spans (detectors quote with repr,
# sometimes clipped with an ellipsis) and parenthesised ones (the audit shows answers
# as "(a -> b)"); and what is never a detector's own words: URLs, host and file names,
# e-mail addresses, runs of digits (card numbers, SSNs, phone numbers)
_QUOTED = re.compile(r"""(?<!\w)'((?:[^'\\\n]|\\.)*)'(?!\w)|"((?:[^"\\\n]|\\.)*)"|`([^`\n]*)`|\(([^()\n]*)\)""")
_TEXTISH = re.compile(r"\S+@\S+|[a-z][a-z0-9+.-]*://\S+|\b[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b"
                      r"|\d[\d ().\-/]{4,}\d", re.IGNORECASE)
_ELLIPSIS = " .…\t\n'\"`"


def scrub(text: str, seen: str | None = None) -> str:
    """`text` without what may quote request or answer text: a quoted or parenthesised
    span whose content occurs in `seen` (the texts, lower-cased; every quoted span when
    None; an answer comparison `a -> b` always), and URLs, host names, e-mail addresses
    and long runs of digits always. A rule's own description keeps its words."""
    if not text:
        return text

    def quoted(m: re.Match[str]) -> str:
        inner = next(g for g in m.groups() if g is not None)
        if "->" in inner:  # an answer comparison
            return "[redacted]"
        core = inner.strip(_ELLIPSIS).lower()
        if seen is None:
            return m.group(0) if m.group(4) is not None else "[redacted]"
        return "[redacted]" if core and core in seen else m.group(0)

    return _TEXTISH.sub("[redacted]", _QUOTED.sub(quoted, text))


def _text_free(value: Any) -> Any:
    """Numbers, flags and None of a details value (nested), nothing that is text."""
    if isinstance(value, dict):
        return {k: _text_free(v) for k, v in value.items() if not isinstance(v, str)}
    if isinstance(value, (list, tuple)):
        return [_text_free(v) for v in value if not isinstance(v, str)]
    return value


_ACTIONS = {a.value for a in Action}
