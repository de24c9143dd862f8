"""Answer questions in process: windows (``features``) -> the Keras model's logits -> spans (``decode``).

``answer_question(trained, question, context, top_k=3)`` is what ``tfxformers answer`` and the notebook
call; the proxy's ``:answer`` does the same with TF Serving in the middle, with the same window plan, the
same padding (``pad_windows``) and the same decoding, so both give the same answers.
"""
from __future__ import annotations

from typing import Sequence

from tfxformers.errors import UserError
from tfxformers.models.qa import decode, features
from tfxformers.models.qa.features import pad_windows, window_buckets  # noqa: F401  (shared with the proxy)

PREDICT_BATCH = 32


def predict_logits(model, windows: Sequence[features.QAWindow], *, input_names: Sequence[str], pad_id: int,
                   max_seq_len: int, batch_size: int = PREDICT_BATCH):
    """Start and end logits of every window (lists of float lists), ``batch_size`` windows per model call."""
    import numpy as np

    starts, ends = [], []
    for first in range(0, len(windows), batch_size):
        chunk = windows[first:first + batch_size]
        rows = pad_windows(chunk, pad_id, max_seq_len)
        out = model({name: np.asarray(rows[name], dtype=np.int32) for name in input_names}, training=False)
        starts.extend(np.asarray(out["start_logits"]).tolist())
        ends.extend(np.asarray(out["end_logits"]).tolist())
    return starts, ends


def check_answer_options(top_k: int, max_answer_len: int, doc_stride: int | None) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise UserError(f"--top-k must be at least 1 (got {top_k!r})")
    if not isinstance(max_answer_len, int) or max_answer_len < 1:
        raise UserError(f"--max-answer-len must be at least 1 (got {max_answer_len!r})")
    if doc_stride is not None and (not isinstance(doc_stride, int) or doc_stride < 0):
        raise UserError(f"--doc-stride must be >= 0 (got {doc_stride!r})")


def answer_question(trained, question: str, context: str, *, top_k: int = 1,
                    max_answer_len: int = decode.MAX_ANSWER_LEN, doc_stride: int | None = None,
                    handle_impossible_answer: bool = False, max_windows: int | None = None,
                    tokenizer=None) -> dict:
    """``{"answers": [{answer, score, start, end}], "windows", "context_tokens", "question_tokens",
    "question_tokens_read", "notes"}`` for one question.

    ``trained`` is a ``models.artifacts.TrainedModel`` of kind ``qa``; ``doc_stride`` defaults to the one it was
    trained with, and one given that no window could honour is a ``UserError`` with the range. A question longer
    than a window holds is cut to its first ``question_tokens_read`` tokens; ``notes`` says so (the CLI prints it).
    """
    check_answer_options(top_k, max_answer_len, doc_stride)
    fast = tokenizer or features.fast_tokenizer(trained.tokenizer)
    specials = features.Specials.of(fast)
    if doc_stride is not None:
        features.check_doc_stride(doc_stride, trained.max_seq_len, specials.pair_seps)
    stride = trained.doc_stride if doc_stride is None else doc_stride
    context_tokens = features.encode_context(fast, context) if context and context.strip() else None
    windows = features.plan_windows(fast, question, context, max_seq_len=trained.max_seq_len, doc_stride=stride,
                                    max_windows=max_windows, context_tokens=context_tokens)
    asked = len(fast.encode(question, add_special_tokens=False).ids)
    read = min(asked, features.question_token_limit(trained.max_seq_len, pair_seps=specials.pair_seps))
    notes = [] if read == asked else [f"the question is {asked} tokens; only its first {read} were read (a window "
                                      f"of this model holds at most {read} question tokens)"]
    starts, ends = predict_logits(trained.keras_model, windows, input_names=trained.input_names,
                                  pad_id=specials.pad_id, max_seq_len=trained.max_seq_len)
    answers = decode.decode_answers(context, windows, starts, ends, top_k=top_k, max_answer_len=max_answer_len,
                                    handle_impossible_answer=handle_impossible_answer)
    return {"answers": [{k: a[k] for k in ("answer", "score", "start", "end")} for a in answers],
            "windows": len(windows), "context_tokens": len(context_tokens[0]), "question_tokens": asked,
            "question_tokens_read": read, "notes": notes}


def predict_examples(trained, examples: Sequence[features.QAExample], *, max_answer_len: int = decode.MAX_ANSWER_LEN,
                     handle_impossible_answer: bool = False) -> dict[str, str]:
    """``id -> best answer text`` for SQuAD examples (batched across examples: one pass over all windows)."""
    fast = features.fast_tokenizer(trained.tokenizer)
    built = features.build_features(fast, examples, max_seq_len=trained.max_seq_len, doc_stride=trained.doc_stride,
                                    labelled=False)
    specials = features.Specials.of(fast)
    starts, ends = predict_logits(trained.keras_model, built.windows, input_names=trained.input_names,
                                  pad_id=specials.pad_id, max_seq_len=trained.max_seq_len)
    grouped: dict[int, list[int]] = {}
    for i, window in enumerate(built.windows):
        grouped.setdefault(window.example_index, []).append(i)
    predictions = {}
    for index, example in enumerate(examples):
        rows = grouped.get(index, [])
        answers = decode.decode_answers(example.context, [built.windows[i] for i in rows], [starts[i] for i in rows],
                                        [ends[i] for i in rows], max_answer_len=max_answer_len,
                                        handle_impossible_answer=handle_impossible_answer)
        predictions[example.id] = decode.best_answer_text(answers)
    return predictions
