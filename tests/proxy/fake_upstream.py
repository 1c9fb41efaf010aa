"""A FAKE OpenAI-compatible upstream for testing the proxy's own behaviour.

It is not a model: it echoes the request back (the last user message, or the prompt)
in the response shapes of OpenAI / vLLM (including vLLM's extra fields such as
`stop_reason`, `prompt_logprobs`, `kv_transfer_params`), streamed as server-sent
events when asked. The `model` field picks a behaviour, so tests can make the
upstream fail in each way the proxy must survive:

- `fake-echo` (default): answers with the last user message / the prompt;
- `fake-say:<text>`: answers with <text>;
- `fake-slow:<seconds>`: waits before answering;
- `fake-stall:<seconds>`: (stream) sends a few chunks, then stalls;
- `fake-cut`: (stream) closes the stream without `[DONE]`; (non-stream) truncated JSON;
- `fake-garbage`: answers 200 with a body that is not JSON / events that are not JSON;
- `fake-500`, `fake-503`: answers with that status;
- `fake-404`: answers 404 in the OpenAI error format (a client error to pass through);
- `fake-tool:<arguments>`: (chat) answers with one tool call `fetch(<arguments>)` and no
  text; streamed as tool-call deltas a few characters at a time;
- `fake-trickle:<seconds>`: answers a little at a time (a chunk every 0.25 s, streamed or
  not) for that long: each read is quick, the whole answer is slow.

Everything that reaches it is logged in `state`: parsed bodies, raw bodies, headers, paths.

`POST /v1/responses` speaks the Responses API natively (plain and streamed, the event
order of OpenAI's server; it stands in for vLLM or OpenAI, which the tests cannot
run), echoing the last user input, with these extra models:

- `fake-call:<name>:<json arguments>`: answers with a `function_call` of that tool,
  unless the last input item is a `function_call_output`, which it then echoes
  (`tool said: <output>`), so an agent loop ends;
- `fake-reason:<text>`: a reasoning item whose summary is <text>, then the echo;
- `fake-say:`, `fake-slow:`, `fake-cut`, `fake-500` as above. `{}` is refused with 400 (the
  proxy's probe of whether /v1/responses exists).

End-to-end tests use the real llama.cpp server instead (tests/llm_server.py); this
fake serves the fault tests, the fuzz test and the overhead benchmark, where a
fast, controllable upstream makes the proxy's own behaviour visible.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["create_fake_upstream"]


def _answer_for(body: dict[str, Any]) -> str:
    model = str(body.get("model") or "")
    if model.startswith("fake-say:"):
        return model[len("fake-say:"):]
    if "messages" in body:
        for m in reversed(body.get("messages") or []):
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    return c
                if isinstance(c, list):
                    return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        return ""
    p = body.get("prompt")
    return p if isinstance(p, str) else " ".join(x for x in (p or []) if isinstance(x, str))


def _input_text(body: dict[str, Any]) -> str:
    """The last user text of a Responses request (a string input, or the last user message)."""
    inp = body.get("input")
    if isinstance(inp, str):
        return inp
    for item in reversed(inp or []):
        if isinstance(item, dict) and item.get("role") == "user":
            c = item.get("content")
            if isinstance(c, str):
                return c
            return " ".join(p.get("text", "") for p in c or [] if isinstance(p, dict))
    return ""


def _responses_output(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    out: list[dict[str, Any]] = []
    if model.startswith("fake-reason:"):
        out.append({"type": "reasoning", "id": f"rs_{tag}", "status": "completed",
                    "summary": [{"type": "summary_text", "text": model[len("fake-reason:"):]}]})
    items = body.get("input") if isinstance(body.get("input"), list) else []
    last = items[-1] if items and isinstance(items[-1], dict) else {}
    if model.startswith("fake-call:") and last.get("type") != "function_call_output":
        _, name, args = model.split(":", 2)
        return out + [{"type": "function_call", "id": f"fc_{tag}", "call_id": f"call_{tag}", "name": name,
                       "arguments": args, "status": "completed"}]
    if last.get("type") == "function_call_output":
        o = last.get("output")
        text = "tool said: " + (o if isinstance(o, str) else json.dumps(o))
    elif model.startswith("fake-say:"):
        text = model[len("fake-say:"):]
    else:
        text = _input_text(body)
    return out + [{"type": "message", "id": f"msg_{tag}", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}]


def _pieces(text: str) -> list[str]:
    """Split into word-sized chunks the way token streams arrive (spaces kept)."""
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch == " " and len(cur) > 1:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def create_fake_upstream() -> Starlette:
    # what reached this upstream: bodies, headers, and every path as it arrived (raw)
    state: dict[str, Any] = {"requests": [], "headers": [], "paths": [], "raw": []}

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": "fake-echo", "object": "model", "created": 0, "owned_by": "promptguard-tests",
             "root": "fake-echo", "parent": None, "max_model_len": 4096, "permission": []}]})

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        inp = body.get("input")
        n = len(inp) if isinstance(inp, list) else 1
        return JSONResponse({"object": "list", "model": body.get("model"), "data": [
            {"object": "embedding", "index": i, "embedding": [0.0, 1.0, 0.5]} for i in range(n)],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    async def handle(request: Request) -> Response:
        chat = request.url.path.endswith("/chat/completions")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": {"message": "invalid JSON", "type": "BadRequestError", "code": 400}},
                                status_code=400)
        state["requests"].append(body)
        state["raw"].append(raw)
        state["headers"].append(dict(request.headers))
        state["paths"].append(request.scope.get("raw_path", b"").decode("latin-1"))
        model = str(body.get("model") or "fake-echo")
        if model.startswith("fake-slow:"):
            await asyncio.sleep(float(model.split(":", 1)[1]))
        if model in ("fake-500", "fake-503"):
            return JSONResponse({"error": {"message": "upstream is sick", "type": "InternalServerError",
                                           "code": int(model[-3:])}}, status_code=int(model[-3:]))
        if model == "fake-404":
            return JSONResponse({"error": {"message": f"The model `{model}` does not exist.",
                                           "type": "NotFoundError", "code": 404}}, status_code=404)
        answer = _answer_for(body)
        n = body.get("n") if isinstance(body.get("n"), int) and 0 < body.get("n") <= 8 else 1
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:16]
        created = int(time.time())
        usage = {"prompt_tokens": len(str(body).split()), "completion_tokens": len(answer.split()),
                 "total_tokens": len(str(body).split()) + len(answer.split()), "prompt_tokens_details": None}
        if body.get("stream") is True:
            return StreamingResponse(_stream(body, chat, answer, n, rid, created, model, usage),
                                     media_type="text/event-stream")
        if model.startswith("fake-trickle:"):
            return StreamingResponse(_trickle(float(model.split(":", 1)[1])), media_type="application/json")
        if model == "fake-garbage":
            return Response(b"<html>502 Bad Gateway (not JSON)</html>", media_type="application/json")
        if chat:
            calls = [_tool_call(model)] if model.startswith("fake-tool:") else []
            choices = [{"index": i, "message": {"role": "assistant", "content": None if calls else answer,
                                                 "refusal": None, "annotations": None, "audio": None,
                                                 "function_call": None, "tool_calls": calls,
                                                 "reasoning_content": None},
                        "logprobs": None, "finish_reason": "stop", "stop_reason": None} for i in range(n)]
            out = {"id": rid, "object": "chat.completion", "created": created, "model": model,
                   "choices": choices, "service_tier": None, "system_fingerprint": None, "usage": usage,
                   "prompt_logprobs": None, "prompt_token_ids": None, "kv_transfer_params": None}
        else:
            choices = [{"index": i, "text": answer, "logprobs": None, "finish_reason": "stop",
                        "stop_reason": None, "prompt_logprobs": None} for i in range(n)]
            out = {"id": rid, "object": "text_completion", "created": created, "model": model,
                   "choices": choices, "service_tier": None, "system_fingerprint": None, "usage": usage,
                   "kv_transfer_params": None}
        data = json.dumps(out).encode()
        if model == "fake-cut":
            data = data[: len(data) // 2]
        return Response(data, media_type="application/json")

    async def _stream(body: dict[str, Any], chat: bool, answer: str, n: int, rid: str, created: int,
                      model: str, usage: dict[str, Any]) -> AsyncIterator[bytes]:
        obj = "chat.completion.chunk" if chat else "text_completion"

        def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            d = {"id": rid, "object": obj, "created": created, "model": model, "choices": choices, **extra}
            return b"data: " + json.dumps(d).encode() + b"\n\n"

        if model == "fake-garbage":
            yield b"data: {this is not json\n\n"
            return
        if chat:
            yield ev([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                       "finish_reason": None} for i in range(n)])
        if chat and model.startswith("fake-tool:"):
            call = _tool_call(model)
            args = call["function"]["arguments"]
            yield ev([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                             "function": {"name": "fetch", "arguments": ""}}]}}])
            for k in range(0, len(args), 6):
                yield ev([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args[k:k + 6]}}]}}])
                await asyncio.sleep(0)
            yield ev([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
            yield b"data: [DONE]\n\n"
            return
        if model.startswith("fake-trickle:"):
            end = time.monotonic() + float(model.split(":", 1)[1])
            while time.monotonic() < end:
                yield ev([{"index": 0, "delta": {"content": "."}, "finish_reason": None}])
                await asyncio.sleep(0.25)
            yield b"data: [DONE]\n\n"
            return
        pieces = _pieces(answer)
        for k, piece in enumerate(pieces):
            if model.startswith("fake-stall:") and k == 2:
                await asyncio.sleep(float(model.split(":", 1)[1]))
            if model == "fake-cut" and k == max(1, len(pieces) // 2):
                return
            for i in range(n):
                if chat:
                    yield ev([{"index": i, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
                else:
                    yield ev([{"index": i, "text": piece, "logprobs": None, "finish_reason": None,
                               "stop_reason": None}])
            await asyncio.sleep(0)
        for i in range(n):
            if chat:
                yield ev([{"index": i, "delta": {}, "logprobs": None, "finish_reason": "stop", "stop_reason": None}])
            else:
                yield ev([{"index": i, "text": "", "logprobs": None, "finish_reason": "stop", "stop_reason": None}])
        so = body.get("stream_options")
        if isinstance(so, dict) and so.get("include_usage"):
            yield ev([], usage=usage)
        yield b"data: [DONE]\n\n"

    def _tool_call(model: str) -> dict[str, Any]:
        return {"id": "call_1", "type": "function",
                "function": {"name": "fetch", "arguments": model[len("fake-tool:"):]}}

    async def _trickle(seconds: float) -> AsyncIterator[bytes]:
        end = time.monotonic() + seconds
        yield b'{"id": "x", "object": "chat.completion", "choices": ['
        while time.monotonic() < end:
            yield b" "
            await asyncio.sleep(0.25)
        yield b"]}"

    async def responses(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        state["paths"].append(request.scope.get("raw_path", b"").decode("latin-1"))
        if not isinstance(body, dict) or "model" not in body:
            return JSONResponse({"error": {"message": "Missing required parameter: 'model'.",
                                           "type": "invalid_request_error", "param": "model",
                                           "code": "missing_required_parameter"}}, status_code=400)
        state["requests"].append(body)
        state["raw"].append(raw)
        state["headers"].append(dict(request.headers))
        model = str(body["model"])
        if model.startswith("fake-slow:"):
            await asyncio.sleep(float(model.split(":", 1)[1]))
        if model in ("fake-500", "fake-503"):
            return JSONResponse({"error": {"message": "upstream is sick", "type": "server_error"}},
                                status_code=int(model[-3:]))
        output = _responses_output(body, model)
        rid = "resp_fake" + uuid.uuid4().hex[:12]
        words = len(json.dumps(body).split())
        out_words = sum(len(json.dumps(o).split()) for o in output)
        resp = {"id": rid, "object": "response", "created_at": time.time(), "status": "completed", "error": None,
                "incomplete_details": None, "instructions": body.get("instructions"), "model": model,
                "output": output, "parallel_tool_calls": True, "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [], "temperature": body.get("temperature"), "top_p": None,
                "store": body.get("store", True), "previous_response_id": body.get("previous_response_id"),
                "usage": {"input_tokens": words, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": out_words, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": words + out_words},
                "metadata": {}, "text": {"format": {"type": "text"}}, "truncation": "disabled"}
        if body.get("stream") is True:
            return StreamingResponse(_responses_stream(resp, model), media_type="text/event-stream")
        data = json.dumps(resp).encode()
        if model == "fake-cut":
            data = data[: len(data) // 2]
        return Response(data, media_type="application/json")

    async def _responses_stream(resp: dict[str, Any], model: str) -> AsyncIterator[bytes]:
        seq = iter(range(10_000))

        def ev(typ: str, **fields: Any) -> bytes:
            return (f"event: {typ}\ndata: " + json.dumps({"type": typ, "sequence_number": next(seq), **fields})
                    + "\n\n").encode()

        shell = {**resp, "status": "in_progress", "output": [], "usage": None}
        yield ev("response.created", response=shell)
        yield ev("response.in_progress", response=shell)
        for oi, item in enumerate(resp["output"]):
            iid = item["id"]
            if item["type"] == "message":
                yield ev("response.output_item.added", output_index=oi,
                         item={**item, "status": "in_progress", "content": []})
                part = item["content"][0]
                yield ev("response.content_part.added", item_id=iid, output_index=oi, content_index=0,
                         part={**part, "text": ""})
                pieces = _pieces(part["text"])
                for k, piece in enumerate(pieces):
                    if model == "fake-cut" and k == max(1, len(pieces) // 2):
                        return
                    yield ev("response.output_text.delta", item_id=iid, output_index=oi, content_index=0,
                             delta=piece, logprobs=[])
                    await asyncio.sleep(0)
                yield ev("response.output_text.done", item_id=iid, output_index=oi, content_index=0,
                         text=part["text"], logprobs=[])
                yield ev("response.content_part.done", item_id=iid, output_index=oi, content_index=0, part=part)
            elif item["type"] == "function_call":
                yield ev("response.output_item.added", output_index=oi, item={**item, "arguments": "",
                                                                              "status": "in_progress"})
                for piece in _pieces(item["arguments"]):
                    yield ev("response.function_call_arguments.delta", item_id=iid, output_index=oi, delta=piece)
                yield ev("response.function_call_arguments.done", item_id=iid, output_index=oi,
                         name=item["name"], arguments=item["arguments"])
            elif item["type"] == "reasoning":
                yield ev("response.output_item.added", output_index=oi, item={**item, "summary": []})
                text = item["summary"][0]["text"]
                yield ev("response.reasoning_summary_part.added", item_id=iid, output_index=oi, summary_index=0,
                         part={"type": "summary_text", "text": ""})
                for piece in _pieces(text):
                    yield ev("response.reasoning_summary_text.delta", item_id=iid, output_index=oi,
                             summary_index=0, delta=piece)
                yield ev("response.reasoning_summary_text.done", item_id=iid, output_index=oi, summary_index=0,
                         text=text)
                yield ev("response.reasoning_summary_part.done", item_id=iid, output_index=oi, summary_index=0,
                         part=item["summary"][0])
            yield ev("response.output_item.done", output_index=oi, item=item)
        yield ev("response.completed", response=resp)

    async def anything(request: Request) -> Response:
        """Any other route: logged, answered 200 (so a request that got past the proxy shows)."""
        state["paths"].append(request.scope.get("raw_path", b"").decode("latin-1"))
        return JSONResponse({"object": "fake.other", "path": request.url.path})

    app = Starlette(routes=[
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/chat/completions", handle, methods=["POST"]),
        Route("/v1/completions", handle, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/{rest:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ])
    app.state.fake = state
    return app
