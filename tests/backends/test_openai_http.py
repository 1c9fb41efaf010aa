"""OpenAIHTTPBackend.

The first group talks to an in-test upstream reproducing vLLM's response shapes, or
to a socket that never answers: it tests our client's control flow (parsing,
streaming, retries, errors, timeouts). The last group talks to the real llama.cpp
server (SmolLM2) started on 127.0.0.1 by the `llama_server` fixture.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from promptguard.backends import (
    BackendError,
    BackendHTTPError,
    BackendTimeout,
    BadResponse,
    CompletionRequest,
)
from promptguard.backends.openai_http import OpenAIHTTPBackend
from tests.backends import vllm_like

CHAT = CompletionRequest(messages=({"role": "user", "content": "hi"},), max_tokens=5)
PROMPT = CompletionRequest(prompt="Q: 1+1?\nA:", max_tokens=5, stop=("\n",))


def backend(handler, **kw) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend("http://upstream.test/v1", transport=vllm_like.transport(handler),
                             backoff=0.01, **kw)


async def test_vllm_chat_and_completion_shapes():
    seen = []

    def h(req, body):
        seen.append((req.url.path, body))
        if req.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json=vllm_like.chat_response("Hello there"))
        return httpx.Response(200, json=vllm_like.completion_response(" 2"))

    b = backend(h)
    c = await b.complete(CHAT)
    assert c.text == "Hello there" and c.finish_reason == "stop" and c.usage["completion_tokens"] == 5
    assert c.raw["kv_transfer_params"] is None  # extra fields are kept, not rejected
    p = await b.complete(PROMPT)
    assert p.text == " 2" and p.finish_reason == "length"
    # the model name came from /v1/models (vLLM requires it); sampling fields were sent
    assert seen[0][1]["model"] == "org/model" and seen[0][1]["temperature"] == 0.0
    assert seen[1][0].endswith("/completions") and seen[1][1]["stop"] == ["\n"]
    await b.aclose()


async def test_vllm_streaming_shapes():
    def h(req, body):
        assert body["stream"] is True
        data = vllm_like.chat_stream(["Hel", "lo", "!"]) if "messages" in body else \
            vllm_like.completion_stream([" 4", "2"])
        return httpx.Response(200, content=data, headers={"content-type": "text/event-stream"})

    b = backend(h)
    assert "".join([p async for p in b.stream(CHAT)]) == "Hello!"  # reasoning/usage chunks skipped
    assert "".join([p async for p in b.stream(PROMPT)]) == " 42"


async def test_retries_on_503_then_succeeds():
    calls = []

    def h(req, body):
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503, json={"object": "error", "message": "busy", "code": 503})
        return httpx.Response(200, json=vllm_like.chat_response("ok"))

    assert (await backend(h, retries=2).complete(CHAT)).text == "ok"
    assert len(calls) == 3


async def test_gives_up_after_retries_and_does_not_retry_400():
    calls = []

    def h503(req, body):
        calls.append(1)
        return httpx.Response(503, text="overloaded")

    with pytest.raises(BackendHTTPError) as e:
        await backend(h503, retries=1).complete(CHAT)
    assert e.value.status == 503 and len(calls) == 2

    calls.clear()

    def h400(req, body):
        calls.append(1)
        # vLLM's error shape
        return httpx.Response(400, json={"object": "error", "message": "max_tokens is too large",
                                         "type": "BadRequestError", "param": None, "code": 400})

    with pytest.raises(BackendHTTPError, match="max_tokens is too large"):
        await backend(h400, retries=3).complete(CHAT)
    assert len(calls) == 1


@pytest.mark.parametrize("resp, match", [
    (httpx.Response(200, text="<html>gateway</html>"), "not JSON"),
    (httpx.Response(200, json={"choices": []}), "no choices"),
    (httpx.Response(200, json=[1, 2]), "not an object"),
    (httpx.Response(200, json={"error": {"message": "boom"}}), "boom"),
    (httpx.Response(200, json={"choices": [{"message": "str"}]}), "no message"),
])
async def test_garbage_responses_are_bad_response(resp, match):
    with pytest.raises(BadResponse, match=match):
        await backend(lambda r, b: resp).complete(CHAT)


async def test_empty_answer_is_empty_text_not_an_error():
    def h(req, body):
        r = vllm_like.chat_response("")
        r["choices"][0]["message"]["content"] = None
        return httpx.Response(200, json=r)

    assert (await backend(h).complete(CHAT)).text == ""


async def test_connection_refused_is_a_backend_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIHTTPBackend(f"http://127.0.0.1:{port}/v1", model="m", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(BackendError):
        await b.complete(CHAT)


async def test_read_timeout_against_a_silent_server():
    async def silent(reader, writer):
        await reader.read(1024)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    b = OpenAIHTTPBackend(f"http://127.0.0.1:{port}/v1", model="m", timeout=0.3, retries=2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BackendTimeout):
        await b.complete(CHAT)
    assert loop.time() - t0 < 2.0  # a read timeout is not retried
    await b.aclose()
    server.close()


# -- the real local server ----------------------------------------------------------------


@pytest.mark.slow
async def test_real_llama_server_chat_completion_and_stream(llama_server):
    b = OpenAIHTTPBackend(llama_server.base_url, timeout=300)
    c = await b.complete(CompletionRequest(
        messages=({"role": "user", "content": "What is 2 + 3? Reply with the number only."},),
        max_tokens=12))
    assert c.text.strip() and c.usage.get("completion_tokens", 0) <= 12
    # temperature 0 with a seed is repeatable on this upstream
    again = await b.complete(CompletionRequest(
        messages=({"role": "user", "content": "What is 2 + 3? Reply with the number only."},),
        max_tokens=12))
    assert again.text == c.text
    p = await b.complete(CompletionRequest(prompt="The capital of France is", max_tokens=4))
    assert isinstance(p.text, str) and p.finish_reason in ("stop", "length")
    streamed = "".join([x async for x in b.stream(CompletionRequest(prompt="1, 2, 3,", max_tokens=6))])
    assert streamed.strip()
    await b.aclose()


@pytest.mark.slow
async def test_real_llama_server_rejects_an_oversized_prompt(llama_server):
    b = OpenAIHTTPBackend(llama_server.base_url, timeout=300, retries=0)
    huge = "word " * 6000  # beyond the server's 4096-token context
    with pytest.raises(BackendError):
        await b.complete(CompletionRequest(prompt=huge, max_tokens=4))
