"""Request-scoped access to the objects the lifespan handler built."""
from __future__ import annotations

from fastapi import Request

from tfxformers.serving.proxy.service import InferenceService


def get_service(request: Request) -> InferenceService:
    return request.app.state.service
