"""``/healthz`` (the process answers), ``/readyz`` (the backend answers and the models are AVAILABLE),
``/metrics`` (Prometheus text format).

``/readyz`` asks the model server on every call (one status query per model): the registry's cached
version (``--status-refresh``) is fine for pinning requests, whose own backend calls fail at once when the
server is gone, but a readiness probe answered from it said 200 for up to 2 s after the server was
SIGKILLed (issue 23). The cache is used only after the server has just answered for that model.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import Deadline
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
        await _check_live(service, names)
        versions = await service.ready(names)
    except errors.ProxyError as exc:
        request.app.state.metrics.errors.labels(exc.kind).inc()
        return JSONResponse({"status": "not ready", "kind": exc.kind, "error": exc.message}, status_code=503,
                            headers={"Retry-After": str(errors.RETRY_AFTER_SECONDS)})
    return {"status": "ready", "backend": service.backend.url, "models": versions}


async def _check_live(service: InferenceService, names: list[str]) -> None:
    """A status query per model, now: an unreachable server or a model with no AVAILABLE version raises."""
    deadline = Deadline(service.settings.timeout_seconds)
    for name in names:
        states = await service.backend.versions(name, deadline)
        if not any(state == "AVAILABLE" for state in states.values()):
            listed = ", ".join(f"{v}: {s}" for v, s in sorted(states.items())) or "no versions"
            raise errors.ModelNotReady(f"model {name!r} has no AVAILABLE version ({listed})")


@router.get("/metrics")
async def metrics(request: Request):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
