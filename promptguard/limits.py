"""Bounds on the work one check may take: the text it reads, the time it may run, and
a way to stop it when nobody waits for the answer any more.

The policy's `limits:` section (`Limits`) sets them; the inspection step applies them
in every face. A `Budget` is one check's deadline and stop switch: the guard looks at
it between detectors (and between the prompt groups of one detector), so a check that
ran out of time, or whose client went away, stops starting new work. A detector that
is already running finishes its current group, unless it calls `checkpoint()` between
pieces of its own work (the embeddings detector does, between batches of windows): the
budget of the check in progress is found through a context variable, which reaches the
worker thread a detector runs in.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Budget", "Limits", "Stopped", "checkpoint", "running"]


class Limits(BaseModel):
    """The policy's `limits:` section."""

    model_config = ConfigDict(extra="forbid")

    # UTF-8 bytes of text one check reads (a request's segments, or an answer's). Above it
    # the check does not run (`on_limit: block`), or reads the first segments up to the
    # limit and flags (`on_limit: flag`).
    max_text_bytes: int = Field(default=256 * 1024, ge=1024)
    # seconds one check (all detectors, sanitize re-check included) may take; past it the
    # detectors that have not finished are dropped and `on_limit` decides
    check_timeout_s: float = Field(default=20.0, gt=0)
    # what a check that hit a limit becomes: block (fail closed) or flag
    on_limit: Literal["block", "flag"] = "block"


class Budget:
    """One check's deadline and stop switch (thread-safe: detectors run in threads)."""

    def __init__(self, seconds: float | None = None, cancel: threading.Event | None = None):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds if seconds is not None else None
        self._cancel = cancel if cancel is not None else threading.Event()
        self._why: str | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def stop(self, why: str) -> None:
        """Stop the check: nothing new starts after this."""
        if self._why is None:
            self._why = why
        self._cancel.set()

    @property
    def stopped(self) -> str | None:
        """Why the check must stop (`deadline`, `cancelled`, ...), or None."""
        if self._why is not None:
            return self._why
        if self._cancel.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self._why = f"deadline of {self.seconds:g} s passed"
            return self._why
        return None


class Stopped(Exception):
    """Raised by `checkpoint()` inside a detector whose check must stop."""


_current: ContextVar[Budget | None] = ContextVar("promptguard_budget", default=None)


def checkpoint() -> None:
    """For detectors with long work: raise `Stopped` when the check in progress must
    stop (its deadline passed, or nobody waits for it any more). Free when no check is
    in progress."""
    budget = _current.get()
    if budget is not None:
        why = budget.stopped
        if why is not None:
            raise Stopped(why)


@contextlib.contextmanager
def running(budget: Budget | None) -> Iterator[None]:
    """Make `budget` the one `checkpoint()` sees in this context (and the threads started
    from it with `asyncio.to_thread`)."""
    token = _current.set(budget)
    try:
        yield
    finally:
        _current.reset(token)
