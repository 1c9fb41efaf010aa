"""TransformersBackend against the interface contract.

The model is a tiny randomly initialised Llama saved to a temporary directory with a
word-level tokenizer and a chat template: it goes through the real
`AutoModelForCausalLM`/`AutoTokenizer`/PEFT loading and generation code, but its
words are noise, so these tests check our control flow (loading, determinism, token
limits, stop strings, adapters, errors). The real SmolLM2 GGUF goes through this
backend in benchmarks/audit_victim.py.
"""

from __future__ import annotations

import asyncio

import pytest

from promptguard.backends import BackendUnavailable, CompletionRequest, create_backend

WORDS = ["hello", "world", "yes", "no", "the", "answer", "is", "one", "two", "stop", "cat", "dog"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("tiny-llama")
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "<pad>"] + WORDS + [":", "user", "assistant"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>", pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                          "{% if add_generation_prompt %}assistant : {% endif %}")
    fast.save_pretrained(d)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                   max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                                   pad_token_id=3)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(d)
    return d


def run(coro):
    return asyncio.run(coro)


def test_contract_on_a_tiny_model(tiny_model):
    b = create_backend(f"transformers:{tiny_model}")
    chat = CompletionRequest(messages=({"role": "user", "content": "hello world"},), max_tokens=5)
    c1, c2 = run(b.complete(chat)), run(b.complete(chat))
    assert isinstance(c1.text, str) and c1.text == c2.text  # greedy is deterministic
    assert c1.usage["completion_tokens"] <= 5 and c1.finish_reason in ("stop", "length")
    p = run(b.complete(CompletionRequest(prompt="the answer is", max_tokens=3)))
    assert p.usage["completion_tokens"] <= 3
    s1 = run(b.complete(CompletionRequest(prompt="the answer is", max_tokens=6, temperature=1.0, seed=7)))
    s2 = run(b.complete(CompletionRequest(prompt="the answer is", max_tokens=6, temperature=1.0, seed=7)))
    assert s1.text == s2.text  # seeded sampling repeats
    assert b.render(chat).startswith("user : hello world")


def test_stop_strings_cut_the_text(tiny_model):
    b = create_backend(f"transformers:{tiny_model}")
    full = run(b.complete(CompletionRequest(prompt="one two", max_tokens=8))).text
    words = full.split()
    if len(words) < 2:
        pytest.skip("the random model ended at once")
    cut = run(b.complete(CompletionRequest(prompt="one two", max_tokens=8, stop=(words[1],)))).text
    assert words[1] not in cut and len(cut) < len(full)


def test_peft_adapter_loads_over_the_base(tiny_model, tmp_path):
    peft = pytest.importorskip("peft")
    import transformers

    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                                     task_type="CAUSAL_LM"))
    lora.save_pretrained(tmp_path / "adapter")
    b = create_backend(f"transformers:{tiny_model}", adapter=str(tmp_path / "adapter"))
    out = run(b.complete(CompletionRequest(prompt="hello", max_tokens=3)))
    assert isinstance(out.text, str) and "+adapter" in b.name


def test_missing_or_bad_model_is_unavailable(tmp_path):
    with pytest.raises(BackendUnavailable):
        run(create_backend(f"transformers:{tmp_path / 'none'}").complete(CompletionRequest(prompt="x")))
    (tmp_path / "weights.bin").write_bytes(b"junk")
    with pytest.raises(BackendUnavailable):
        run(create_backend(f"transformers:{tmp_path / 'weights.bin'}").complete(CompletionRequest(prompt="x")))
    with pytest.raises(BackendUnavailable):
        run(create_backend(f"transformers:{tmp_path}").complete(CompletionRequest(prompt="x")))
