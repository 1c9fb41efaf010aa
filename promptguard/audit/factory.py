"""The one place an `Auditor` is built from a policy and a backend (every face uses it)."""

from __future__ import annotations

from typing import Any

from ..backends.base import LLMBackend
from .auditor import Auditor
from .config import AuditConfig

__all__ = ["build_auditor"]


def build_auditor(policy: Any, backend: LLMBackend | str | None, *, config: AuditConfig | None = None,
                  **backend_options: Any) -> Auditor | None:
    """The answer audit of `policy`'s `audit:` section (or `config`) over `backend` (an
    `LLMBackend`, or a spec for `create_backend` with `backend_options`); None when
    there is no backend or the audit is off."""
    cfg = config if config is not None else AuditConfig.from_policy(policy)
    if backend is None or cfg.mode == "off":
        return None
    if isinstance(backend, str):
        from ..backends.registry import create_backend

        backend = create_backend(backend, **backend_options)
    return Auditor(backend, cfg)
