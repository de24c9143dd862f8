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
from tfxformers.serving.proxy.body_limit import BodyLimitMiddleware, body_limit
from tfxformers.serving.proxy.metrics import MetricsMiddleware, ProxyMetrics
from tfxformers.serving.proxy.models import ModelRegistry
from tfxformers.serving.proxy.routers import answer, attention, classify, embed, generate, health, tag
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
    for module in (classify, embed, generate, attention, answer, tag, health):
        app.include_router(module.router)
    # Before routing, so an oversized body is refused unread; inside MetricsMiddleware (added after it, so
    # outermost), so the refusal is still counted.
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_limit(settings.max_chars),
                       on_refused=lambda: metrics.errors.labels("too_large").inc())
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app, metrics)
    return app


def _error(metrics: ProxyMetrics, status: int, kind: str, message: str, headers=None, **extra) -> JSONResponse:
    metrics.errors.labels(kind).inc()
    return JSONResponse({"error": message, "kind": kind, **extra}, status_code=status, headers=headers or None)


def _field_name(loc) -> str:
    parts = [p for p in loc if p != "body"]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _problem(error: dict, request: Request) -> dict:
    """One validation error as ``{"field", "message"}``; errors about the body as a whole say what to send,
    since pydantic's wording ("Input should be a valid dictionary") does not tell an HTTP client that."""
    kind, loc = error.get("type"), tuple(error.get("loc", ()))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return {"field": "body", "message": f"not valid JSON ({reason})" if reason else "not valid JSON"}
    if loc == ("body",):
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type:
            got = f"got {content_type!r}" if content_type else "none was given"
            return {"field": "body", "message": f"send a JSON object with content-type: application/json ({got})"}
        if kind == "missing":
            return {"field": "body", "message": "the request has no body; send a JSON object"}
        return {"field": "body", "message": "must be a JSON object with this endpoint's fields (see /docs)"}
    message = error.get("msg", "invalid")
    if kind == "value_error" and (error.get("ctx") or {}).get("error"):
        message = str(error["ctx"]["error"])  # our own validators' words, without pydantic's "Value error, "
    if kind == "extra_forbidden":
        message = "not a field of this endpoint (see /docs)"
    return {"field": _field_name(loc), "message": message}


def _add_error_handlers(app: FastAPI, metrics: ProxyMetrics) -> None:
    @app.exception_handler(errors.ProxyError)
    async def proxy_error(request: Request, exc: errors.ProxyError):
        extra = {"fields": exc.fields} if getattr(exc, "fields", None) else {}
        return _error(metrics, exc.status_code, exc.kind, exc.message, headers=exc.headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError):
        fields = [_problem(e, request) for e in exc.errors()]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(metrics, 422, "invalid_input", message, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return _error(metrics, 404, "not_found", f"no route {request.url.path!r}; models are at "
                          "/v1/models/NAME:classify, :embed, :generate, :answer or :tag")
        if exc.status_code == 405:
            allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow", "")
            return _error(metrics, 405, "method_not_allowed",
                          f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else ""))
        if exc.status_code == 400 and request.method == "POST":
            # FastAPI's answer to a body it cannot even decode (bytes that are not UTF-8): the same 422 as
            # any other undecodable JSON.
            return _error(metrics, 422, "invalid_input", "body: not valid JSON in UTF-8",
                          fields=[{"field": "body", "message": "not valid JSON in UTF-8"}])
        return _error(metrics, exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(metrics, 500, "internal", "internal error in the proxy (details are in its log)")
