"""A minimal upstream that reproduces vLLM's OpenAI-API response and streaming shapes
(extra fields included: `stop_reason`, `prompt_logprobs`, `kv_transfer_params`,
`reasoning_content`, a usage-only final chunk). It exists to test *our* HTTP client's
control flow (parsing, retries, errors) without a GPU; real generations come from
the llama.cpp server tests."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import httpx


def chat_response(text: str, model: str = "org/model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-0e9f43a01be04a7e8b0ab7f1eadad022", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": None,
                                             "content": text, "tool_calls": []},
                     "logprobs": None, "finish_reason": "stop", "stop_reason": None}],
        "usage": {"prompt_tokens": 11, "total_tokens": 16, "completion_tokens": 5,
                  "prompt_tokens_details": None},
        "prompt_logprobs": None, "kv_transfer_params": None,
    }


def completion_response(text: str, model: str = "org/model") -> dict[str, Any]:
    return {
        "id": "cmpl-1", "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length",
                     "stop_reason": None, "prompt_logprobs": None}],
        "usage": {"prompt_tokens": 3, "total_tokens": 8, "completion_tokens": 5,
                  "prompt_tokens_details": None},
        "kv_transfer_params": None,
    }


def chat_stream(pieces: list[str], model: str = "org/model") -> bytes:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"reasoning_content": "thinking..."},
                              "logprobs": None, "finish_reason": None}]},
    ]
    for p in pieces:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": p}, "logprobs": None,
                                            "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {"content": ""}, "logprobs": None,
                                        "finish_reason": "stop", "stop_reason": None}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(pieces),
                                                    "total_tokens": 3 + len(pieces)}})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def completion_stream(pieces: list[str]) -> bytes:
    out = b""
    for p in pieces:
        c = {"id": "cmpl-s", "object": "text_completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "text": p, "logprobs": None, "finish_reason": None, "stop_reason": None}]}
        out += f"data: {json.dumps(c)}\n\n".encode()
    return out + b"data: [DONE]\n\n"


def transport(handler: Callable[[httpx.Request, dict], httpx.Response]) -> httpx.MockTransport:
    """A MockTransport whose handler gets the parsed JSON body too; `/v1/models` is served."""

    def h(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "org/model", "object": "model"}]})
        body = json.loads(req.content) if req.content else {}
        return handler(req, body)

    return httpx.MockTransport(h)
