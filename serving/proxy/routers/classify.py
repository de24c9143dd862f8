"""``POST /v1/models/{name}:classify``: labels and probabilities for raw texts."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, VisibleText
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])


class TextsRequest(BaseModel):
    model_config = STRICT_BODY

    texts: list[VisibleText] = Field(..., min_length=1, description="raw texts, at least one; each must have a "
                                     "visible character", examples=[["a charming, funny and moving film"]])


class TextClassification(BaseModel):
    label: str = Field(description="the most probable label")
    probability: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every label's probability")
    windows: int = Field(description="windows the text was split into (1 unless longer than the model's max length)")
    tokens: int = Field(description="tokens of the whole text")


class ClassifyResponse(BaseModel):
    model: str
    version: int = Field(description="the served model version that answered")
    combine: str = Field(description="how the scores of a long text's windows were combined")
    results: list[TextClassification]


@router.post("/v1/models/{name}:classify", response_model=ClassifyResponse,
             responses={400: {"description": "the model is not a classifier"}, 404: {"description": "unknown model"},
                        413: {"description": "too many texts or characters"},
                        422: {"description": "not a JSON object of valid texts"},
                        503: {"description": "model server unreachable"}, 504: {"description": "model server too slow"}})
async def classify(name: str, body: TextsRequest, service: InferenceService = Depends(get_service)):
    return await service.classify(name, body.texts)
