"""The two callback handlers: thin shells that drive the core's flows (`core.py`).

- `PromptGuardCallbackHandler` (sync; also works in async chains, where LangChain runs
  it on its executor) drives them with `Inspector.inspect` and runs an audit on the
  background loop of `promptguard.portal`.
- `AsyncPromptGuardCallbackHandler` drives the same flows with `await
  Inspector.ainspect` and `await Auditor.audit`, for async chains. In a sync run
  LangChain drops exceptions from async handlers, so a block cannot stop the run:
  the handler notices (below), records the event with `enforced=False` and warns.

A `block` raises `PromptBlocked`, which really stops the run: the handlers set
`raise_error = True`, without which LangChain logs and swallows callback errors.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from ...portal import run_sync, submit
from ...inspection import adrive, drive
from .core import Audit, Core, Flow, GuardEvent, Inspect
from .shapes import DOCUMENTS, TOOL_OUTPUT

__all__ = ["PromptGuardCallbackHandler", "AsyncPromptGuardCallbackHandler"]

log = logging.getLogger("promptguard.langchain")


class _Switches:
    """LangChain asks these before each event; chain/agent-action events are never needed."""

    check_documents: bool
    check_tools: bool
    check_prompts: bool
    check_outputs: bool
    auditor: Any

    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return not self.check_documents

    @property
    def ignore_agent(self) -> bool:  # tool events are gated by ignore_agent in LangChain
        return not self.check_tools

    @property
    def ignore_llm(self) -> bool:
        return not (self.check_prompts or self.check_outputs or self.auditor is not None)

    @property
    def ignore_chat_model(self) -> bool:
        return self.ignore_llm


class PromptGuardCallbackHandler(_Switches, Core, BaseCallbackHandler):
    """Checks prompts, retrieved documents, tool output and answers against a policy.

    `block` raises `PromptBlocked` and stops the run. A `sanitize` decision cannot be
    applied from a callback: by default it blocks (`on_sanitize="block"`), or it is only
    recorded (`on_sanitize="flag"`); put a `PromptGuardRunnable` before the model to
    rewrite instead.
    """

    raise_error: bool = True  # LangChain swallows callback errors otherwise
    run_inline: bool = False

    def _drive(self, flow: Flow) -> GuardEvent | None:
        return drive(flow, self._call)

    def _call(self, step: Any) -> Any:
        """Answer one request of a flow, synchronously."""
        if isinstance(step, Inspect):
            return self.inspector_for(step).inspect(step.shape, step.value, step.stage, reference=step.reference)
        if isinstance(step, Audit):
            return run_sync(self.auditor.audit(*step.args))
        return submit(self.audit_later(step))

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kw: Any) -> None:
        self.finish(self._drive(self.chat_start_flow(serialized, messages, kw)))

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kw: Any) -> None:
        self.finish(self._drive(self.llm_start_flow(serialized, prompts, kw)))

    def on_retriever_end(self, documents: Sequence[Document], **kw: Any) -> None:
        if self.check_documents:
            self.finish(self._drive(self.check_flow("retriever_end", DOCUMENTS, documents, kw,
                                                    str(kw.get("name") or "retriever"))))

    def on_tool_end(self, output: Any, **kw: Any) -> None:
        if self.check_tools:
            name = str(kw.get("name") or "tool")
            self.finish(self._drive(self.check_flow("tool_end", TOOL_OUTPUT, (output, name), kw, name)))

    def on_llm_end(self, response: LLMResult, **kw: Any) -> None:
        self.finish(self._drive(self.answer_flow(response, kw)))

    def on_llm_error(self, error: BaseException, **kw: Any) -> None:
        self._forget(kw.get("run_id"))


def _in_sync_run(event: str) -> bool:
    """Is this async callback being run by LangChain's *sync* dispatcher? That one runs
    each async callback as the main coroutine of a task of its own on a throw-away loop
    (and drops what it raises); an async run awaits it inside the chain's own task, or a
    task of LangChain's async dispatcher. So: is the current task's coroutine this
    callback itself (or LangChain's chat-model fallback wrapped around it)?"""
    task = asyncio.current_task()
    name = getattr(task.get_coro(), "__qualname__", "") if task is not None else ""
    return name.endswith(f".{event}") or name.endswith("_achat_model_start_fallback")


class AsyncPromptGuardCallbackHandler(_Switches, Core, AsyncCallbackHandler):
    """The async twin: the same flows, awaited (async detectors natively, sync ones in
    threads). For async chains (`ainvoke`, `astream`, ...); see the module docstring."""

    raise_error: bool = True
    run_inline: bool = False

    async def _drive(self, flow: Flow) -> GuardEvent | None:
        return await adrive(flow, self._acall)

    async def _acall(self, step: Any) -> Any:
        """Answer one request of a flow, awaiting it."""
        if isinstance(step, Inspect):
            return await self.inspector_for(step).ainspect(step.shape, step.value, step.stage,
                                                           reference=step.reference)
        if isinstance(step, Audit):
            return await self.auditor.audit(*step.args)
        task = asyncio.get_running_loop().create_task(self.audit_later(step))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    @property
    def _tasks(self) -> set[asyncio.Task[Any]]:
        tasks = self.__dict__.get("_pg_tasks")
        if tasks is None:
            tasks = self.__dict__["_pg_tasks"] = set()
        return tasks

    def _afinish(self, ev: GuardEvent | None, sync_run: bool) -> None:
        if ev is not None and ev.blocked and sync_run:
            ev.enforced = False
            msg = ("AsyncPromptGuardCallbackHandler ran in a synchronous LangChain run, where LangChain "
                   "drops exceptions from async callbacks: the run was NOT stopped "
                   f"({ev.decision.summary()}). Use PromptGuardCallbackHandler for sync runs.")
            log.error(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        self.finish(ev)

    async def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]],
                                  **kw: Any) -> None:
        sync_run = _in_sync_run("on_chat_model_start")
        self._afinish(await self._drive(self.chat_start_flow(serialized, messages, kw, keep_blocked=sync_run)),
                      sync_run)

    async def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kw: Any) -> None:
        sync_run = _in_sync_run("on_llm_start")
        self._afinish(await self._drive(self.llm_start_flow(serialized, prompts, kw, keep_blocked=sync_run)),
                      sync_run)

    async def on_retriever_end(self, documents: Sequence[Document], **kw: Any) -> None:
        if self.check_documents:
            sync_run = _in_sync_run("on_retriever_end")
            self._afinish(await self._drive(self.check_flow("retriever_end", DOCUMENTS, documents, kw,
                                                            str(kw.get("name") or "retriever"))), sync_run)

    async def on_tool_end(self, output: Any, **kw: Any) -> None:
        if self.check_tools:
            sync_run = _in_sync_run("on_tool_end")
            name = str(kw.get("name") or "tool")
            self._afinish(await self._drive(self.check_flow("tool_end", TOOL_OUTPUT, (output, name), kw, name)),
                          sync_run)

    async def on_llm_end(self, response: LLMResult, **kw: Any) -> None:
        sync_run = _in_sync_run("on_llm_end")
        self._afinish(await self._drive(self.answer_flow(response, kw)), sync_run)

    async def on_llm_error(self, error: BaseException, **kw: Any) -> None:
        self._forget(kw.get("run_id"))
