"""``/healthz`` (the process answers), ``/readyz`` (the backend answers and the models are AVAILABLE),
``/metrics`` (Prometheus text format)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "backend unreachable or a model not AVAILABLE"}})
async def readyz(request: Request, model: list[str] | None = Query(None, description="models to check "
                 "(default: the configured ones; none configured: only that the backend answers)"),
                 service: InferenceService = Depends(get_service)):
    names = model or service.settings.model_names
    try:
        versions = await service.ready(names)
    except errors.ProxyError as exc:
        request.app.state.metrics.errors.labels(exc.kind).inc()
        return JSONResponse({"status": "not ready", "kind": exc.kind, "error": exc.message}, status_code=503)
    return {"status": "ready", "backend": service.backend.url, "models": versions}


@router.get("/metrics")
async def metrics(request: Request):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
