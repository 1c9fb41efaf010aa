"""An in-memory backend that answers with a Python function.

For tests of control flow (ours and the faces'), and for wrapping any callable
model. `fn(request) -> str | Completion`, sync or async. Exceptions it raises are
passed through when they are `BackendError`s and wrapped otherwise.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Awaitable, Callable, Union

from .base import BackendError, Completion, CompletionRequest

__all__ = ["FunctionBackend"]

Answer = Union[str, Completion]


class FunctionBackend:
    def __init__(self, fn: Callable[[CompletionRequest], Union[Answer, Awaitable[Answer]]],
                 *, name: str = "function", deterministic: bool = True):
        self.fn = fn
        self.name = name
        self.deterministic = deterministic
        self.calls: list[CompletionRequest] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls.append(request)
        t0 = time.perf_counter()
        try:
            out: Any = self.fn(request)
            if inspect.isawaitable(out):
                out = await out
        except BackendError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BackendError(f"{self.name}: {type(e).__name__}: {e}") from e
        if isinstance(out, Completion):
            return out
        if not isinstance(out, str):
            raise BackendError(f"{self.name}: returned {type(out).__name__}, not text")
        return Completion(text=out, finish_reason="stop", model=self.name,
                          latency_s=time.perf_counter() - t0, backend=self.name)

    async def aclose(self) -> None:
        return None
