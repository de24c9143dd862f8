"""Prometheus metrics of one proxy app (its own registry, so several apps in one process do not clash).

``tfxformers_proxy_requests_total{route,method,status}``, ``tfxformers_proxy_request_seconds{route}``,
``tfxformers_proxy_backend_seconds{call,outcome}`` and ``tfxformers_proxy_errors_total{kind}``;
``MetricsMiddleware`` (plain ASGI, cheap) counts and times every HTTP request by its route template.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ProxyMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("tfxformers_proxy_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("tfxformers_proxy_request_seconds", "HTTP request latency", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.backend_latency = Histogram("tfxformers_proxy_backend_seconds", "TF Serving call latency",
                                         ["call", "outcome"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("tfxformers_proxy_errors", "Error answers by kind", ["kind"], registry=self.registry)

    def observe_backend(self, call: str, seconds: float, outcome: str) -> None:
        self.backend_latency.labels(call, outcome).observe(seconds)


class MetricsMiddleware:
    def __init__(self, app, metrics: ProxyMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # The route template, not the raw path: model names must not explode the label set.
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
