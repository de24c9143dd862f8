"""The proxy's FastAPI application: wires settings, routers, error answers and metrics.

``create_app(settings=None)`` reads ``ProxySettings`` (flags passed in, else ``TFXFORMERS_*``
variables) and returns the app; the backend connection, the model registry and the service are made in
the lifespan handler, inside the server's event loop. Every error answer is JSON
``{"error": message, "kind": kind}``; no traceback ever reaches a client.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import make_backend
from tfxformers.serving.proxy.metrics import MetricsMiddleware, ProxyMetrics
from tfxformers.serving.proxy.models import ModelRegistry
from tfxformers.serving.proxy.routers import classify, embed, generate, health
from tfxformers.serving.proxy.service import InferenceService
from tfxformers.serving.proxy.settings import ProxySettings

log = logging.getLogger("tfxformers.proxy")


def create_app(settings: ProxySettings | None = None) -> FastAPI:
    settings = settings or ProxySettings()
    metrics = ProxyMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        backend = make_backend(settings.backend, observe=metrics.observe_backend)
        await backend.start()
        registry = ModelRegistry(backend, settings.status_refresh_seconds)
        app.state.service = InferenceService(settings, backend, registry)
        if settings.model_names:
            try:
                await app.state.service.ready(settings.model_names)
            except errors.ProxyError as exc:  # not fatal: the proxy keeps retrying on requests and /readyz
                log.warning("models not ready at start: %s", exc.message)
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(title="tfxformers tokenizer proxy", version="1",
                  description="Raw text in, JSON out: tokenizes for TensorFlow Serving and calls it over "
                              f"{settings.backend_kind.upper()} ({settings.backend}).",
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    for module in (classify, embed, generate, health):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app, metrics)
    return app


def _error(metrics: ProxyMetrics, status: int, kind: str, message: str, **extra) -> JSONResponse:
    metrics.errors.labels(kind).inc()
    return JSONResponse({"error": message, "kind": kind, **extra}, status_code=status)


def _field_name(loc) -> str:
    parts = [p for p in loc if p != "body"]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _add_error_handlers(app: FastAPI, metrics: ProxyMetrics) -> None:
    @app.exception_handler(errors.ProxyError)
    async def proxy_error(request: Request, exc: errors.ProxyError):
        return _error(metrics, exc.status_code, exc.kind, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError):
        fields = [{"field": _field_name(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(metrics, 422, "invalid_input", message, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found" if exc.status_code == 404 else "http_error"
        return _error(metrics, exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(metrics, 500, "internal", "internal error in the proxy (details are in its log)")
