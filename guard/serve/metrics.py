"""Prometheus metrics of one app: requests, latency, rejections, decisions by category, detector latency.

Each app has its own registry (so tests can build many apps). With several worker processes, set
prometheus_client's `PROMETHEUS_MULTIPROC_DIR` to an empty folder shared by the workers and `/metrics`
reports all of them together (`guard serve` empties that folder when it starts); without it each worker
reports only itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from detectors.base import Detection
from guard.scan import analyze_with

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own setting (not ours): where worker processes keep their metric files."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "guard_http_requests", "HTTP requests answered", ("method", "route", "status"), registry=r
        )
        self.latency = Histogram(
            "guard_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "guard_cpu_requests_inflight",
            "Requests holding a CPU-work slot (running or queued)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "guard_requests_rejected", "Requests refused to protect the worker", ("reason",), registry=r
        )
        self.decisions = Counter("guard_decisions", "Moderation decisions made", ("endpoint", "decision"), registry=r)
        self.categories = Counter(
            "guard_decision_categories",
            "Categories that fired in moderation decisions",
            ("endpoint", "category", "action"),
            registry=r,
        )
        self.detector_latency = Histogram(
            "guard_detector_duration_seconds",
            "Time one detector took on one batch",
            ("detector",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter(
            "guard_verify_verdicts", "Verification verdicts given", ("origin", "integrity"), registry=r
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_decision(self, endpoint: str, decision: str, categories: Mapping[str, str]) -> None:
        self.decisions.labels(endpoint, decision).inc()
        for category, action in categories.items():
            self.categories.labels(endpoint, category, action).inc()

    def render(self) -> bytes:
        if os.environ.get(MULTIPROCESS_DIR):
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)

    def close(self) -> None:
        """A worker that stops takes its live gauges with it (multiprocess mode)."""
        if os.environ.get(MULTIPROCESS_DIR):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


def clear_multiprocess_dir() -> None:
    """Remove metric files a previous run left in the multiprocess folder (call before workers start)."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if not folder:
        return
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("*.db"):
        stale.unlink(missing_ok=True)


class TimedDetector:
    """A detector whose batches are timed into `guard_detector_duration_seconds` (same scores, same protocol)."""

    def __init__(self, name: str, detector: Any, metrics: Metrics) -> None:
        self.name = name
        self.inner = detector
        self._histogram = metrics.detector_latency.labels(name)

    def analyze(self, images: Sequence[Any]) -> list[Detection]:
        start = time.perf_counter()
        try:
            return analyze_with(self.inner, list(images))
        finally:
            self._histogram.observe(time.perf_counter() - start)

    def score(self, images: Sequence[Any]) -> list[dict[str, float]]:
        return [detection.scores for detection in self.analyze(images)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
