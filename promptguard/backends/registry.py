"""`create_backend(spec)`: one string names a backend (CLI flags, policy files).

| spec | backend |
|---|---|
| `http://host:port/v1`, `https://...` | `OpenAIHTTPBackend` (vLLM, llama.cpp server, OpenAI) |
| `llamacpp` | `LlamaCppBackend` with the bundled SmolLM2-135M-Instruct GGUF |
| `llamacpp:/path/model.gguf` | `LlamaCppBackend` with that file |
| `transformers:/dir` or `transformers:/path/model.gguf` | `TransformersBackend` |
| `vllm:org/model` | `VLLMBackend` (needs `promptguard[vllm]` and a GPU) |

Keyword options go to the backend's constructor (`timeout`, `model`, `adapter`, ...).
"""

from __future__ import annotations

from typing import Any

from .base import LLMBackend

__all__ = ["create_backend", "SCHEMES"]

SCHEMES = ("http", "https", "llamacpp", "transformers", "vllm")


def create_backend(spec: str, **options: Any) -> LLMBackend:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("backend spec is empty")
    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        from .openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend(spec, **options)
    scheme, sep, rest = spec.partition(":")
    if scheme == "llamacpp":
        from .llamacpp import LlamaCppBackend

        return LlamaCppBackend(rest or None, **options)
    if scheme == "transformers":
        if not rest:
            raise ValueError("transformers backend needs a path: transformers:/path/to/model")
        from .transformers_local import TransformersBackend

        return TransformersBackend(rest, **options)
    if scheme == "vllm":
        if not rest:
            raise ValueError("vllm backend needs a model: vllm:org/model")
        from .vllm import VLLMBackend

        return VLLMBackend(rest, **options)
    raise ValueError(
        f"unknown backend {spec!r}: use an http(s):// URL, 'llamacpp[:/path.gguf]', "
        "'transformers:/path' or 'vllm:model'"
    )
