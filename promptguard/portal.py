"""Sync callers of async code (the CLI, LangChain's sync callbacks) run coroutines on
one long-lived background event loop, never with `asyncio.run` on a loop of their own.

A loop per call would leave every pooled client it created behind, bound to a loop
that is gone; one loop that lives as long as the process keeps the pools usable and
is never the caller's loop, so a sync call works inside a running loop too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Coroutine, TypeVar

__all__ = ["run_sync", "submit", "portal_loop"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def portal_loop() -> asyncio.AbstractEventLoop:
    """The background loop (started on first use, a daemon thread)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="promptguard-portal", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
    """Schedule `coro` on the background loop; returns a future for its result."""
    loop = portal_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("run_sync/submit called from the portal loop itself (it would wait on itself)")
    return asyncio.run_coroutine_threadsafe(coro, loop)


def run_sync(coro: Awaitable[T] | Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code (inside a running loop or not)."""
    return submit(coro).result()  # type: ignore[arg-type]
