"""Start the real local OpenAI-compatible LLM server (llama-cpp-python + SmolLM2) for tests.

One server per test session, on 127.0.0.1 and a free port; used by the answer-audit,
proxy and LangChain end-to-end tests. Tests skip with a reason when llama_cpp is
not installed (it is part of the `local` extra that scripts/setup installs).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    base_url: str  # ends in /v1
    model: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_llama_server(log_dir: Path, n_ctx: int = 4096, timeout: float = 120.0) -> LocalServer:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise RuntimeError("llama_cpp is not installed (pip install '.[local]')")
    from promptguard.models import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    port = free_port()
    log_path = log_dir / f"llama-server-{port}.log"
    log = open(log_path, "wb")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2", "--model_alias", "smollm2",
         "--seed", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama server exited ({proc.returncode}); see {log_path}:\n"
                               + log_path.read_text(errors="replace")[-2000:])
        try:
            if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                return LocalServer(base, "smollm2", proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"llama server did not start in {timeout:.0f}s; see {log_path}")
