"""``POST /v1/models/{name}:attention``: tokens and attention weights of one text, from a classifier exported
with ``tfxformers export --with-attention`` (its ``attention`` signature), so a served model can be looked
into without TensorFlow on the client.

``{"text", "layer"?, "head"?}`` -> ``{"model", "version", "tokens", "layers", "heads", "layer", "head",
"label", "probabilities", "attentions"}``: ``attentions`` is ``[layers][heads][n][n]``, or one layer's
``[heads][n][n]`` with ``layer``, or one ``[n][n]`` matrix with both (row = attending token, column =
attended token; each row sums to 1). The text is not windowed: one that is longer than the model's
``max_length`` tokens is refused (413), since a map over a cut text would mislead.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt, model_validator

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, VisibleText
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])

SIGNATURE = "attention"


class AttentionRequest(BaseModel):
    model_config = STRICT_BODY

    text: VisibleText = Field(..., min_length=1, examples=["a charming, funny and moving film"])
    layer: StrictInt | None = Field(None, ge=0, description="only this layer (0 = the lowest)")
    head: StrictInt | None = Field(None, ge=0, description="only this head of `layer` (needs `layer`)")

    @model_validator(mode="after")
    def _head_needs_layer(self):
        if self.head is not None and self.layer is None:
            raise ValueError("head needs layer: give both, or layer alone for all its heads")
        return self


class AttentionResponse(BaseModel):
    model: str
    version: int
    tokens: list[str] = Field(description="the tokens the model saw, special tokens included")
    layers: int
    heads: int
    layer: int | None
    head: int | None
    label: str
    probabilities: dict[str, float]
    attentions: list = Field(description="[layers][heads][n][n], [heads][n][n] with layer, [n][n] with layer and head")


async def explain(service: InferenceService, name: str, body: AttentionRequest) -> dict:
    if len(body.text) > service.settings.max_chars:
        raise errors.TooLarge(f"text holds {len(body.text)} characters; the limit is {service.settings.max_chars}")

    async def run(served, deadline) -> dict:
        if served.kind != "classifier":
            raise errors.WrongModelKind(f"model {name!r} is a {served.kind} model; :attention is for classifiers")
        if SIGNATURE not in (served.metadata.get("signatures") or {}):
            raise errors.WrongModelKind(f"model {name!r} version {served.version} was exported without its "
                                        "attention signature; re-export it with `tfxformers export --with-attention`")
        encoding = served.encoder.tokenizer.encode(body.text)
        ids = list(encoding.ids)
        if len(ids) > served.encoder.max_length:
            raise errors.TooLarge(f"text is {len(ids)} tokens; attention maps are drawn for texts of at most "
                                  f"{served.encoder.max_length} (this model's max_length)")
        out = await service.backend.predict(served.name, served.version, SIGNATURE,
                                            {"input_ids": ("DT_INT32", [ids]), "attention_mask": ("DT_INT32", [[1] * len(ids)])},
                                            ["attentions", "probabilities"], deadline)
        weights = out["attentions"][0]
        layers, heads = len(weights), len(weights[0]) if weights else 0
        if body.layer is not None and body.layer >= layers:
            raise errors.InvalidInput(f"this model has layers 0..{layers - 1}", "layer")
        if body.head is not None and body.head >= heads:
            raise errors.InvalidInput(f"this model has heads 0..{heads - 1}", "head")
        if body.layer is not None:
            weights = weights[body.layer] if body.head is None else weights[body.layer][body.head]
        probs = [float(p) for p in out["probabilities"][0]]
        labels = served.label_names or [str(i) for i in range(len(probs))]
        best = max(range(len(probs)), key=probs.__getitem__)
        return {"model": name, "version": served.version, "tokens": list(encoding.tokens), "layers": layers,
                "heads": heads, "layer": body.layer, "head": body.head, "label": labels[best],
                "probabilities": dict(zip(labels, probs)), "attentions": weights}

    # The deadline, the version pinning and the retry on a vanished version are the service's own.
    return await service._on_latest(name, service.settings.timeout_seconds, run)


@router.post("/v1/models/{name}:attention", response_model=AttentionResponse,
             responses={400: {"description": "not a classifier, or exported without --with-attention"},
                        404: {"description": "unknown model"},
                        413: {"description": "text longer than the model's max_length tokens or --max-chars"},
                        422: {"description": "not a JSON object with a valid text, layer and head"}})
async def attention(name: str, body: AttentionRequest, service: InferenceService = Depends(get_service)):
    return await explain(service, name, body)
