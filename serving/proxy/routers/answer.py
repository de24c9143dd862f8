"""``POST /v1/models/{name}:answer``: extractive question answering over a context of any length.

The question and context are tokenized here into overlapping windows of the export's maximum length
(``models.qa.features``, the same plan ``tfxformers answer`` uses); the windows go to the version's
``answer`` signature in Predict calls planned by ``plan_calls``, and the start/end logits are decoded into
spans with character offsets into the context (``models.qa.decode``, shared with ``tfxformers answer``).

How the calls are cut (``plan_calls``):

* each window is padded only to the smallest of the export's ``buckets`` that holds it, and one call holds
  windows of one padded length, so a short context (or any short window) costs its own length, not 384;
* windows per call: ``--answer-batch-windows`` if given (0: as many as the server takes), else the export's
  ``preferred_windows_per_call`` (written from a CPU measurement, ``bench/bench_qa.py``: with MiniLM on 2
  cores, calls of 4 windows of 384 tokens answer a 20,000-token context 1.2-1.45x faster than one call of all
  79 windows, and 1.15x faster than one call per window);
* never more than the model server takes in one request (``--backend-max-rows``, ``--backend-max-tokens``:
  ``tfxformers serve``'s ``--max-rows`` / ``--max-tokens`` defaults), so a context the proxy accepts is never
  refused by a server left at its defaults; calls of one group are made equal in size;
* at most ``--answer-concurrency`` calls of one request are in flight at once.

Limits, checked before any model call: ``--max-context-chars`` characters and ``--max-answer-windows``
windows per context, ``MAX_QUESTION_CHARS`` characters of question (more: 413). A window holds at most 64
of the question's tokens (``features.question_token_limit``); a longer question is read cut, and the answer
says so (``question_tokens_read`` < ``question_tokens``), as ``tfxformers answer`` prints a note. An explicit
``doc_stride`` no window can honour is a 422 with its range. Nothing here imports TensorFlow or numpy.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool, StrictInt

from tfxformers.errors import UserError
from tfxformers.models.qa import decode, features
from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import Deadline
from tfxformers.serving.proxy.calls import export_buckets, plan_calls
from tfxformers.serving.proxy.models import ServedModel
from tfxformers.serving.proxy.routers.deps import get_service
from tfxformers.serving.proxy.routers.fields import STRICT_BODY, VisibleText
from tfxformers.serving.proxy.service import InferenceService

router = APIRouter(tags=["models"])
SIGNATURE = "answer"
MAX_TOP_K = 100
# Far above what a window reads (64 tokens; no tokenizer averages 15 characters a token): a longer "question" is
# a client's mistake (the context sent as the question, say), refused rather than cut to a fraction unseen.
MAX_QUESTION_CHARS = 1000
# Exports made before preferred_windows_per_call: the export's own rule (serving.export.qa.CPU_TOKENS_PER_CALL,
# which this wing may not import), tokens of one call on a CPU server.
FALLBACK_TOKENS_PER_CALL = 1536


class AnswerRequest(BaseModel):
    model_config = STRICT_BODY

    question: VisibleText = Field(..., min_length=1, description=f"at most {MAX_QUESTION_CHARS} characters (more: "
                                  "413); a window reads at most 64 of its tokens", examples=["When is the cake done?"])
    context: VisibleText = Field(..., min_length=1, description="the text to find the answer in; any length up to the "
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
    question_tokens: int = Field(description="tokens of the question")
    question_tokens_read: int = Field(description="of those, the ones the model read (fewer: the question was cut "
                                      "to what a window holds)")
    predict_calls: int = Field(description="Predict calls made (windows are grouped by padded length and cut to "
                               "the windows per call and the server's limits)")


def _plan(served: ServedModel, body: AnswerRequest, max_windows: int):
    """Windows of the request (CPU work; run in a thread so a 20,000-token context does not stall the loop)."""
    meta = served.metadata
    if None in (meta.get("cls_id"), meta.get("sep_id")):
        raise errors.BackendFailed(f"model {served.name!r}: its metadata has no cls_id/sep_id")
    specials = features.Specials.from_metadata(meta)
    max_seq_len = int(meta["max_length"])
    if body.doc_stride is not None:
        try:
            features.check_doc_stride(body.doc_stride, max_seq_len, specials.pair_seps, option="doc_stride")
        except UserError as exc:
            raise errors.InvalidInput(str(exc), "doc_stride") from None
    # The export's own doc_stride is used as it was trained, windows sharing at most half their context.
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
    asked = len(tokenizer.encode(body.question, add_special_tokens=False).ids)
    read = min(asked, features.question_token_limit(max_seq_len, pair_seps=specials.pair_seps))
    return windows, len(context_tokens[0]), asked, read


def window_buckets(meta: dict) -> tuple[int, ...]:
    """The export's padding lengths (``buckets``), or those ``features`` derives for older exports."""
    return export_buckets(meta) or features.window_buckets(int(meta["max_length"]))


def windows_per_call(settings, meta: dict) -> int | None:
    """Windows one Predict call should hold before the server's limits cut it (None: all of them)."""
    if settings.answer_batch_windows is not None:
        return settings.answer_batch_windows or None
    preferred = meta.get("preferred_windows_per_call")
    if isinstance(preferred, int) and not isinstance(preferred, bool) and preferred > 0:
        return preferred
    return max(1, FALLBACK_TOKENS_PER_CALL // int(meta["max_length"]))


async def answer_question(service: InferenceService, name: str, body: AnswerRequest) -> dict:
    settings = service.settings
    if len(body.context) > settings.max_context_chars:
        raise errors.TooLarge(f"context holds {len(body.context)} characters; the limit is "
                              f"{settings.max_context_chars} (--max-context-chars)")
    question_limit = min(MAX_QUESTION_CHARS, settings.max_chars)
    if len(body.question) > question_limit:
        raise errors.TooLarge(f"question holds {len(body.question)} characters; the limit is {question_limit} (a "
                              "window reads at most 64 of its tokens)")

    async def run(served: ServedModel, deadline: Deadline) -> dict:
        if served.kind != "qa":
            raise errors.WrongModelKind(f"model {served.name!r} is a {served.kind} model and has no :answer")
        windows, context_tokens, asked, read = await asyncio.to_thread(_plan, served, body, settings.max_answer_windows)
        meta = served.metadata
        calls = plan_calls([len(w) for w in windows], window_buckets(meta), windows_per_call(settings, meta),
                           settings.backend_max_rows, settings.backend_max_tokens)
        pad_id = int(meta.get("pad_id") or 0)
        in_flight = asyncio.Semaphore(settings.answer_concurrency)

        async def call(width: int, members: list[int]):
            rows = features.pad_to([windows[i] for i in members], width, pad_id)
            async with in_flight:
                out = await service.backend.predict(served.name, served.version, SIGNATURE,
                                                    {k: ("DT_INT32", v) for k, v in rows.items()},
                                                    ["start_logits", "end_logits"], deadline)
            if len(out["start_logits"]) != len(members) or len(out["end_logits"]) != len(members):
                raise errors.BackendFailed(f"{SIGNATURE} answered {len(out['start_logits'])} rows for "
                                           f"{len(members)} windows")
            return out["start_logits"], out["end_logits"]

        tasks = [asyncio.ensure_future(call(width, members)) for width, members in calls]
        try:
            outputs = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # a failed call fails the request: the queued ones need not hold the server
                task.cancel()
            raise
        starts: list = [None] * len(windows)
        ends: list = [None] * len(windows)
        for (_, members), (s, e) in zip(calls, outputs):
            for i, start_row, end_row in zip(members, s, e):
                starts[i], ends[i] = start_row, end_row
        answers = await asyncio.to_thread(decode.decode_answers, body.context, windows, starts, ends,
                                          top_k=body.top_k, max_answer_len=body.max_answer_len,
                                          handle_impossible_answer=body.handle_impossible_answer)
        return {"model": name, "version": served.version,
                "answers": [{k: a[k] for k in ("answer", "score", "start", "end")} for a in answers],
                "windows": len(windows), "context_tokens": context_tokens, "question_tokens": asked,
                "question_tokens_read": read, "predict_calls": len(calls)}

    return await service._on_latest(name, settings.answer_timeout_seconds, run)


@router.post("/v1/models/{name}:answer", response_model=AnswerResponse,
             responses={400: {"description": "the model is not a question-answering model"},
                        404: {"description": "unknown model"},
                        413: {"description": "context over --max-context-chars or --max-answer-windows"},
                        422: {"description": "not a JSON object of a valid question, context and options"},
                        503: {"description": "model server unreachable"}, 504: {"description": "model server too slow"}})
async def answer(name: str, body: AnswerRequest, service: InferenceService = Depends(get_service)):
    return await answer_question(service, name, body)
