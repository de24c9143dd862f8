"""``POST /v1/models/{name}:answer``: extractive question answering over a context of any length.

The question and context are tokenized here into overlapping windows of the export's maximum length
(``models.qa.features``, the same plan ``tfxformers answer`` uses), every window goes to the version's
``answer`` signature in ONE Predict call (``--answer-batch-windows`` > 0 splits them into calls of that
many rows, sent concurrently; the benchmark compares both), and the start/end logits are decoded into
spans with character offsets into the context (``models.qa.decode``, shared with ``tfxformers answer``).
Limits, checked before any model call: ``--max-context-chars`` characters and ``--max-answer-windows``
windows per context (more: 413). Nothing here imports TensorFlow or numpy.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool, StrictInt

from tfxformers.errors import UserError
from tfxformers.models.qa import decode, features
from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import Deadline
from tfxformers.serving.proxy.models import ServedModel
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, Text
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])
SIGNATURE = "answer"
MAX_TOP_K = 100


class AnswerRequest(BaseModel):
    model_config = STRICT_BODY

    question: Text = Field(..., min_length=1, examples=["When is the cake done?"])
    context: Text = Field(..., min_length=1, description="the text to find the answer in; any length up to the "
                          "proxy's --max-context-chars", examples=["Bake for 30 minutes. It is done when it springs back."])
    top_k: StrictInt = Field(1, ge=1, le=MAX_TOP_K, description="answers to return, best first")
    max_answer_len: StrictInt = Field(decode.MAX_ANSWER_LEN, ge=1, le=512, description="longest answer, in tokens")
    doc_stride: StrictInt | None = Field(None, ge=0, le=4096, description="context tokens neighbouring windows "
                                         "share (at most half a window); default: the model's")
    handle_impossible_answer: StrictBool = Field(False, description="allow the empty answer when the model prefers it")


class Answer(BaseModel):
    answer: str = Field(description="context[start:end]; empty for the null answer")
    score: float = Field(description="p(start) * p(end) in the window it was found in")
    start: int = Field(description="character offset in the context")
    end: int = Field(description="character offset in the context (exclusive)")


class AnswerResponse(BaseModel):
    model: str
    version: int
    answers: list[Answer]
    windows: int = Field(description="windows the context was split into")
    context_tokens: int
    predict_calls: int = Field(description="Predict calls made (1 unless --answer-batch-windows splits them)")


def _plan(served: ServedModel, body: AnswerRequest, max_windows: int):
    """Windows of the request (CPU work; run in a thread so a 20,000-token context does not stall the loop)."""
    meta = served.metadata
    if None in (meta.get("cls_id"), meta.get("sep_id")):
        raise errors.BackendFailed(f"model {served.name!r}: its metadata has no cls_id/sep_id")
    specials = features.Specials.from_metadata(meta)
    stride = body.doc_stride if body.doc_stride is not None else int(meta.get("doc_stride", features.DOC_STRIDE))
    tokenizer = served.encoder.tokenizer
    try:
        context_tokens = features.encode_context(tokenizer, body.context)
        windows = features.plan_windows(tokenizer, body.question, body.context, max_seq_len=int(meta["max_length"]),
                                        doc_stride=stride, max_windows=max_windows, specials=specials,
                                        context_tokens=context_tokens)
    except features.ContextTooLong as exc:
        raise errors.TooLarge(f"context: {exc}") from None
    except UserError as exc:
        field = "question" if "question" in str(exc) else "context" if "context" in str(exc) else None
        raise errors.InvalidInput(str(exc), field) from None
    return windows, len(context_tokens[0])


async def answer_question(service: InferenceService, name: str, body: AnswerRequest) -> dict:
    settings = service.settings
    if len(body.context) > settings.max_context_chars:
        raise errors.TooLarge(f"context holds {len(body.context)} characters; the limit is "
                              f"{settings.max_context_chars} (--max-context-chars)")
    if len(body.question) > settings.max_chars:
        raise errors.TooLarge(f"question holds {len(body.question)} characters; the limit is {settings.max_chars}")

    async def run(served: ServedModel, deadline: Deadline) -> dict:
        if served.kind != "qa":
            raise errors.WrongModelKind(f"model {served.name!r} is a {served.kind} model and has no :answer")
        windows, context_tokens = await asyncio.to_thread(_plan, served, body, settings.max_answer_windows)
        per_call = settings.answer_batch_windows or len(windows)
        chunks = [windows[i:i + per_call] for i in range(0, len(windows), per_call)]
        pad_id = int(served.metadata.get("pad_id") or 0)
        max_length = int(served.metadata["max_length"])

        async def call(chunk):
            rows = features.pad_windows(chunk, pad_id, max_length)
            out = await service.backend.predict(served.name, served.version, SIGNATURE,
                                                {k: ("DT_INT32", v) for k, v in rows.items()},
                                                ["start_logits", "end_logits"], deadline)
            if len(out["start_logits"]) != len(chunk) or len(out["end_logits"]) != len(chunk):
                raise errors.BackendFailed(f"{SIGNATURE} answered {len(out['start_logits'])} rows for {len(chunk)} windows")
            return out["start_logits"], out["end_logits"]

        outputs = await asyncio.gather(*(call(chunk) for chunk in chunks))
        starts = [row for s, _ in outputs for row in s]
        ends = [row for _, e in outputs for row in e]
        answers = await asyncio.to_thread(decode.decode_answers, body.context, windows, starts, ends,
                                          top_k=body.top_k, max_answer_len=body.max_answer_len,
                                          handle_impossible_answer=body.handle_impossible_answer)
        return {"model": name, "version": served.version,
                "answers": [{k: a[k] for k in ("answer", "score", "start", "end")} for a in answers],
                "windows": len(windows), "context_tokens": context_tokens, "predict_calls": len(chunks)}

    return await service._on_latest(name, settings.answer_timeout_seconds, run)


@router.post("/v1/models/{name}:answer", response_model=AnswerResponse,
             responses={400: {"description": "the model is not a question-answering model"},
                        404: {"description": "unknown model"},
                        413: {"description": "context over --max-context-chars or --max-answer-windows"},
                        422: {"description": "not a JSON object of a valid question, context and options"},
                        503: {"description": "model server unreachable"}, 504: {"description": "model server too slow"}})
async def answer(name: str, body: AnswerRequest, service: InferenceService = Depends(get_service)):
    return await answer_question(service, name, body)
