"""What one proxy app holds for its whole life: settings, one profile per policy (its
inspectors and answer audit), the upstream client, the record store and the metrics.

Routes read it from `request.app.state.pg`; nothing here is per request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request

from ..guard import load_guard
from ..inspection import Inspector, reference_segments
from ..parsing import CHAT
from ..parsing.answers import STREAMED_ANSWERS
from ..policy import answer_detector_names
from ..records import Store
from .errors import ProxyError
from .metrics import Metrics
from .settings import ApiKey, ProxySettings
from .upstream import Upstream

__all__ = ["Profile", "Caller", "ProxyState", "build_profile"]

log = logging.getLogger("promptguard.proxy")


@dataclass
class Profile:
    """What one policy needs at run time: its inspectors (requests, answers) and, when
    its `audit:` section enables it, the answer audit."""

    inspector: Inspector
    answers: Inspector
    auditor: Any = None


def build_profile(policy_path: Path | None, settings: ProxySettings, metrics: Metrics) -> Profile:
    """Load a policy (with the `--baseline` of the settings) and build its detectors and
    audit once; bad policies fail here, before the server listens."""
    detectors = {"baseline": {"path": str(settings.baseline)}} if settings.baseline is not None else None
    guard = load_guard(policy_path, detectors=detectors, face="proxy")
    inspector = Inspector(guard, observe=metrics.observe_check, inline_detectors=frozenset(settings.inline_detectors))
    answers = inspector.restricted(answer_detector_names(guard.policy, settings.answer_detectors))
    auditor = None
    if guard.policy.audit.mode != "off":
        from ..audit import build_auditor

        # the audit's own calls go to the same upstream, with the configured upstream key
        key = settings.upstream_api_key.get_secret_value() if settings.upstream_api_key is not None else None
        auditor = build_auditor(guard.policy, settings.upstream, api_key=key, timeout=settings.upstream_timeout,
                                connect_timeout=settings.upstream_connect_timeout)
    return Profile(inspector, answers, auditor)


@dataclass
class Caller:
    """Who is calling: the proxy key's name (never the key), its profile, and the
    Authorization to send upstream."""

    name: str
    profile: Profile
    upstream_auth: str | None


@dataclass
class ProxyState:
    settings: ProxySettings
    metrics: Metrics
    profiles: dict[Path | None, Profile]
    store: Store
    upstream: Upstream
    warm: bool = False
    warm_errors: list[str] = field(default_factory=list)
    in_flight: int = 0  # checked requests not yet recorded (shutdown waits for them)
    _ready_cache: tuple[float, bool, str] = (0.0, False, "")

    def authenticate(self, request: Request) -> Caller:
        s = self.settings
        configured = f"Bearer {s.upstream_api_key.get_secret_value()}" if s.upstream_api_key else None
        client_auth = request.headers.get("authorization")
        if not s.api_keys:
            return Caller("", self.profiles[s.policy], configured or client_auth)
        presented = request.headers.get("x-promptguard-api-key")
        via_own_header = presented is not None
        if presented is None and client_auth and client_auth.lower().startswith("bearer "):
            presented = client_auth[7:].strip()
        if not presented:
            raise ProxyError(401, "missing_api_key", "this proxy requires an API key: send it as "
                             "'Authorization: Bearer <key>' or 'x-promptguard-api-key'", kind="auth")
        key: ApiKey | None = next((k for k in s.api_keys if k.matches(presented)), None)
        if key is None:
            raise ProxyError(401, "invalid_api_key", "the API key is not valid for this proxy", kind="auth")
        profile = self.profiles[key.policy if key.policy is not None else s.policy]
        # the proxy key itself never goes upstream
        return Caller(key.name, profile, configured or (client_auth if via_own_header else None))

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        t, ok, why = self._ready_cache
        if now - t > self.settings.ready_cache_seconds or not ok:
            ok, why = await self.upstream.ping(timeout=min(2.0, self.settings.upstream_timeout))
            self._ready_cache = (now, ok, why)
        info = {"models_loaded": self.warm and not self.warm_errors, "upstream_reachable": ok,
                "upstream": why, "errors": self.warm_errors}
        return (self.warm and not self.warm_errors and ok), info

    async def warm_up(self) -> None:
        """Run every inspector once so lazily loaded models are in memory before traffic."""
        body = {"messages": [{"role": "system", "content": "You are helpful."},
                             {"role": "user", "content": "What is 2 + 3?"}]}
        errors: list[str] = []
        for prof in self.profiles.values():
            errors.extend((await prof.inspector.ainspect(CHAT, body)).decision.errors)
            answer = await prof.answers.ainspect(STREAMED_ANSWERS, {0: "2 + 3 = 5. The answer is 5."}, "outbound",
                                                 reference=reference_segments(CHAT.read(body)))
            errors.extend(answer.decision.errors)
        self.warm_errors = errors
        self.warm = True
        if errors:
            log.error("warm-up check had errors: %s", "; ".join(errors))
