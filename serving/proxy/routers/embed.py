"""``POST /v1/models/{name}:embed``: sentence vectors from an encoder export's ``embed`` signature."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from tfxformers.serving.proxy.routers.classify import TextsRequest
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])


class EmbedResponse(BaseModel):
    model: str
    version: int
    combine: str = Field(description="how the vectors of a long text's windows were combined")
    dimension: int
    embeddings: list[list[float]]
    windows: list[int]
    tokens: list[int]


@router.post("/v1/models/{name}:embed", response_model=EmbedResponse,
             responses={400: {"description": "the model is not an encoder"}, 404: {"description": "unknown model"},
                        413: {"description": "too many texts or characters"},
                        422: {"description": "not a JSON object of valid texts"}})
async def embed(name: str, body: TextsRequest, service: InferenceService = Depends(get_service)):
    return await service.embed(name, body.texts)
