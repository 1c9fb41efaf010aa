"""Fixtures for the proxy tests: real HTTP servers on 127.0.0.1 (uvicorn in a thread),
the fake upstream for fault tests, and test policies written per session."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from promptguard.detectors.base import register
from promptguard.findings import Finding
from promptguard.sanitize import Edit
from promptguard.segments import Segment, SegmentKind

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int | None = None):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", access_log=False, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)


# -- a sanitizing test detector -------------------------------------------------------
class StripMarker:
    """TEST DETECTOR (a fake for the proxy's sanitize control flow): flags the marker
    `<<strip-me>>` in queries and removes it when asked to sanitize."""

    name = "pg_test_strip"
    MARK = "<<strip-me>>"

    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        out = []
        for s in segments:
            i = s.text.find(self.MARK)
            if s.kind is SegmentKind.QUERY and i >= 0:
                out.append(Finding.on(s, detector=self.name, score=0.9, message="strip marker",
                                      span=(i, i + len(self.MARK))))
        return out

    def sanitize(self, segments: Sequence[Segment], findings: Sequence[Finding]) -> list[Edit]:
        by = {(s.kind, s.index, s.prompt): s for s in segments}
        return [Edit(by[(f.segment_kind, f.segment_index, f.prompt)], f.span[0], f.span[1], "", "marker")
                for f in findings if f.span]


class Exploding:
    """TEST DETECTOR (a fake for the fail-closed control flow): raises on every query
    containing `explode`."""

    name = "pg_test_explode"

    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        if any("explode" in s.text for s in segments):
            raise RuntimeError("detector crashed on purpose")
        return []


register("pg_test_strip", lambda options, base_dir: StripMarker())
register("pg_test_explode", lambda options, base_dir: Exploding())

# Rules written for these tests (not the shipped rule set): an answer rule that blocks a
# leaked secret, and a medium-score rule that only flags.
TEST_RULES = """
version: "test"
name: proxy-tests
rules:
  - id: PGT-LEAK-001
    description: A secret token in the answer
    kinds: [answer]
    severity: critical
    patterns: ['\\bSECRET-[0-9]{4}\\b']
  - id: PGT-FLAG-001
    description: Mentions a wire transfer (worth a look, not a block)
    kinds: [query]
    severity: medium
    patterns: ['\\bwire\\s+transfer\\b']
  - id: PGT-ANY-ANSWER
    description: Any word in an answer (used by the strict per-key policy)
    kinds: [answer]
    severity: critical
    patterns: ['[A-Za-z]{2,}']
"""


def _policy(rules_dir: Path, *, extra_detectors: str = "", on_error: str = "block",
            strict_answers: bool = False) -> str:
    """A test policy: the shipped rules plus TEST_RULES; invisible Unicode (PG-UNI-*) is
    stripped as in the default policy. PGT-ANY-ANSWER (any worded answer)
    only acts in the strict policy; elsewhere it is demoted below flag_at."""
    default_rules = REPO / "policies" / "rules" / "default.yaml"
    demote = "" if strict_answers else "  - {rule: PGT-ANY-ANSWER, flag_at: 1.0, act_at: 1.0, action: flag}\n"
    return f"""
version: 1
name: proxy-test
on_error: {on_error}
detectors:
  rules:
    rulesets: [{default_rules}, {rules_dir / 'test-rules.yaml'}]
{extra_detectors}
default: {{flag_at: 0.5, act_at: 0.85, action: block}}
thresholds:
  - {{detector: pg_test_strip, flag_at: 0.5, act_at: 0.8, action: sanitize}}
  - {{detector: rules, rule: "PG-UNI-*", flag_at: 0.3, act_at: 0.5, action: sanitize}}
{demote}"""


@pytest.fixture(scope="session")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("policies")
    (d / "test-rules.yaml").write_text(TEST_RULES)
    texts = {
        "main": _policy(d, extra_detectors="  pg_test_strip: {}\n  pg_test_explode: {}"),
        "fail_open": _policy(d, extra_detectors="  pg_test_explode: {}", on_error="allow"),
        "strict": _policy(d, strict_answers=True),
    }
    out = {}
    for name, text in texts.items():
        out[name] = d / f"{name}.yaml"
        out[name].write_text(text)
    return out


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[tuple[str, dict[str, Any]]]:
    """The fake upstream (see fake_upstream.py) on a real port: (base URL …/v1, its state)."""
    from tests.proxy.fake_upstream import create_fake_upstream

    app = create_fake_upstream()
    with ThreadServer(app) as srv:
        yield srv.url + "/v1", app.state.fake


class ProxyPool:
    """Starts proxies (in-process, real HTTP on 127.0.0.1) and stops them all at the end."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.servers: list[ThreadServer] = []

    def __call__(self, transport: Any = None, **settings: Any) -> tuple[str, Any]:
        """A proxy with these settings; `transport` replaces its network to the upstream."""
        from promptguard.proxy import load_settings
        from promptguard.proxy.app import create_app

        settings.setdefault("store", str(self.tmp / f"audit-{len(self.servers)}.sqlite"))
        settings.setdefault("log_level", "warning")
        app = create_app(load_settings(**settings), transport=transport)
        srv = ThreadServer(app).__enter__()
        self.servers.append(srv)
        return srv.url, app

    def close(self) -> None:
        for srv in self.servers:
            srv.server.should_exit = True
        for srv in self.servers:
            srv.thread.join(15)


@pytest.fixture
def proxy_factory(tmp_path: Path):
    pool = ProxyPool(tmp_path)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def module_proxies(tmp_path_factory: pytest.TempPathFactory):
    pool = ProxyPool(tmp_path_factory.mktemp("proxies"))
    yield pool
    pool.close()
