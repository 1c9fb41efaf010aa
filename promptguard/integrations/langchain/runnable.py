"""`PromptGuardRunnable`: the sanitize path a callback cannot take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from ...guard import Guard
from ...policy import Policy
from .core import Core, GuardEvent, Recorder
from .shapes import RUNNABLE_INPUT

__all__ = ["PromptGuardRunnable"]


class PromptGuardRunnable(Runnable[Any, Any]):
    """Check what passes through and rewrite it when the policy says `sanitize`.

    Put it where the callback cannot act: `prompt | PromptGuardRunnable(...) | model`
    (a `ChatPromptValue`, `StringPromptValue`, message list or string) or
    `retriever | PromptGuardRunnable(...)` (a list of `Document`s, checked as context).
    The output has the input's type: unchanged (the same object) on allow/flag, rewritten
    on sanitize (dropped messages/documents or edited text, checked again); `block`
    raises `PromptBlocked`.
    """

    def __init__(self, guard: Guard | None = None, *, policy: Policy | str | Path | None = None, store: Any = None,
                 recorder: Recorder | None = None, record_text: bool = False, name: str | None = None) -> None:
        self._core = Core(guard, policy=policy, store=store, recorder=recorder, record_text=record_text)
        self.guard = self._core.guard
        self.name = name or "PromptGuard"

    @property
    def events(self) -> Any:
        return self._core.events

    @property
    def last_event(self) -> GuardEvent | None:
        return self._core.last_event

    def close(self) -> None:
        self._core.close()

    @staticmethod
    def _kw(run_manager: Any) -> dict[str, Any]:
        if run_manager is None:
            return {}
        return {"run_id": run_manager.run_id, "parent_run_id": run_manager.parent_run_id,
                "tags": run_manager.tags, "metadata": run_manager.metadata}

    def _run(self, value: Any, run_manager: Any = None) -> Any:
        insp = self._core.inspector.inspect(RUNNABLE_INPUT, value)
        ev = self._core.finish(self._core.event("runnable", insp, self._kw(run_manager), self.name, in_callback=False))
        assert ev is not None
        return insp.output

    async def _arun(self, value: Any, run_manager: Any = None) -> Any:
        insp = await self._core.inspector.ainspect(RUNNABLE_INPUT, value)
        ev = self._core.finish(self._core.event("runnable", insp, self._kw(run_manager), self.name, in_callback=False))
        assert ev is not None
        return insp.output

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._run, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._arun, input, config, run_type="chain")
