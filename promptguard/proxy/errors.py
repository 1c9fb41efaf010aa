"""Errors in the OpenAI error format: `{"error": {"message", "type", "code", "param"}}`,
plus the proxy's request id, so an application's OpenAI client raises its usual
exception types (400 → BadRequestError, 401 → AuthenticationError, 502 → InternalServerError)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..records import BLOCKED_STATUS

if TYPE_CHECKING:  # pragma: no cover
    from ..policy import Decision

__all__ = ["ProxyError", "error_body", "sse_error_event", "blocked_error", "BLOCKED_TYPE"]

BLOCKED_TYPE = "promptguard_blocked"


class ProxyError(Exception):
    """An error answered in the OpenAI format. `message` goes to the client; `internal`
    (an upstream's own error text, an exception's text) only to the record and the log:
    an upstream's messages may name hosts, paths or prompt text the client must not see."""

    def __init__(self, status: int, code: str, message: str, type_: str | None = None,
                 param: str | None = None, details: dict[str, Any] | None = None, kind: str | None = None,
                 internal: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type_ or _default_type(status)
        self.param = param
        self.details = details or {}
        # the label errors are counted under in metrics
        self.kind = kind or code
        self.internal = internal

    def describe(self) -> str:
        """What records and logs keep: code, message, and the internal detail."""
        return f"{self.code}: {self.message}" + (f" ({self.internal[:300]})" if self.internal else "")


def _default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 413 or 400 <= status < 500:
        return "invalid_request_error"
    if status == 504:
        return "timeout_error"
    if status == 503:
        return "server_error"
    return "upstream_error" if status in (502, 503) else "server_error"


def error_body(err: ProxyError, request_id: str) -> dict[str, Any]:
    e: dict[str, Any] = {
        "message": err.message,
        "type": err.type,
        "code": err.code,
        "param": err.param,
        "request_id": request_id,
    }
    e.update(err.details)
    return {"error": e}


def sse_error_event(err: ProxyError, request_id: str) -> bytes:
    """A final server-sent event carrying an error; OpenAI clients raise it as APIError."""
    return b"data: " + json.dumps(error_body(err, request_id)).encode() + b"\n\n"


def blocked_error(decision: "Decision", stage: str) -> ProxyError:
    """The 400 a blocked request or answer gets (OpenAI clients raise BadRequestError),
    naming the finding or the failure that decided it."""
    what = "Request" if stage == "inbound" else "Answer"
    if decision.reasons:
        f = decision.reasons[0]
        who = f"rule {f.rule} of detector {f.detector}" if f.rule else f"detector {f.detector}"
        msg = f"{what} blocked by promptguard: {who} on {f.segment_kind.value}[{f.segment_index}]: {f.message}"
        code = "prompt_blocked" if stage == "inbound" else "answer_blocked"
    elif decision.errors:
        msg = f"{what} blocked by promptguard: a check failed and the policy fails closed ({decision.errors[0]})"
        code = "check_failed"
    else:
        msg = f"{what} blocked by promptguard"
        code = "check_failed"
    return ProxyError(BLOCKED_STATUS, code, msg[:1000], type_=BLOCKED_TYPE,
                      details={"decision": decision.to_dict()}, kind="blocked")


def responses_error_event(err: ProxyError, request_id: str, sequence_number: int) -> bytes:
    """The final `error` event of a Responses stream (the Responses API's own error event:
    type, code, message, param, sequence_number), with the OpenAI error body under
    `error` as well, so that the official client raises it as `openai.APIError`, as it
    does for a cut chat stream."""
    body = error_body(err, request_id)
    event = {"type": "error", "code": err.code, "message": err.message, "param": err.param,
             "sequence_number": sequence_number, **body}
    return b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n"


__all__ += ["responses_error_event"]
