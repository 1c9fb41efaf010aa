"""The examples in examples/langchain/ run end to end against the real local model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "langchain"


def run_example(name: str, server) -> str:
    env = dict(os.environ, PROMPTGUARD_LLM_BASE_URL=server.base_url, PROMPTGUARD_LLM_MODEL=server.model,
               PROMPTGUARD_LLM_MAX_TOKENS="8", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, str(EXAMPLES / name)], env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_few_shot_cot_example(llama_server):
    out = run_example("few_shot_cot.py", llama_server)
    assert "[answer] clean few-shot CoT chain:" in out
    assert "[blocked] string few-shot prompt with an injected instruction" in out
    assert "on demonstration[" in out  # the injected instruction is located in its demonstration


def test_rag_poisoned_example(llama_server):
    out = run_example("rag_poisoned.py", llama_server)
    assert "[answer] clean question:" in out
    assert "[blocked] question that retrieves the planted page: promptguard blocked a retrieved document" in out
    assert "[blocked] question that retrieves the smuggled page (handler)" in out
    assert "[sanitize] retrieved documents (runnable)" in out
    assert "after sanitize:" in out
