"""Prometheus metrics for one proxy app (its own registry, so several apps can live
in one process, as in tests). With several workers each process keeps its own
counters; scrape each replica (see docs/proxy.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:  # pragma: no cover
    from ..guard import GuardResult

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("promptguard_requests", "HTTP requests handled",
                                ["endpoint", "status"], registry=r)
        self.decisions = Counter("promptguard_decisions", "Firewall decisions",
                                 ["stage", "decision"], registry=r)
        self.findings = Counter("promptguard_findings", "Findings at or above their flag threshold",
                                ["detector", "stage"], registry=r)
        self.detector_seconds = Histogram("promptguard_detector_seconds", "Time spent in each detector",
                                          ["detector", "stage"], buckets=_FAST, registry=r)
        self.check_seconds = Histogram("promptguard_check_seconds", "Time of a whole firewall check",
                                       ["stage"], buckets=_FAST, registry=r)
        self.upstream_seconds = Histogram("promptguard_upstream_seconds",
                                          "Upstream latency (to headers for streams)",
                                          ["endpoint"], buckets=_SLOW, registry=r)
        self.request_seconds = Histogram("promptguard_request_seconds", "Whole request latency",
                                         ["endpoint"], buckets=_SLOW, registry=r)
        self.errors = Counter("promptguard_errors", "Errors by kind", ["kind"], registry=r)
        self.detector_errors = Counter("promptguard_detector_errors", "Detector errors", ["stage"], registry=r)
        self.in_flight = Gauge("promptguard_in_flight_requests", "Requests being handled", registry=r)
        self.store_queue = Gauge("promptguard_store_queue", "Audit records waiting to be written", registry=r)

    def observe_check(self, stage: str, result: "GuardResult", seconds: float) -> None:
        """One guard run (an `Inspector` observer)."""
        self.check_seconds.labels(stage).observe(seconds)
        for name, secs in result.timings.items():
            self.detector_seconds.labels(name, stage).observe(secs)
        for f in result.decision.reasons:
            self.findings.labels(f.detector, stage).inc()
        if result.decision.errors:
            self.detector_errors.labels(stage).inc(len(result.decision.errors))

    def render(self) -> bytes:
        return generate_latest(self.registry)
