"""LangChain integration: a callback handler that checks what flows through a chain,
and a Runnable that can rewrite prompts before the model.

- `PromptGuardCallbackHandler` / `AsyncPromptGuardCallbackHandler` check chat messages
  and prompts when a model starts (few-shot and chain-of-thought demonstrations
  included), retrieved documents and tool output as `context`, and the model's answer
  (with the policy's answer detectors, as the proxy does; plus the answer audit when
  configured). A `block` raises `PromptBlocked`, which really stops the run.
- `PromptGuardRunnable` (`guard | model`, `retriever | guard`) applies `sanitize`
  decisions, which a callback cannot.

Both run the inspection step of `promptguard.inspection`, as the proxy and the scanner
do; every decision becomes a `GuardEvent` kept on the handler (per run id), handed to an
optional `recorder`, and written to a record store when one is given (`store=` a
path/URL or a store), as the same record the other faces write.

Layout: `shapes.py` (LangChain values ↔ segments), `core.py` (the flows, no I/O),
`handlers.py` (the sync and async shells), `runnable.py`, `embeddings.py`.
"""

from __future__ import annotations

from .core import GuardEvent, PromptBlocked
from .embeddings import LocalEmbeddings
from .handlers import AsyncPromptGuardCallbackHandler, PromptGuardCallbackHandler
from .runnable import PromptGuardRunnable
from .shapes import DOCUMENTS, GENERATIONS, MESSAGES, RUNNABLE_INPUT, TOOL_OUTPUT, tool_output_text

__all__ = [
    "AsyncPromptGuardCallbackHandler",
    "GuardEvent",
    "LocalEmbeddings",
    "PromptBlocked",
    "PromptGuardCallbackHandler",
    "PromptGuardRunnable",
    "DOCUMENTS",
    "GENERATIONS",
    "MESSAGES",
    "RUNNABLE_INPUT",
    "TOOL_OUTPUT",
    "tool_output_text",
]
