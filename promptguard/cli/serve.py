"""`promptguard serve`: run the OpenAI-compatible firewall proxy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer

from . import app
from .common import PolicyOption, die


def settings_env(settings: Any) -> dict[str, str]:
    """PROMPTGUARD_* variables that reproduce `settings` in a worker process."""
    from pydantic import SecretStr

    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        v = getattr(settings, name)
        if v is None:
            continue
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if name == "api_keys":
            v = [{k: (x.get_secret_value() if isinstance(x, SecretStr) else (str(x) if isinstance(x, Path) else x))
                  for k, x in key.model_dump().items() if x is not None} for key in v]
        if isinstance(v, (list, dict)):
            env[f"PROMPTGUARD_{name.upper()}"] = json.dumps(v)
        elif isinstance(v, bool):
            env[f"PROMPTGUARD_{name.upper()}"] = "true" if v else "false"
        else:
            env[f"PROMPTGUARD_{name.upper()}"] = str(v)
    return env


@app.command()
def serve(
    upstream: Optional[str] = typer.Option(None, "--upstream", "-u", help="Upstream OpenAI-compatible base URL (…/v1)."),
    policy: Optional[Path] = PolicyOption,
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline directory from `promptguard baseline build`."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port to listen on (default 8080)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes (default 1)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Proxy config YAML (default: $PROMPTGUARD_CONFIG)."),
    store: Optional[str] = typer.Option(None, "--store", help="Audit store: SQLite path or postgresql:// URL ('none' to disable)."),
    upstream_api_key: Optional[str] = typer.Option(None, "--upstream-api-key", envvar="PROMPTGUARD_UPSTREAM_API_KEY",
                                                   help="Key sent upstream (default: forward the client's Authorization)."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="debug | info | warning | error."),
) -> None:
    """Run the drop-in OpenAI-compatible proxy: point an application's base_url at it.

    Settings come from --config (YAML), then PROMPTGUARD_* environment variables, then these flags.
    """
    import uvicorn

    from ..proxy.app import create_app
    from ..proxy.settings import load_settings
    from ..records import StoreError
    from ..yamlutil import YamlError

    for p, what in ((policy, "policy"), (config, "config"), (baseline, "baseline")):
        if p is not None and not p.exists():
            raise die(f"{what} not found: {p}")
    try:
        s = load_settings(config, upstream=upstream, policy=policy, baseline=baseline, host=host, port=port,
                          workers=workers, store=store, upstream_api_key=upstream_api_key, log_level=log_level)
        if not s.upstream:
            raise die("no upstream: pass --upstream URL, set PROMPTGUARD_UPSTREAM or 'upstream:' in the config")
        # validates policies, detectors, keys and the store before listening
        application = create_app(s)
    except YamlError as e:
        raise die(str(e)) from None
    except (StoreError, ValueError, OSError) as e:
        raise die(f"cannot start the proxy: {e}") from None

    common: dict[str, Any] = dict(host=s.host, port=s.port, log_level=s.log_level, access_log=False,
                                  timeout_graceful_shutdown=30, proxy_headers=False)
    if s.workers == 1:
        uvicorn.run(application, **common)
        return
    # several workers: each process builds its own app from the same settings
    os.environ.update(settings_env(s))
    uvicorn.run("promptguard.proxy.app:app_from_env", factory=True, workers=s.workers, **common)
