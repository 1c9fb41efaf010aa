"""Integrations with LLM application frameworks.

Nothing here is imported by `import promptguard`; importing
`promptguard.integrations.langchain` imports `langchain_core`.

    from promptguard.integrations.langchain import PromptGuardCallbackHandler, PromptGuardRunnable

The names are also reachable lazily from this package
(`promptguard.integrations.PromptGuardCallbackHandler`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncPromptGuardCallbackHandler", "GuardEvent", "LocalEmbeddings", "PromptBlocked",
           "PromptGuardCallbackHandler", "PromptGuardRunnable"]
_LANGCHAIN = set(__all__)


def __getattr__(name: str) -> Any:
    if name in _LANGCHAIN:
        from . import langchain

        return getattr(langchain, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
