"""``POST /v1/models/{name}:generate``: a continuation from the GPT-2 export's in-graph ``generate``."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt, StrictStr

from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])


class GenerateRequest(BaseModel):
    prompt: StrictStr = Field(..., min_length=1, examples=["Emma walked to"])
    max_new_tokens: StrictInt = Field(32, ge=1, description="tokens to add at most (stops early at </s>)")
    strategy: Literal["greedy", "sample"] = "greedy"
    temperature: float = Field(1.0, gt=0, le=100, description="sample only")
    top_k: StrictInt = Field(0, ge=0, le=2**31 - 1, description="sample only; 0 = off")
    top_p: float = Field(1.0, gt=0, le=1, description="sample only; 1 = off")
    seed: StrictInt | None = Field(None, ge=0, le=2**31 - 1, description="same seed, same text; default random")


class GenerateResponse(BaseModel):
    model: str
    version: int
    prompt: str
    text: str = Field(description="the continuation only")
    token_ids: list[int]
    prompt_tokens: int
    num_generated: int
    stopped_at_eos: bool
    strategy: str
    seed: int


@router.post("/v1/models/{name}:generate", response_model=GenerateResponse)
async def generate(name: str, body: GenerateRequest, service: InferenceService = Depends(get_service)):
    return await service.generate(name, body.prompt, body.max_new_tokens, body.strategy, body.temperature,
                                  body.top_k, body.top_p, body.seed)
