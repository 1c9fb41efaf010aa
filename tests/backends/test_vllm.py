"""VLLMBackend: the same interface contract as the other backends.

vLLM's wheel is a CUDA build that cannot run on CPU-only machines, so the contract
tests inject an engine object with vLLM's `LLM.generate`/`LLM.chat` shape: they test
our adapter's control flow (parameters, batching, order, errors). The real-vLLM test
is marked `gpu` and skips without CUDA and vllm.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import pytest

from promptguard.backends import BackendError, BackendUnavailable, CompletionRequest, create_backend
from promptguard.backends.vllm import VLLMBackend


@dataclass
class SP:  # vllm.SamplingParams' constructor shape
    max_tokens: int = 16
    temperature: float = 1.0
    seed: int | None = None
    stop: list | None = None
    top_p: float = 1.0


@dataclass
class Out:
    text: str
    token_ids: list
    finish_reason: str = "stop"


@dataclass
class ReqOut:
    prompt_token_ids: list
    outputs: list


@dataclass
class Engine:
    calls: list = field(default_factory=list)
    fail: bool = False

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(("generate", prompts, params))
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        return [ReqOut([1, 2], [Out(f"gen:{p}", [5] * min(3, sp.max_tokens))]) for p, sp in zip(prompts, params)]

    def chat(self, conversations, params, use_tqdm=True):
        self.calls.append(("chat", conversations, params))
        return [ReqOut([1], [Out(f"chat:{c[-1]['content']}", [7])]) for c in conversations]


async def test_contract_and_batching():
    eng = Engine()
    b = VLLMBackend("org/model", llm=eng, sampling_params_cls=SP)
    c = await b.complete(CompletionRequest(prompt="hi", max_tokens=2, stop=("\n",)))
    assert c.text == "gen:hi" and c.usage == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    sp = eng.calls[0][2][0]
    assert sp.temperature == 0.0 and sp.seed == 0 and sp.stop == ["\n"] and sp.max_tokens == 2
    reqs = [CompletionRequest(prompt="a"), CompletionRequest(messages=({"role": "user", "content": "b"},)),
            CompletionRequest(prompt="c")]
    outs = await b.complete_many(reqs)
    assert [o.text for o in outs] == ["gen:a", "chat:b", "gen:c"]  # input order kept
    assert [k for k, *_ in eng.calls[1:]] == ["chat", "generate"]  # one engine call per kind


async def test_engine_errors_are_backend_errors():
    b = VLLMBackend("org/model", llm=Engine(fail=True), sampling_params_cls=SP)
    with pytest.raises(BackendError, match="out of memory"):
        await b.complete(CompletionRequest(prompt="x"))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
async def test_without_vllm_installed_it_says_how_to_get_it():
    b = create_backend("vllm:org/model")
    with pytest.raises(BackendUnavailable, match=r"promptguard\[vllm\]"):
        await b.complete(CompletionRequest(prompt="x"))


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not _cuda(), reason="needs vllm and a CUDA GPU")
async def test_real_vllm_on_gpu(tmp_path):
    import os

    model = os.environ.get("PROMPTGUARD_VLLM_MODEL")
    if not model:
        pytest.skip("set PROMPTGUARD_VLLM_MODEL to a local model directory")
    b = create_backend(f"vllm:{model}", gpu_memory_utilization=0.3)
    outs = await b.complete_many([CompletionRequest(prompt="1, 2, 3,", max_tokens=4),
                                  CompletionRequest(messages=({"role": "user", "content": "Say hi."},), max_tokens=4)])
    assert len(outs) == 2 and all(isinstance(o.text, str) for o in outs)
