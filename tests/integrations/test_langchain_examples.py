"""The examples in examples/langchain/ run end to end against the real local model.

They run in this process (runpy) so that torch, LangChain and the embedding model
are loaded once for the whole test session."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "langchain"


def run_example(name: str, server, monkeypatch, capsys) -> str:
    monkeypatch.setenv("PROMPTGUARD_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("PROMPTGUARD_LLM_MODEL", server.model)
    monkeypatch.setenv("PROMPTGUARD_LLM_MAX_TOKENS", "8")
    monkeypatch.delenv("PROMPTGUARD_POLICY", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_few_shot_cot_example(llama_server, monkeypatch, capsys):
    out = run_example("few_shot_cot.py", llama_server, monkeypatch, capsys)
    assert "[answer] clean few-shot CoT chain:" in out
    assert "[blocked] string few-shot prompt with an injected instruction" in out
    assert "on demonstration[" in out  # the injected instruction is located in its demonstration


def test_rag_poisoned_example(llama_server, monkeypatch, capsys):
    out = run_example("rag_poisoned.py", llama_server, monkeypatch, capsys)
    assert "[answer] clean question:" in out
    assert "[blocked] question that retrieves the planted page: promptguard blocked a retrieved document" in out
    assert "[blocked] question that retrieves the smuggled page (handler)" in out
    assert "[sanitize] retrieved documents (runnable)" in out
    assert "after sanitize:" in out
