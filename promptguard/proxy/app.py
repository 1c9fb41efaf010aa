"""The drop-in OpenAI-compatible proxy: an application changes only its `base_url`.

    app = create_app(load_settings(upstream="http://127.0.0.1:8000/v1"))

`create_app` validates everything (policies, detectors, keys, the store URL) and wires
the parts: the state (`state.py`), the routes (`routes.py`; the checked ones follow one
request from route to record in `flow.py`) and the middleware (`middleware.py`).
Every response carries `x-promptguard-decision` and `x-promptguard-request-id`; no
client header can change a decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import AsyncIterator

import httpx
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..records import open_store
from . import routes
from .logs import configure_logging
from .metrics import Metrics
from .middleware import Errors, RequestContext, RequestMetrics
from .settings import ProxySettings, load_settings
from .state import Profile, ProxyState, build_profile
from .upstream import Upstream

__all__ = ["create_app", "app_from_env", "ProxyState"]

log = logging.getLogger("promptguard.proxy")


def create_app(settings: ProxySettings | None = None, *,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the proxy. Policies, detectors, API keys and the store URL are validated
    here, so a bad configuration fails before the server listens. `transport`
    replaces the network to the upstream (tests)."""
    s = settings or load_settings()
    if not s.upstream:
        raise ValueError("no upstream configured: pass --upstream URL or set PROMPTGUARD_UPSTREAM")
    store = open_store(s.store, start=False)  # a bad store URL fails before any model loads
    configure_logging(s.log_level, s.log_json)
    metrics = Metrics()
    profiles: dict[Path | None, Profile] = {p: build_profile(p, s, metrics) for p in s.policy_paths()}
    state = ProxyState(s, metrics, profiles, store, Upstream(s, transport=transport))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.store.start()
        await state.warm_up()
        log.info("promptguard proxy ready", extra={"fields": {
            "upstream": s.upstream, "store": getattr(state.store, "url", ""),
            "policies": [str(p) if p else "default" for p in profiles],
            "detectors": sorted({d.name for pr in profiles.values() for d in pr.inspector.guard.detectors}),
        }})
        try:
            yield
        finally:
            # requests the server cut write their records as they unwind: wait for them
            for _ in range(50):
                if state.in_flight <= 0:
                    break
                await asyncio.sleep(0.1)
            await state.upstream.aclose()
            await asyncio.to_thread(state.store.close)
            log.info("promptguard proxy stopped", extra={"fields": {"records_written": state.store.written,
                                                                    "records_failed": state.store.failed}})

    app = FastAPI(title="promptguard proxy", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible firewall proxy: every request and answer is checked.")
    app.state.pg = state
    # added innermost first: a request meets RequestContext, then RequestMetrics, then Errors
    app.add_middleware(Errors, metrics=metrics)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestContext)
    app.add_exception_handler(StarletteHTTPException, routes.http_error)

    app.add_api_route("/healthz", routes.healthz, methods=["GET"], tags=["operations"])
    app.add_api_route("/readyz", routes.readyz, methods=["GET"], tags=["operations"])
    app.add_api_route("/metrics", routes.metrics, methods=["GET"], tags=["operations"])
    app.add_api_route("/v1/chat/completions", routes.chat_completions, methods=["POST"], tags=["openai"],
                      openapi_extra=routes.body_schema("messages"))
    app.add_api_route("/v1/completions", routes.completions, methods=["POST"], tags=["openai"],
                      openapi_extra=routes.body_schema("prompt"))
    app.add_api_route("/v1/responses", routes.responses, methods=["POST"], tags=["openai"],
                      openapi_extra=routes.body_schema("input"))
    app.add_api_route("/v1/models", routes.models, methods=["GET"], tags=["openai"])
    app.add_api_route("/v1/{path:path}", routes.passthrough, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      tags=["openai"])
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from
    $PROMPTGUARD_CONFIG and PROMPTGUARD_* variables."""
    return create_app(load_settings())
