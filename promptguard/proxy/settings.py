"""Proxy settings: a YAML file, then `PROMPTGUARD_*` environment variables, then
command-line flags (each overriding the one before).

Everything is validated when the app is built, so a bad setting fails at start-up
with its name (and, for the YAML file, its line), never on the first request.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..yamlutil import YamlError, _node_at

__all__ = ["ApiKey", "ProxySettings", "load_settings", "CONFIG_ENV"]

CONFIG_ENV = "PROMPTGUARD_CONFIG"
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("pg_config_file", default=None)


class ApiKey(BaseModel):
    """A proxy API key. Give the key itself (`key`) or only its SHA-256 (`key_sha256`),
    so that a config file need not hold the secret. `policy` overrides the proxy's
    policy for requests made with this key."""

    model_config = ConfigDict(extra="forbid")

    name: str
    key: SecretStr | None = None
    key_sha256: str | None = None
    policy: Path | None = None

    @model_validator(mode="after")
    def _one_key(self) -> "ApiKey":
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError(f"api key {self.name!r}: give exactly one of 'key' or 'key_sha256'")
        if self.key_sha256 is not None:
            h = self.key_sha256.lower()
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ValueError(f"api key {self.name!r}: key_sha256 must be 64 hex digits")
            self.key_sha256 = h
        return self

    @property
    def digest(self) -> str:
        if self.key_sha256 is not None:
            return self.key_sha256
        assert self.key is not None
        return hashlib.sha256(self.key.get_secret_value().encode()).hexdigest()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).hexdigest(), self.digest)


class _YamlFileSource(PydanticBaseSettingsSource):
    """The YAML config file named by `load_settings(config=...)` or $PROMPTGUARD_CONFIG."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        path = _config_file.get()
        if path is None and os.environ.get(CONFIG_ENV):
            path = Path(os.environ[CONFIG_ENV])
        self.path = path
        self.data: dict[str, Any] = {}
        if path is None:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise YamlError(str(path), None, f"cannot read: {e}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise YamlError(str(path), mark.line + 1 if mark else None, f"YAML syntax error: {e}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise YamlError(str(path), 1, f"expected a mapping at the top level, got {type(data).__name__}")
        # relative paths in the file are relative to the file
        for k in ("policy", "baseline"):
            if isinstance(data.get(k), str) and not Path(data[k]).is_absolute():
                data[k] = str(path.parent / data[k])
        for entry in data.get("api_keys") or []:
            if isinstance(entry, dict) and isinstance(entry.get("policy"), str):
                if not Path(entry["policy"]).is_absolute():
                    entry["policy"] = str(path.parent / entry["policy"])
        st = data.get("store")
        if isinstance(st, str) and "://" not in st and not Path(st).is_absolute():
            data["store"] = str(path.parent / st)
        self.data = data
        self.text = text

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class ProxySettings(BaseSettings):
    """All the proxy's settings. Environment variables are `PROMPTGUARD_<NAME>`
    (lists and objects as JSON, e.g. `PROMPTGUARD_API_KEYS='[{"name":"a","key":"..."}]'`)."""

    model_config = SettingsConfigDict(env_prefix="PROMPTGUARD_", extra="forbid", validate_default=True)

    # -- where requests go ------------------------------------------------------
    upstream: str = Field(default="", description="Upstream OpenAI-compatible base URL, ending in /v1.")
    upstream_api_key: SecretStr | None = Field(
        default=None, description="Key sent upstream; without it the client's Authorization is forwarded.")
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_timeout: float = Field(default=120.0, gt=0, description="Read timeout per upstream response chunk.")
    upstream_retries: int = Field(default=2, ge=0, le=10,
                                  description="Retries on connection errors and 502/503/504 before any byte is sent.")
    retry_backoff: float = Field(default=0.2, ge=0, description="First retry delay (s); doubles each retry.")
    max_connections: int = Field(default=256, ge=1)

    # -- what is checked --------------------------------------------------------
    policy: Path | None = Field(default=None, description="Policy YAML (default: the packaged policy).")
    baseline: Path | None = Field(default=None, description="Baseline directory for the baseline detector.")
    check_answers: bool = True
    answer_detectors: list[str] = Field(
        default_factory=lambda: ["rules", "exfiltration"],
        description="Detectors that check answers ('*': all of the policy's); a policy's "
                    "`proxy: {answer_detectors: [...]}` overrides this for its requests.")
    inline_detectors: list[str] = Field(
        default_factory=lambda: ["rules", "exfiltration"],
        description="When a check uses only these detectors and the text is short (20k chars), it runs on "
                    "the event loop instead of a worker thread (saves the thread hand-off).")
    stream_holdback_chars: int = Field(
        default=64, ge=0, description="Characters of a streamed answer held back until they are checked.")
    stream_check_every_chars: int = Field(
        default=32, ge=1, description="Re-check a streamed answer each time this many new characters arrive.")

    responses_api: Literal["auto", "native", "bridge"] = Field(
        default="auto", description="How POST /v1/responses reaches the upstream: `native` forwards it to the "
        "upstream's /v1/responses; `bridge` translates it to /v1/chat/completions (llama.cpp's server, older "
        "vLLM); `auto` asks the upstream once whether it has /v1/responses.")

    passthrough_deny: list[str] = Field(
        default_factory=lambda: ["responses", "responses/*", "assistants*", "threads*", "realtime*"],
        description="Other /v1 routes (globs, without /v1/) that carry prompts the proxy cannot check: refused "
                    "with 403 instead of passed through unchecked.")

    # -- who may call -----------------------------------------------------------
    api_keys: list[ApiKey] = Field(default_factory=list,
                                   description="Proxy API keys; when set, every /v1 request must present one.")

    # -- limits -----------------------------------------------------------------
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    # -- audit log --------------------------------------------------------------
    store: str = Field(default=".promptguard/audit.sqlite",
                       description="SQLite file (path or sqlite:///path), or postgresql://… URL; 'none' disables.")
    store_text: bool = Field(default=False, description="Also store the full prompt and answer text.")

    # -- serving ----------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    ready_cache_seconds: float = Field(default=2.0, ge=0)

    @field_validator("upstream")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not (v.startswith("http://") or v.startswith("https://")):
            raise ValueError(f"upstream must be an http(s) URL, got {v!r}")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    def policy_paths(self) -> set[Path | None]:
        return {self.policy} | {k.policy for k in self.api_keys if k.policy is not None}


def load_settings(config: str | Path | None = None, **overrides: Any) -> ProxySettings:
    """Settings from `config` (YAML; default $PROMPTGUARD_CONFIG), the environment, then
    `overrides` (None values are ignored). Errors name the setting, and the YAML line."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = Path(config) if config is not None else None
    token = _config_file.set(path)
    try:
        return ProxySettings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        src = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
        if src is not None and src.is_file():
            root = yaml.compose(src.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
            node = _node_at(root, tuple(err["loc"]))
            if node is not None and node is not root:
                raise YamlError(str(src), node.start_mark.line + 1, f"{where}: {err['msg']}{more}") from None
        raise ValueError(f"invalid proxy setting {where}: {err['msg']}{more}") from None
    finally:
        _config_file.reset(token)
