"""LLM backends: one small async interface (`LLMBackend.complete`) over an
OpenAI-compatible HTTP upstream, in-process llama.cpp, local transformers and vLLM.

Backends import their heavy libraries on first use, never here.
"""

from __future__ import annotations

from .base import (
    BackendError,
    BackendHTTPError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    Completion,
    CompletionRequest,
    LLMBackend,
    complete_sync,
    run_sync,
)
from .memory import FunctionBackend
from .registry import create_backend

__all__ = [
    "BackendError",
    "BackendHTTPError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadResponse",
    "Completion",
    "CompletionRequest",
    "FunctionBackend",
    "LLMBackend",
    "complete_sync",
    "create_backend",
    "run_sync",
]
