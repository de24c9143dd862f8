"""``POST /v1/models/{name}:generate``: continuations from the GPT-2 export's in-graph ``generate``.

One call takes a list of prompts (``prompts``; they may differ in length) and returns, per prompt,
``num_return_sequences`` continuations. The single-prompt body of earlier versions (``prompt``) is still
accepted and still answered with its flat fields (``text``, ``token_ids``, ...) beside ``results``.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, ValidationInfo, field_validator

from tfxformers.models.lm.generate import MAX_BEAMS, MAX_RETURN_SEQUENCES
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, VisibleText
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])


class GenerateRequest(BaseModel):
    model_config = STRICT_BODY

    prompts: list[VisibleText] | None = Field(None, min_length=1, examples=[["Emma walked to", "Mr Knightley"]],
                                       description="prompts to continue, of any lengths (or `prompt` for one)")
    prompt: VisibleText | None = Field(None, min_length=1, validate_default=True,
                                description="one prompt (the earlier body; answered with flat fields too)")
    max_new_tokens: StrictInt = Field(32, ge=1, description="tokens to add at most (stops early at </s>)")
    strategy: Literal["greedy", "sample", "beam"] = "greedy"
    temperature: StrictFloat = Field(1.0, ge=0, le=100, allow_inf_nan=False,
                                     description="sample only, > 0 there; ignored otherwise (0 allowed)")
    top_k: StrictInt = Field(0, ge=0, le=2**31 - 1, description="sample only; 0 = off")
    top_p: StrictFloat = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="sample only; 1 = off")
    seed: StrictInt | None = Field(None, ge=0, le=2**31 - 1,
                                   description="same seed, same text (prompt i uses seed + i); default random")
    num_return_sequences: StrictInt = Field(1, ge=1, le=MAX_RETURN_SEQUENCES,
                                            description="continuations per prompt (sample, or beam <= num_beams)")
    num_beams: StrictInt = Field(4, ge=1, le=MAX_BEAMS, validate_default=True, description="beam only")
    length_penalty: StrictFloat = Field(1.0, ge=-10, le=10, allow_inf_nan=False,
                                        description="beam only: scores are sum log p / length ** length_penalty")
    early_stopping: StrictBool = Field(False, description="beam only: stop once num_beams hypotheses ended at </s>")

    @field_validator("temperature")
    @classmethod
    def _sampling_needs_a_temperature(cls, value: float, info: ValidationInfo) -> float:
        # Dividing logits by 0 is no distribution to sample from; greedy ignores temperature, so a client
        # that sends 0 meaning "deterministic" is served rather than refused.
        if value == 0 and info.data.get("strategy") == "sample":
            raise ValueError("must be > 0 with strategy 'sample' (use strategy 'greedy' for the most likely tokens)")
        return value

    # Field validators, not a model validator: the proxy reports errors by field, and a model validator's
    # errors are located at the body as a whole. validate_default: they must run when the field is absent.
    @field_validator("prompt", mode="after")
    @classmethod
    def _one_way_to_give_prompts(cls, value, info: ValidationInfo):
        if "prompts" in info.data and (value is None) == (info.data["prompts"] is None):
            raise ValueError("give either 'prompts' (a list) or 'prompt' (one string)")
        return value

    @field_validator("num_return_sequences", mode="after")
    @classmethod
    def _greedy_has_one_answer(cls, value: int, info: ValidationInfo) -> int:
        if value > 1 and info.data.get("strategy") == "greedy":
            raise ValueError("num_return_sequences > 1 needs strategy 'sample' or 'beam' (greedy has one answer)")
        return value

    @field_validator("num_beams", mode="after")
    @classmethod
    def _enough_beams(cls, value: int, info: ValidationInfo) -> int:
        returned = info.data.get("num_return_sequences", 1)
        if info.data.get("strategy") == "beam" and returned > value:
            raise ValueError(f"num_return_sequences ({returned}) must be <= num_beams ({value}) with strategy 'beam'")
        return value


class Sequence(BaseModel):
    text: str = Field(description="the continuation only")
    token_ids: list[int]
    num_generated: int
    stopped_at_eos: bool
    score: float = Field(description="beam: sum log p / length ** length_penalty; otherwise sum log p")


class GenerateResult(BaseModel):
    prompt: str
    prompt_tokens: int
    sequences: list[Sequence]


class GenerateResponse(BaseModel):
    model: str
    version: int
    strategy: str
    seed: int
    results: list[GenerateResult]
    # The single-prompt body's flat answer (its first sequence), for clients of the earlier version.
    prompt: str | None = None
    text: str | None = None
    token_ids: list[int] | None = None
    prompt_tokens: int | None = None
    num_generated: int | None = None
    stopped_at_eos: bool | None = None


@router.post("/v1/models/{name}:generate", response_model=GenerateResponse, response_model_exclude_none=True,
             responses={400: {"description": "the model is not a GPT-2"}, 404: {"description": "unknown model"},
                        413: {"description": "prompts, max_new_tokens or the model's context over the limits"},
                        422: {"description": "not a JSON object of valid generation options"}})
async def generate(name: str, body: GenerateRequest, service: InferenceService = Depends(get_service)):
    options = body.model_dump(exclude={"prompt", "prompts"})
    answer = await service.generate(name, body.prompts or [body.prompt], options)
    if body.prompt is not None:
        first, best = answer["results"][0], answer["results"][0]["sequences"][0]
        answer.update(prompt=first["prompt"], prompt_tokens=first["prompt_tokens"], text=best["text"],
                      token_ids=best["token_ids"], num_generated=best["num_generated"],
                      stopped_at_eos=best["stopped_at_eos"])
    return answer
