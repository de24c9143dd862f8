"""``POST /v1/models/{name}:generate``: a continuation from the GPT-2 export's in-graph ``generate``."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictFloat, StrictInt, ValidationInfo, field_validator

from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, Text
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])


class GenerateRequest(BaseModel):
    model_config = STRICT_BODY

    prompt: Text = Field(..., min_length=1, examples=["Emma walked to"])
    max_new_tokens: StrictInt = Field(32, ge=1, description="tokens to add at most (stops early at </s>)")
    strategy: Literal["greedy", "sample"] = "greedy"
    temperature: StrictFloat = Field(1.0, ge=0, le=100, allow_inf_nan=False,
                                     description="sample only, > 0 there; ignored by greedy (0 allowed)")
    top_k: StrictInt = Field(0, ge=0, le=2**31 - 1, description="sample only; 0 = off")
    top_p: StrictFloat = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="sample only; 1 = off")
    seed: StrictInt | None = Field(None, ge=0, le=2**31 - 1, description="same seed, same text; default random")

    @field_validator("temperature")
    @classmethod
    def _sampling_needs_a_temperature(cls, value: float, info: ValidationInfo) -> float:
        # Dividing logits by 0 is no distribution to sample from; greedy ignores temperature, so a client
        # that sends 0 meaning "deterministic" is served rather than refused.
        if value == 0 and info.data.get("strategy") == "sample":
            raise ValueError("must be > 0 with strategy 'sample' (use strategy 'greedy' for the most likely tokens)")
        return value


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


@router.post("/v1/models/{name}:generate", response_model=GenerateResponse,
             responses={400: {"description": "the model is not a GPT-2"}, 404: {"description": "unknown model"},
                        413: {"description": "prompt or max_new_tokens over the limits or the model's context"},
                        422: {"description": "not a JSON object of valid generation options"}})
async def generate(name: str, body: GenerateRequest, service: InferenceService = Depends(get_service)):
    return await service.generate(name, body.prompt, body.max_new_tokens, body.strategy, body.temperature,
                                  body.top_k, body.top_p, body.seed)
