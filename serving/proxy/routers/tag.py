"""``POST /v1/models/{name}:tag``: named entities or part-of-speech tags of raw texts, with character offsets.

The same steps as ``tfxformers tag``, from the shared pure-Python ``models.tagging.decode``: each text is split
into words (``split_words``) and tokenized once by the version's own ``tokenizer.json`` (no special tokens,
with character offsets); its pieces are cut into windows on word boundaries (``plan_text``, with the export's
``max_length``, ``overlap`` and framing ids); the windows of all texts of the request go to the version's
``tag`` signature in Predict calls of one padded length each (``calls.plan_calls``: the export's buckets, at
most ``--max-batch-size`` rows and the model server's limits per call); the logits come back through
``plan_tags`` (windows merged, one tag per word by ``aggregation``) and ``plan_answer`` (BIO entities for NER,
every word for POS). Every item's ``text`` is ``input[start:end]``.

``aggregation``: ``first`` (default; the piece the model was trained to label, what ``tfxformers tag`` does
unless told), ``average`` (the mean of the word's pieces' probabilities), ``max`` (its most confident piece).

Limits, checked before any model call: ``--max-texts`` texts and ``--max-chars`` characters per request,
``--max-windows`` windows per text (more: 413). Nothing here imports TensorFlow or NumPy.
"""
from __future__ import annotations

import asyncio
from typing import Literal, Union

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from tfxformers.models.tagging import decode
from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import Deadline
from tfxformers.serving.proxy.calls import export_buckets, pad_rows, plan_calls
from tfxformers.serving.proxy.models import ServedModel
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, VisibleText
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])
SIGNATURE, OUTPUT = "tag", "logits"


class TagRequest(BaseModel):
    model_config = STRICT_BODY

    texts: list[VisibleText] = Field(..., min_length=1, description="raw texts, at least one; each must have a "
                                     "visible character; a long one is windowed, not cut",
                                     examples=[["Heading to the Empire State Building with @paulwalk tomorrow"]])
    aggregation: Literal[decode.AGGREGATIONS] = Field(
        "first", description="how a word's pieces give its tag: first (the piece the model was trained to label), "
                             "average (the mean of the pieces' probabilities), max (the most confident piece)")


class Entity(BaseModel):
    entity: str = Field(description="the entity type (the BIO tags without B-/I-)")
    text: str = Field(description="input[start:end]")
    start: int = Field(description="character offset in the text")
    end: int = Field(description="character offset in the text (exclusive)")
    score: float = Field(description="the mean probability of its words' tags")


class Token(BaseModel):
    tag: str | None = Field(description="the word's tag (null for a word no piece covers, e.g. a lone zero-width "
                                        "character)")
    text: str = Field(description="input[start:end]")
    start: int
    end: int
    score: float = Field(description="the tag's probability")


class EntityResult(BaseModel):
    entities: list[Entity]
    words: int = Field(description="words the text was split into")
    windows: int = Field(description="windows the text's pieces were read in (1 unless longer than one window)")


class TokenResult(BaseModel):
    tokens: list[Token] = Field(description="every word, in order")
    words: int
    windows: int


class TagResponse(BaseModel):
    model: str
    version: int = Field(description="the served model version that answered")
    task: str = Field(description="ner (entities) or pos (a tag per word)")
    scheme: str = Field(description="BIO for ner; tags for pos")
    aggregation: str
    results: list[Union[EntityResult, TokenResult]] = Field(description="one per text, in order")
    predict_calls: int = Field(description="Predict calls made (windows grouped by padded length)")


def _plan(served: ServedModel, texts: list[str], max_windows: int):
    """Plans and id rows of the request's texts (CPU work; run in a thread)."""
    meta = served.metadata
    try:
        prefix, suffix = [int(i) for i in meta["prefix_ids"]], [int(i) for i in meta["suffix_ids"]]
        max_length = int(meta["max_length"])
        labels = served.label_names
        task = meta["task"]
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.BackendFailed(f"model {served.name!r}: its tagger metadata is incomplete ({exc})") from None
    if not labels:
        raise errors.BackendFailed(f"model {served.name!r}: its metadata has no label_names")
    per_window = decode.pieces_per_window(max_length, prefix, suffix)
    overlap = min(int(meta.get("overlap", decode.default_overlap(max_length))), per_window // 2)
    encodings = served.encoder.tokenizer.encode_batch(texts, add_special_tokens=False)
    plans = []
    for index, (text, encoding) in enumerate(zip(texts, encodings)):
        plan = decode.plan_text(text, decode.split_words(text), encoding.ids, encoding.offsets, per_window, overlap)
        if len(plan.windows) > max_windows:
            raise errors.TooLarge(f"texts[{index}] is {len(encoding.ids)} word pieces and would need "
                                  f"{len(plan.windows)} windows of {max_length}; the limit is {max_windows} windows "
                                  "per text (--max-windows)")
        plans.append(plan)
    windows = [(plan, window) for plan in plans for window in plan.windows]
    rows = [decode.window_ids(plan, window, prefix, suffix) for plan, window in windows]
    # A tagger trained with --word-shape also reads each piece's word shape (letter case).
    shapes = ([decode.window_shapes(plan, window, prefix, suffix) for plan, window in windows]
              if decode.SHAPE_INPUT in (meta.get("input_names") or ()) else None)
    return plans, rows, shapes, (len(prefix), len(suffix)), task


def _answers(served: ServedModel, plans, logits, framing, task: str, aggregation: str) -> list[dict]:
    empty_tag = served.metadata.get("empty_tag")
    results, at = [], 0
    for plan in plans:
        count = len(plan.windows)
        tags, scores = decode.plan_tags(plan, logits[at:at + count], framing, served.label_names, empty_tag,
                                        aggregation)
        results.append(decode.plan_answer(task, plan, tags, scores))
        at += count
    return results


async def tag_texts(service: InferenceService, name: str, body: TagRequest) -> dict:
    settings = service.settings
    service.check_texts(body.texts)

    async def run(served: ServedModel, deadline: Deadline) -> dict:
        InferenceService._require_kind(served, "tagger", "tag")
        plans, rows, shapes, framing, task = await asyncio.to_thread(_plan, served, body.texts, settings.max_windows)
        meta = served.metadata
        buckets = export_buckets(meta) or (int(meta["max_length"]),)
        calls = plan_calls([len(r) for r in rows], buckets, settings.max_batch_size, settings.backend_max_rows,
                           settings.backend_max_tokens)
        pad_id = int(meta.get("pad_id") or 0)

        async def call(width: int, members: list[int]):
            ids, mask = pad_rows([rows[i] for i in members], width, pad_id)
            inputs = {"input_ids": ("DT_INT32", ids), "attention_mask": ("DT_INT32", mask)}
            if shapes is not None:
                inputs[decode.SHAPE_INPUT] = ("DT_INT32", pad_rows([shapes[i] for i in members], width, 0)[0])
            out = await service.backend.predict(served.name, served.version, SIGNATURE, inputs, [OUTPUT], deadline)
            answer = out[OUTPUT]
            # A batching server may answer rows longer than sent (this call batched with wider ones, outputs
            # padded alike); the positions sent come first.
            if len(answer) != len(members) or any(len(row) < width for row in answer):
                shortest = min(map(len, answer), default=0)
                raise errors.BackendFailed(f"{SIGNATURE} answered {len(answer)} rows of {shortest} positions for "
                                           f"{len(members)} windows of {width}")
            return answer

        tasks = [asyncio.ensure_future(call(width, members)) for width, members in calls]
        try:
            outputs = await asyncio.gather(*tasks)
        except BaseException:
            for task_ in tasks:  # a failed call fails the request: the queued ones need not hold the server
                task_.cancel()
            raise
        logits: list = [None] * len(rows)
        for (_, members), answer in zip(calls, outputs):
            for i, row in zip(members, answer):
                logits[i] = row[:len(rows[i])]
        results = await asyncio.to_thread(_answers, served, plans, logits, framing, task, body.aggregation)
        return {"model": name, "version": served.version, "task": task,
                "scheme": meta.get("scheme") or ("BIO" if task == "ner" else "tags"),
                "aggregation": body.aggregation, "results": results, "predict_calls": len(calls)}

    return await service._on_latest(name, settings.tag_timeout_seconds, run)


@router.post("/v1/models/{name}:tag", response_model=TagResponse,
             responses={400: {"description": "the model is not a tagger"}, 404: {"description": "unknown model"},
                        413: {"description": "too many texts, characters, or windows of one text"},
                        422: {"description": "not a JSON object of valid texts and a known aggregation"},
                        503: {"description": "model server unreachable"}, 504: {"description": "model server too slow"}})
async def tag(name: str, body: TagRequest, service: InferenceService = Depends(get_service)):
    return await tag_texts(service, name, body)
