"""The Responses API over an upstream that only serves chat completions.

llama.cpp's server and older vLLM have no `/v1/responses`; the proxy then translates
(sans-I/O, plain functions and one small state machine):

    chat_request(body)               a Responses request → a chat completions request
    response_from_chat(chat, body)   a chat completion → a Response object
    StreamBridge                     chat completion chunks → `response.*` events

What is carried: `instructions`, `input` (a string, or `message` items with text, image,
file and audio parts, `function_call` and `function_call_output` items; reasoning items
are dropped: chat has no place for them), function `tools`, `tool_choice`,
`max_output_tokens`, `temperature`, `top_p`, `parallel_tool_calls`, `text.format`
(JSON schema / JSON object), `top_logprobs`, `reasoning.effort`, `user`, `stream`; the
answer's text, refusal, reasoning text, tool calls, usage and finish reason (`length` →
`status: incomplete`). What cannot be carried is refused with a `BridgeError` (a 400
naming the field) rather than dropped silently: `previous_response_id`,
`conversation`, stored `prompt` templates, `background`, `item_reference` and other
items that only a Responses server understands, built-in tools (web search, file
search, MCP, …). `store` is answered `false`: nothing is stored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ..content import PART_SEP, content_text
from ..parsing.responses import TEXT_KEYS

__all__ = ["BridgeError", "chat_request", "response_from_chat", "StreamBridge", "new_response_id"]


class BridgeError(ValueError):
    """A Responses request that the chat-completions bridge cannot carry."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def new_response_id() -> str:
    return "resp_pg" + uuid.uuid4().hex


_UPSTREAM_ONLY = {
    "previous_response_id": "the earlier turns are stored by a Responses server",
    "conversation": "conversations are stored by a Responses server",
    "prompt": "stored prompt templates live on a Responses server",
}


def _refuse(what: str, param: str | None = None) -> BridgeError:
    return BridgeError(f"{what} cannot be bridged to chat completions (the upstream has no /v1/responses)", param)


# -- request ----------------------------------------------------------------------------------


def _chat_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, p in enumerate(content or []):
        typ = p.get("type") if isinstance(p, dict) else None
        if typ in TEXT_KEYS:
            parts.append({"type": "text", "text": p.get(TEXT_KEYS[typ]) or ""})
        elif typ == "input_image" and isinstance(p.get("image_url"), str):
            img = {"url": p["image_url"]}
            if p.get("detail"):
                img["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": img})
        elif typ == "input_file":
            parts.append({"type": "file", "file": {k: p[k] for k in ("file_data", "file_id", "filename") if p.get(k)}})
        elif typ == "input_audio" and isinstance(p.get("input_audio"), dict):
            parts.append({"type": "input_audio", "input_audio": p["input_audio"]})
        else:
            raise _refuse(f"content part {where}[{j}] of type {typ!r}", where)
    if all(p["type"] == "text" for p in parts):
        # chat templates (llama.cpp) expect a string; joined as segments join parts
        return PART_SEP.join(p["text"] for p in parts)
    return parts


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    ins = body.get("instructions")
    if isinstance(ins, str) and ins:
        msgs.append({"role": "system", "content": ins})
    elif ins not in (None, ""):
        raise _refuse("'instructions' given as items", "instructions")
    inp = body.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
        return msgs
    last_assistant: dict[str, Any] | None = None  # an assistant turn that tool calls may join
    for k, item in enumerate(inp or []):
        typ = item.get("type", "message" if "role" in item else None)
        where = f"input[{k}]"
        if typ == "message":
            role = "system" if item.get("role") == "developer" else item.get("role")
            msg = {"role": role, "content": _chat_content(item.get("content"), where + ".content")}
            msgs.append(msg)
            last_assistant = msg if role == "assistant" else None
        elif typ == "function_call":
            call = {"id": item.get("call_id") or item.get("id") or "call_" + uuid.uuid4().hex[:12],
                    "type": "function", "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""}}
            if last_assistant is None:
                # an empty string, not null: llama.cpp refuses null, and its chat templates read the key
                last_assistant = {"role": "assistant", "content": ""}
                msgs.append(last_assistant)
            last_assistant.setdefault("tool_calls", []).append(call)
        elif typ == "function_call_output":
            out = item.get("output")
            text = out if isinstance(out, str) else PART_SEP.join(
                p.get("text", "") for p in out or [] if isinstance(p, dict) and p.get("type") == "input_text")
            msgs.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
            last_assistant = None
        elif typ == "reasoning":
            continue  # chat completions take no reasoning input; the model reasons afresh
        else:
            raise _refuse(f"input item {where} of type {typ!r}", where)
    return msgs


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k, t in enumerate(body.get("tools") or []):
        if t.get("type") != "function":
            raise _refuse(f"tool tools[{k}] of type {t.get('type')!r} (a built-in tool)", f"tools[{k}]")
        fn = {"name": t.get("name")}
        for key in ("description", "parameters", "strict"):
            if t.get(key) is not None:
                fn[key] = t[key]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise _refuse(f"tool_choice {choice.get('type') if isinstance(choice, dict) else choice!r}", "tool_choice")


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request that asks what `body` (a Responses request) asks."""
    for key, why in _UPSTREAM_ONLY.items():
        if body.get(key):
            raise BridgeError(f"'{key}' cannot be bridged to chat completions: {why}, and the upstream has no "
                              "/v1/responses; send the whole conversation in 'input' instead", key)
    if body.get("background"):
        raise _refuse("'background': true", "background")
    out: dict[str, Any] = {"model": body.get("model"), "messages": _messages(body)}
    tools = _tools(body)
    if tools:
        out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    if body.get("parallel_tool_calls") is not None and tools:
        out["parallel_tool_calls"] = body["parallel_tool_calls"]
    for src, dst in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                     ("user", "user"), ("seed", "seed")):
        if body.get(src) is not None:
            out[dst] = body[src]
    if body.get("top_logprobs"):
        out["logprobs"], out["top_logprobs"] = True, body["top_logprobs"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema", "json_schema": {
            k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# -- answer -----------------------------------------------------------------------------------


def _usage(u: Any) -> dict[str, Any] | None:
    if not isinstance(u, dict):
        return None
    inp, outp = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    cached = ((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0) if isinstance(
        u.get("prompt_tokens_details"), dict) else 0
    reasoning = ((u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0) if isinstance(
        u.get("completion_tokens_details"), dict) else 0
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": outp, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": int(u.get("total_tokens") or inp + outp)}


def _status(finish_reason: Any) -> tuple[str, dict[str, Any] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _response(request: dict[str, Any], rid: str, created: float, model: str, status: str,
              output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
              incomplete: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Response object, the request's settings echoed as a Responses server does."""
    return {
        "id": rid, "object": "response", "created_at": created, "status": status,
        "completed_at": time.time() if status in ("completed", "incomplete") else None,
        "error": None, "incomplete_details": incomplete,
        "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {}, "model": model or request.get("model") or "",
        "output": output, "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": request.get("reasoning"),
        "store": False, "temperature": request.get("temperature"), "text": request.get("text") or
        {"format": {"type": "text"}}, "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [], "top_p": request.get("top_p"), "truncation": "disabled",
        "usage": usage, "user": request.get("user"), "background": False,
    }


def _message_item(iid: str, text: str, refusal: str | None, status: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or not refusal:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": iid, "status": status, "role": "assistant", "content": content}


def _reasoning_item(iid: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": iid, "summary": [], "status": status,
            "content": [{"type": "reasoning_text", "text": text}]}


def _call_item(iid: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": iid, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def response_from_chat(chat: dict[str, Any], request: dict[str, Any], rid: str | None = None) -> dict[str, Any]:
    """The Response object for a (non-streamed) chat completion of `chat_request(request)`."""
    rid = rid or new_response_id()
    choices = [c for c in chat.get("choices") or [] if isinstance(c, dict)]
    choice = min(choices, key=lambda c: c.get("index", 0)) if choices else {}
    msg = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    output: list[dict[str, Any]] = []
    tag = rid.removeprefix("resp_")
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning_item(f"rs_{tag}", reasoning, "completed"))
    text, refusal = content_text(msg.get("content")), msg.get("refusal")
    calls = [c for c in msg.get("tool_calls") or [] if isinstance(c, dict)]
    if text or refusal or not calls:
        output.append(_message_item(f"msg_{tag}", text, refusal if isinstance(refusal, str) else None, "completed"))
    for j, c in enumerate(calls):
        fn = c.get("function") or {}
        output.append(_call_item(f"fc_{tag}_{j}", c.get("id") or f"call_{tag}_{j}", fn.get("name") or "",
                                 fn.get("arguments") or "", "completed"))
    status, incomplete = _status(choice.get("finish_reason"))
    created = chat.get("created") if isinstance(chat.get("created"), (int, float)) else time.time()
    return _response(request, rid, created, str(chat.get("model") or ""), status, output,
                     _usage(chat.get("usage")), incomplete)


# -- streams ----------------------------------------------------------------------------------


class StreamBridge:
    """Chat completion chunks in, `response.*` events out (the order a Responses
    server sends them: created, in_progress, per output item added → part added →
    deltas → done events, then completed)."""

    def __init__(self, request: dict[str, Any], rid: str | None = None):
        self.request = request
        self.id = rid or new_response_id()
        self.tag = self.id.removeprefix("resp_")
        self.created = time.time()
        self.model = str(request.get("model") or "")
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self._open: int | None = None  # output index of the item being streamed
        self._calls: dict[int, int] = {}  # chat tool-call index → output index
        self.usage: dict[str, Any] | None = None
        self.finish_reason: Any = None

    def event(self, typ: str, **fields: Any) -> dict[str, Any]:
        ev = {"type": typ, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def _snapshot(self, status: str, incomplete: dict[str, Any] | None = None) -> dict[str, Any]:
        return _response(self.request, self.id, self.created, self.model, status,
                         json.loads(json.dumps(self.output)) if status != "in_progress" else [],
                         self.usage, incomplete)

    def start(self) -> list[dict[str, Any]]:
        return [self.event("response.created", response=self._snapshot("in_progress")),
                self.event("response.in_progress", response=self._snapshot("in_progress"))]

    # items -----------------------------------------------------------------------------------
    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        oi, item, self._open = self._open, self.output[self._open], None
        item["status"] = "completed"
        evs = []
        if item["type"] == "message":
            part = item["content"][0]
            evs.append(self.event("response.output_text.done", item_id=item["id"], output_index=oi,
                                  content_index=0, text=part["text"], logprobs=[]))
            evs.append(self.event("response.content_part.done", item_id=item["id"], output_index=oi,
                                  content_index=0, part=dict(part)))
        elif item["type"] == "reasoning":
            part = item["content"][0]
            evs.append(self.event("response.reasoning_text.done", item_id=item["id"], output_index=oi,
                                  content_index=0, text=part["text"]))
        elif item["type"] == "function_call":
            evs.append(self.event("response.function_call_arguments.done", item_id=item["id"], output_index=oi,
                                  name=item["name"], arguments=item["arguments"]))
        evs.append(self.event("response.output_item.done", output_index=oi, item=json.loads(json.dumps(item))))
        return evs

    def _open_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        evs = self._close()
        self.output.append(item)
        self._open = oi = len(self.output) - 1
        added = json.loads(json.dumps(item))
        if item["type"] in ("message", "reasoning"):
            added["content"] = []
        evs.append(self.event("response.output_item.added", output_index=oi, item=added))
        if item["type"] == "message":
            evs.append(self.event("response.content_part.added", item_id=item["id"], output_index=oi,
                                  content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                         "logprobs": []}))
        return evs

    def _text(self, typ: str, delta: str) -> list[dict[str, Any]]:
        evs: list[dict[str, Any]] = []
        cur = self.output[self._open] if self._open is not None else None
        if cur is None or cur["type"] != typ:
            n = len(self.output)
            item = (_message_item(f"msg_{self.tag}_{n}", "", None, "in_progress") if typ == "message"
                    else _reasoning_item(f"rs_{self.tag}_{n}", "", "in_progress"))
            evs += self._open_item(item)
            cur = item
        oi = self._open
        cur["content"][0]["text"] += delta
        name = "response.output_text.delta" if typ == "message" else "response.reasoning_text.delta"
        extra = {"logprobs": []} if typ == "message" else {}
        evs.append(self.event(name, item_id=cur["id"], output_index=oi, content_index=0, delta=delta, **extra))
        return evs

    def _call(self, tc: dict[str, Any]) -> list[dict[str, Any]]:
        evs: list[dict[str, Any]] = []
        idx = tc.get("index", 0) if isinstance(tc.get("index"), int) else 0
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        if idx not in self._calls:
            n = len(self.output)
            evs += self._open_item(_call_item(f"fc_{self.tag}_{n}", tc.get("id") or f"call_{self.tag}_{n}",
                                              fn.get("name") or "", "", "in_progress"))
            self._calls[idx] = self._open  # type: ignore[assignment]
        oi = self._calls[idx]
        item = self.output[oi]
        if fn.get("name") and not item["name"]:
            item["name"] = fn["name"]
        delta = fn.get("arguments")
        if isinstance(delta, str) and delta:
            item["arguments"] += delta
            evs.append(self.event("response.function_call_arguments.delta", item_id=item["id"], output_index=oi,
                                  delta=delta))
        return evs

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        """The events one chat completion chunk makes."""
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        if chunk.get("usage"):
            self.usage = _usage(chunk["usage"])
        evs: list[dict[str, Any]] = []
        for ch in chunk.get("choices") or []:
            if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                continue  # a Response has one answer
            delta = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                evs += self._text("reasoning", reasoning)
            text = content_text(delta.get("content"))
            if text:
                evs += self._text("message", text)
            for tc in delta.get("tool_calls") or []:
                if isinstance(tc, dict):
                    evs += self._call(tc)
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return evs

    def finish(self) -> list[dict[str, Any]]:
        """Close the open item and complete the response."""
        evs = self._close()
        if not self.output:  # an empty answer is still one (empty) message
            evs += self._open_item(_message_item(f"msg_{self.tag}_0", "", None, "in_progress")) + self._close()
        status, incomplete = _status(self.finish_reason)
        typ = "response.completed" if status == "completed" else "response.incomplete"
        evs.append(self.event(typ, response=self._snapshot(status, incomplete)))
        return evs
