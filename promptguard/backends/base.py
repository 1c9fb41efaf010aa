"""The LLM backend contract: one async call over a small typed request.

`LLMBackend.complete(CompletionRequest) -> Completion` is all the audit, the proxy
and the tests need. A request carries either chat `messages` or a completion
`prompt`; backends that only speak one of the two convert (`as_prompt`,
`as_messages`). Errors are typed (`BackendTimeout`, `BackendHTTPError`, ...) so
callers can tell a slow upstream from a broken one; every error is a
`BackendError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from ..content import content_text
from ..portal import run_sync

__all__ = [
    "CompletionRequest",
    "Completion",
    "LLMBackend",
    "BackendError",
    "BackendTimeout",
    "BackendHTTPError",
    "BackendUnavailable",
    "BadResponse",
    "complete_sync",
    "run_sync",
]


class BackendError(RuntimeError):
    """The backend could not produce a completion."""


class BackendTimeout(BackendError):
    """The backend did not answer in time (after retries)."""


class BackendHTTPError(BackendError):
    """The upstream answered with an HTTP error status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"upstream HTTP {status}: {message}")
        self.status = status


class BadResponse(BackendError):
    """The upstream answered, but not with a completion we can read."""


class BackendUnavailable(BackendError):
    """The backend's library or model is missing (an optional extra, a GGUF file)."""


@dataclass(frozen=True)
class CompletionRequest:
    """What to generate. Exactly one of `messages` and `prompt` is set."""

    messages: tuple[dict[str, Any], ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    model: str | None = None
    top_p: float | None = None
    # Other body fields passed through to HTTP upstreams untouched (response_format, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a CompletionRequest needs exactly one of 'messages' or 'prompt'")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop or ()))
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    # -- conversions ---------------------------------------------------------
    _PASSTHROUGH_SKIP = frozenset({
        "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "seed",
        "stop", "model", "top_p", "stream", "stream_options", "n",
    })

    @classmethod
    def from_body(cls, body: Mapping[str, Any], **overrides: Any) -> "CompletionRequest":
        """From an OpenAI chat or completion request body; `overrides` win."""
        if not isinstance(body, Mapping):
            raise ValueError("request body must be a JSON object")
        kw: dict[str, Any] = {}
        if "messages" in body:
            msgs = body["messages"]
            if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
                raise ValueError("'messages' must be a list of objects")
            kw["messages"] = tuple(msgs)
        elif "prompt" in body:
            p = body["prompt"]
            if isinstance(p, list):
                if len(p) != 1 or not isinstance(p[0], str):
                    raise ValueError("only a single string prompt can be completed here")
                p = p[0]
            if not isinstance(p, str):
                raise ValueError("'prompt' must be a string")
            kw["prompt"] = p
        else:
            raise ValueError("request has neither 'messages' nor 'prompt'")
        mt = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(mt, int) and mt > 0:
            kw["max_tokens"] = mt
        t = body.get("temperature")
        if isinstance(t, (int, float)) and t >= 0:
            kw["temperature"] = float(t)
        else:
            kw["temperature"] = 1.0  # the OpenAI default when absent
        if isinstance(body.get("seed"), int):
            kw["seed"] = body["seed"]
        else:
            kw["seed"] = None
        stop = body.get("stop")
        if isinstance(stop, str):
            kw["stop"] = (stop,)
        elif isinstance(stop, list):
            kw["stop"] = tuple(s for s in stop if isinstance(s, str))
        if isinstance(body.get("model"), str):
            kw["model"] = body["model"]
        if isinstance(body.get("top_p"), (int, float)):
            kw["top_p"] = float(body["top_p"])
        kw["extra"] = {k: v for k, v in body.items() if k not in cls._PASSTHROUGH_SKIP}
        kw.update(overrides)
        return cls(**kw)

    def to_body(self, default_model: str | None = None) -> dict[str, Any]:
        """The OpenAI request body (chat when `messages`, completion when `prompt`)."""
        body: dict[str, Any] = dict(self.extra)
        if self.messages is not None:
            body["messages"] = [dict(m) for m in self.messages]
        else:
            body["prompt"] = self.prompt
        model = self.model or default_model
        if model:
            body["model"] = model
        body["max_tokens"] = self.max_tokens
        body["temperature"] = self.temperature
        if self.seed is not None:
            body["seed"] = self.seed
        if self.stop:
            body["stop"] = list(self.stop)
        if self.top_p is not None:
            body["top_p"] = self.top_p
        return body

    def as_messages(self) -> list[dict[str, Any]]:
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]

    def as_prompt(self) -> str:
        """A plain-text rendering of chat messages, for backends without a chat template."""
        if self.prompt is not None:
            return self.prompt
        parts = []
        for m in self.messages or ():
            parts.append(f"{m.get('role', 'user')}: {content_text(m.get('content'))}")
        parts.append("assistant:")
        return "\n\n".join(parts)

    def replace(self, **changes: Any) -> "CompletionRequest":
        return replace(self, **changes)


@dataclass
class Completion:
    text: str
    finish_reason: str | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    backend: str = ""
    # The upstream's own response object (JSON dict for HTTP), for callers that need more.
    raw: Any = None


@runtime_checkable
class LLMBackend(Protocol):
    """Anything that completes a `CompletionRequest`.

    `deterministic` says whether temperature 0 (plus `seed`) gives the same answer
    twice, so that the audit knows when it must repeat a call to measure noise.
    """

    name: str
    deterministic: bool

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None: ...


def complete_sync(backend: LLMBackend, request: CompletionRequest) -> Completion:
    """Blocking twin of `backend.complete` for sync callers (CLI, sync callbacks)."""
    return run_sync(backend.complete(request))


def check_messages(messages: Sequence[dict[str, Any]]) -> None:
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise BackendError(f"messages[{i}] must be an object with a 'role'")


__all__ += ["check_messages"]
