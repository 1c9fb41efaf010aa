"""The OpenAI-compatible firewall proxy (`promptguard serve`). See docs/proxy.md.

Importing this package is cheap; FastAPI and the detectors load in `create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import ApiKey, ProxySettings, load_settings

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app

__all__ = ["ApiKey", "ProxySettings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
