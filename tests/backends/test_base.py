"""The request/completion types and the sync helper."""

from __future__ import annotations

import asyncio

import pytest

from promptguard.backends import (
    BackendError,
    Completion,
    CompletionRequest,
    FunctionBackend,
    LLMBackend,
    complete_sync,
    create_backend,
    run_sync,
)


def test_request_needs_exactly_one_input():
    with pytest.raises(ValueError):
        CompletionRequest()
    with pytest.raises(ValueError):
        CompletionRequest(prompt="x", messages=({"role": "user", "content": "y"},))
    with pytest.raises(ValueError):
        CompletionRequest(prompt="x", max_tokens=0)
    with pytest.raises(ValueError):
        CompletionRequest(prompt="x", temperature=-1)


def test_from_body_chat_keeps_extra_fields_and_defaults():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7,
            "stop": "\n", "response_format": {"type": "text"}, "stream": True}
    r = CompletionRequest.from_body(body)
    assert r.is_chat and r.max_tokens == 7 and r.stop == ("\n",) and r.model == "m"
    assert r.temperature == 1.0  # the OpenAI default when absent
    assert r.seed is None
    out = r.to_body()
    assert out["response_format"] == {"type": "text"} and "stream" not in out
    assert out["messages"] == body["messages"]


def test_from_body_completion_and_errors():
    r = CompletionRequest.from_body({"prompt": ["only one"], "temperature": 0, "seed": 3})
    assert r.prompt == "only one" and r.temperature == 0.0 and r.seed == 3
    assert r.to_body(default_model="d")["model"] == "d"
    for bad in ({}, {"prompt": ["a", "b"]}, {"prompt": 3}, {"messages": "x"}, []):
        with pytest.raises(ValueError):
            CompletionRequest.from_body(bad)  # type: ignore[arg-type]


def test_as_prompt_renders_chat():
    r = CompletionRequest(messages=({"role": "system", "content": "S"}, {"role": "user", "content": "U"}))
    assert r.as_prompt().endswith("assistant:") and "user: U" in r.as_prompt()
    assert CompletionRequest(prompt="p").as_messages() == [{"role": "user", "content": "p"}]


def test_function_backend_is_a_backend_and_sync_helper_works_inside_a_loop():
    b = FunctionBackend(lambda req: "ok")
    assert isinstance(b, LLMBackend)
    assert complete_sync(b, CompletionRequest(prompt="x")).text == "ok"

    async def inner():
        # a sync caller inside a running loop must not call asyncio.run on that loop
        return complete_sync(b, CompletionRequest(prompt="x")).text

    assert asyncio.run(inner()) == "ok"
    assert run_sync(asyncio.sleep(0, result=5)) == 5


async def test_function_backend_wraps_errors_and_bad_returns():
    def boom(req):
        raise KeyError("nope")

    with pytest.raises(BackendError, match="KeyError"):
        await FunctionBackend(boom).complete(CompletionRequest(prompt="x"))
    with pytest.raises(BackendError, match="not text"):
        await FunctionBackend(lambda r: 42).complete(CompletionRequest(prompt="x"))
    c = Completion(text="t", finish_reason="length")
    assert (await FunctionBackend(lambda r: c).complete(CompletionRequest(prompt="x"))) is c


def test_registry_specs(tmp_path):
    from promptguard.backends.openai_http import OpenAIHTTPBackend
    from promptguard.backends.transformers_local import TransformersBackend
    from promptguard.backends.vllm import VLLMBackend

    h = create_backend("http://127.0.0.1:9/")
    assert isinstance(h, OpenAIHTTPBackend) and h.base_url == "http://127.0.0.1:9/v1"
    assert create_backend("https://api.example/v1/chat/completions").base_url == "https://api.example/v1"
    assert isinstance(create_backend(f"transformers:{tmp_path}"), TransformersBackend)
    assert isinstance(create_backend("vllm:org/model"), VLLMBackend)
    for bad in ("", "ftp://x", "transformers:", "vllm:", "nonsense"):
        with pytest.raises(ValueError):
            create_backend(bad)
