"""LangChain's own values as inspection shapes (`promptguard.inspection.Shape`):
messages, prompt values, strings, documents, tool output, model generations.

Messages are read by the one LangChain reader of `promptguard.parsing.langchain`
(one role table); the writers here rebuild LangChain objects, keeping every object
the edits did not touch (the same object, not a copy).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue

from ...content import content_text
from ...guard import GuardResult
from ...parsing import PROMPT, ParseError
from ...parsing.answers import answer_segments
from ...parsing.langchain import langchain_messages_to_openai, lc_content
from ...parsing.openai import messages_text, parse_messages
from ...sanitize import Unwritable, apply_to_messages
from ...segments import Segment, SegmentBuilder, SegmentKind

__all__ = ["MESSAGE_BATCH", "MESSAGES", "PROMPTS", "DOCUMENTS", "TOOL_OUTPUT", "GENERATIONS", "RUNNABLE_INPUT",
           "to_messages", "tool_output_text", "generation_texts"]


def to_messages(messages: Sequence[Any]) -> list[BaseMessage]:
    """BaseMessages as they are; message-likes (tuples, dicts, strings) converted."""
    msgs = list(messages)
    if all(isinstance(m, BaseMessage) for m in msgs):
        return msgs
    try:
        return convert_to_messages(msgs)
    except Exception as e:  # noqa: BLE001 - LangChain raises several types here
        raise ParseError(f"cannot read messages: {e}") from None


class _Messages:
    """A list of LangChain messages (a chat prompt): reader and writer."""

    name = "langchain messages"

    def openai(self, messages: Sequence[Any]) -> list[dict[str, Any]]:
        return langchain_messages_to_openai(to_messages(messages))

    def read(self, messages: Sequence[Any]) -> list[Segment]:
        msgs = self.openai(messages)
        return parse_messages(msgs).segments if msgs else []

    def write(self, messages: Sequence[Any], result: GuardResult) -> list[BaseMessage]:
        orig = to_messages(messages)
        dicts = [{**d, "_pg_index": i} for i, d in enumerate(langchain_messages_to_openai(orig))]
        out = []
        for d in apply_to_messages(dicts, result.edits):
            i = d["_pg_index"]
            if any(d.get(k) != dicts[i].get(k) for k in d.keys() | dicts[i].keys() if k != "content"):
                # only the content is written back into a LangChain message: fail closed
                raise Unwritable(f"message {i}: an edit of a field other than its content cannot be written back")
            m = orig[i]
            out.append(m if d["content"] == lc_content(m.content) else m.model_copy(update={"content": d["content"]}))
        return out

    def text(self, messages: Sequence[Any]) -> str:
        return messages_text(self.openai(messages))


class _MessageBatch:
    """What `on_chat_model_start` receives: one message list per prompt of a batch
    (one prompt group each). Read only: a callback cannot rewrite."""

    name = "langchain chat prompt"
    write = None

    def read(self, batch: Sequence[Sequence[Any]]) -> list[Segment]:
        b = SegmentBuilder()
        for i, messages in enumerate(batch):
            msgs = MESSAGES.openai(messages)
            if msgs:
                parse_messages(msgs, b, prompt=i)
        return b.segments

    def text(self, batch: Sequence[Sequence[Any]]) -> str:
        return "\n\n".join(MESSAGES.text(messages) for messages in batch)


class _Prompts:
    """What `on_llm_start` receives: the prompt strings of a batch. Read only."""

    name = "langchain prompts"
    write = None

    def read(self, prompts: Any) -> list[Segment]:
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise ParseError("prompts must be a list of strings")
        return PROMPT.read(prompts)

    def text(self, prompts: Sequence[str]) -> str:
        return PROMPT.text(list(prompts))


def _doc_text(d: Any) -> str:
    if isinstance(d, Document):
        return d.page_content
    if isinstance(d, str):
        return d
    raise ParseError(f"expected Document objects, got {type(d).__name__}")


class _Documents:
    """Retrieved documents: one `context` segment each (message_index = position)."""

    name = "langchain documents"

    def __init__(self, source: str = "retriever"):
        self.source = source

    def read(self, documents: Sequence[Any]) -> list[Segment]:
        b = SegmentBuilder()
        for i, d in enumerate(documents):
            meta = getattr(d, "metadata", None) or {}
            src = f"{self.source}:{meta['source']}" if isinstance(meta, dict) and meta.get("source") else self.source
            b.add(SegmentKind.CONTEXT, _doc_text(d), message_index=i, source=src)
        return b.segments

    def write(self, documents: Sequence[Document], result: GuardResult) -> list[Document]:
        dicts = [{"role": "tool", "content": d.page_content, "_pg_index": i} for i, d in enumerate(documents)]
        out = []
        for d in apply_to_messages(dicts, result.edits):
            doc = documents[d["_pg_index"]]
            new = d["content"]
            out.append(doc if new == doc.page_content else
                       Document(page_content=new, metadata=dict(doc.metadata), id=doc.id))
        return out

    def text(self, documents: Sequence[Any]) -> str:
        return "\n\n".join(_doc_text(d) for d in documents)


def tool_output_text(output: Any) -> str:
    """Text of whatever a tool returned: a string, a ToolMessage, documents, JSON-able data."""
    if isinstance(output, str):
        return output
    if isinstance(output, BaseMessage):
        return content_text(lc_content(output.content))
    if isinstance(output, Document):
        return output.page_content
    if isinstance(output, (list, tuple)) and output and all(isinstance(d, Document) for d in output):
        return "\n\n".join(d.page_content for d in output)
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(output)


class _ToolOutput:
    """A tool's output, as `(output, tool name)`: one `context` segment. Read only."""

    name = "tool output"
    write = None

    def read(self, value: tuple[Any, str]) -> list[Segment]:
        output, tool = value
        b = SegmentBuilder()
        b.add(SegmentKind.CONTEXT, tool_output_text(output), message_index=0, source=f"tool:{tool}")
        return b.segments

    def text(self, value: tuple[Any, str]) -> str:
        return tool_output_text(value[0])


def generation_texts(generations: Sequence[Sequence[Any]]) -> dict[int, list[str]]:
    """prompt index → the texts of its generations."""
    out: dict[int, list[str]] = {}
    for i, gens in enumerate(generations):
        texts = []
        for g in gens:
            text = g.text if hasattr(g, "text") else str(g)
            if isinstance(g, ChatGeneration) and not text:
                text = content_text(lc_content(g.message.content))
            texts.append(text)
        out[i] = texts
    return out


class _Generations:
    """A model's outputs (`LLMResult.generations`): `answer` segments, one prompt group
    per prompt. Read only: a callback sees them after the model made them."""

    name = "model answer"
    write = None

    def read(self, generations: Sequence[Sequence[Any]]) -> list[Segment]:
        return answer_segments(generation_texts(generations), source="llm")

    def text(self, generations: Sequence[Sequence[Any]]) -> str:
        return "\n\n".join(t for texts in generation_texts(generations).values() for t in texts)


class _RunnableInput:
    """What a `PromptGuardRunnable` is given, rewritten into the same type: a chat or
    string prompt value, messages, a string, a document or documents."""

    name = "runnable input"

    def _shape(self, value: Any) -> Any:
        if isinstance(value, (ChatPromptValue, PromptValue)) and not isinstance(value, StringPromptValue):
            return MESSAGES
        if isinstance(value, (str, StringPromptValue)):
            return PROMPT
        if isinstance(value, Document):
            return DOCUMENTS
        if isinstance(value, (list, tuple)):
            items = list(value)
            return DOCUMENTS if items and all(isinstance(d, Document) for d in items) else MESSAGES
        raise ParseError("PromptGuardRunnable takes a prompt value, messages, a string or documents, "
                         f"not {type(value).__name__}")

    @staticmethod
    def _inner(value: Any) -> Any:
        if isinstance(value, StringPromptValue):
            return value.text
        if isinstance(value, ChatPromptValue):
            return value.messages
        if isinstance(value, PromptValue):
            return value.to_messages()
        if isinstance(value, Document):
            return [value]
        return list(value) if isinstance(value, tuple) else value

    def read(self, value: Any) -> list[Segment]:
        return self._shape(value).read(self._inner(value))

    def write(self, value: Any, result: GuardResult) -> Any:
        out = self._shape(value).write(self._inner(value), result)
        if isinstance(value, StringPromptValue):
            return StringPromptValue(text=out)
        if isinstance(value, PromptValue):
            return ChatPromptValue(messages=out)
        if isinstance(value, Document):
            return (out or [Document(page_content="", metadata=dict(value.metadata))])[0]
        return out

    def text(self, value: Any) -> str:
        return self._shape(value).text(self._inner(value))


MESSAGES = _Messages()
MESSAGE_BATCH = _MessageBatch()
PROMPTS = _Prompts()
DOCUMENTS = _Documents()
TOOL_OUTPUT = _ToolOutput()
GENERATIONS = _Generations()
RUNNABLE_INPUT = _RunnableInput()
