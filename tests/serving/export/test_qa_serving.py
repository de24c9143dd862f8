"""Question answering served: `tfxformers train qa` -> `tfxformers export` (the `answer` signature) -> a real
`tfxformers serve` -> a real `tfxformers proxy` on 127.0.0.1, compared with the in-process `tfxformers answer`.

One tiny QA model (trained one epoch on the hand-made course file) and one tiny Hugging Face
``BertForQuestionAnswering`` checkpoint exported as it is; contexts from a few words to 20,000 tokens.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process, tfxformers_command

DATA = Path(__file__).resolve().parents[2] / "data" / "qa_course.json"
MAX_SEQ_LEN = 256
DOC_STRIDE = 96
LONG_TOKENS = 20_000
WINDOW_LIMIT = 200
RECIPE_QUESTION = "When is the cake done?"


def _course_contexts() -> list[str]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]]


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    """Trained and exported models, a server and a proxy over gRPC; torn down after the module."""
    from tokenizers import Tokenizer

    from tfxformers.cli import main
    from tfxformers.models.qa import features, tiny

    root = tmp_path_factory.mktemp("qa")
    words = sorted({w.strip(".,;:()'\"").lower() for c in _course_contexts() for w in c.split()})
    checkpoint = tiny.make_tiny_qa_checkpoint(root / "checkpoint", words=words, hidden_size=32,
                                              max_position_embeddings=512)
    trained = root / "trained"
    assert main(["train", "qa", "--data", str(DATA), "--encoder", str(checkpoint), "--output", str(trained),
                 "--epochs", "1", "--max-seq-len", str(MAX_SEQ_LEN), "--doc-stride", str(DOC_STRIDE), "--batch-size", "16"]) == 0
    base = root / "models"
    assert main(["export", "--model", str(trained), "--name", "qa", "--model-base", str(base)]) == 0
    assert main(["export", "--model", str(checkpoint), "--name", "qa_hf", "--model-base", str(base)]) == 0

    fast = features.fast_tokenizer(Tokenizer.from_file(str(trained / "tokenizer" / "tokenizer.json")))
    long_context, over_context = _long_contexts(fast)
    server, grpc_port, rest_port = start_model_server(base, max_rows=1024, max_tokens=1_000_000,
                                                      max_request_bytes=64 * 1024 * 1024)
    try:
        proxy, url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", log_path=root / "proxy.log", extra_args=[
            "--max-context-chars", str(len(over_context) + 10), "--max-answer-windows", str(WINDOW_LIMIT),
            # Every window in one call (the limits of the server above), as test_a_20000_token_context... checks.
            "--answer-batch-windows", "0", "--backend-max-rows", "1024", "--backend-max-tokens", "1000000"])
    except RuntimeError:
        stop_model_server(server)
        raise
    try:
        yield {"trained": trained, "checkpoint": checkpoint, "base": base, "url": url, "rest_port": rest_port,
               "long": long_context, "over": over_context, "tokenizer": fast}
    finally:
        stop_process(proxy)
        stop_model_server(server)


def _long_contexts(fast) -> tuple[str, str]:
    """A context of at least LONG_TOKENS tokens (the course passages over and over), and one needing more than
    WINDOW_LIMIT windows."""
    from tfxformers.models.qa import features

    passages = _course_contexts()
    pieces, tokens, i = [], 0, 0
    while tokens < LONG_TOKENS:
        piece = passages[i % len(passages)]
        pieces.append(piece)
        tokens += len(fast.encode(piece, add_special_tokens=False).ids)
        i += 1
    long_context = "\n\n".join(pieces)
    over = long_context
    while len(features.plan_windows(fast, RECIPE_QUESTION, over, max_seq_len=MAX_SEQ_LEN,
                                    doc_stride=DOC_STRIDE)) <= WINDOW_LIMIT:
        over = over + "\n\n" + long_context[: len(long_context) // 4]
    return long_context, over


def _in_process(model_dir, question, context, **options):
    from tfxformers.models.qa import inference, model

    trained = _loaded(str(model_dir))
    return inference.answer_question(trained, question, context, **options)


_LOADED = {}


def _loaded(path: str):
    from tfxformers.models.qa import model

    if path not in _LOADED:
        _LOADED[path] = model.load_qa(path)
    return _LOADED[path]


def _same_answers(served: list[dict], local: list[dict]) -> None:
    assert [(a["answer"], a["start"], a["end"]) for a in served] == [(a["answer"], a["start"], a["end"]) for a in local]
    for a, b in zip(served, local):
        assert a["score"] == pytest.approx(b["score"], rel=1e-3, abs=1e-7)


def test_export_round_trip_and_batching_safe_mask(qa):
    import numpy as np
    import tensorflow as tf

    from tfxformers.models.qa import features

    loaded = tf.saved_model.load(str(qa["base"] / "qa" / "1"))
    info = json.loads((qa["base"] / "qa" / "1" / "assets.extra" / "tfxformers.json").read_text())
    assert info["kind"] == "qa" and info["max_length"] == MAX_SEQ_LEN and info["signatures"]["answer"]["outputs"] == \
        ["start_logits", "end_logits"]
    trained = _loaded(str(qa["trained"]))
    context = _course_contexts()[4]
    windows = features.plan_windows(qa["tokenizer"], RECIPE_QUESTION, context, max_seq_len=MAX_SEQ_LEN)
    rows = {k: np.asarray(v, np.int32) for k, v in features.pad_windows(windows, 0, MAX_SEQ_LEN).items()}
    served = loaded.signatures["answer"](**{k: tf.constant(v) for k, v in rows.items()})
    local = trained.keras_model(rows, training=False)
    n = len(windows[0])
    for key in ("start_logits", "end_logits"):
        np.testing.assert_allclose(served[key].numpy()[:, :n], np.asarray(local[key])[:, :n], atol=1e-5)
    # TF Serving's batcher pads with each tensor's first element: [CLS] ids, mask 1, type 0.
    width = rows["input_ids"].shape[1] + 16
    padded = {k: np.concatenate([v, np.full((v.shape[0], 16), v[0, 0], np.int32)], axis=1) for k, v in rows.items()}
    assert padded["input_ids"].shape[1] == width
    again = loaded.signatures["answer"](**{k: tf.constant(v) for k, v in padded.items()})
    for key in ("start_logits", "end_logits"):
        np.testing.assert_allclose(again[key].numpy()[:, :n], served[key].numpy()[:, :n], atol=1e-5)


@pytest.mark.parametrize("name, source", [("qa", "trained"), ("qa_hf", "checkpoint")])
def test_proxy_answer_equals_tfxformers_answer(qa, name, source):
    context = _course_contexts()[4]
    body = {"question": RECIPE_QUESTION, "context": context, "top_k": 3, "max_answer_len": 20}
    answer = httpx.post(f"{qa['url']}/v1/models/{name}:answer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert served["model"] == name and served["windows"] == 1 and served["predict_calls"] == 1
    local = _in_process(qa[source], RECIPE_QUESTION, context, top_k=3, max_answer_len=20)
    _same_answers(served["answers"], local["answers"])
    for a in served["answers"]:
        assert context[a["start"]:a["end"]] == a["answer"] and a["answer"]


def test_cli_answer_prints_the_same_answers(qa, tmp_path):
    context = _course_contexts()[9]
    (tmp_path / "story.txt").write_text(context, encoding="utf-8")
    out = subprocess.run(tfxformers_command() + ["answer", "--model", str(qa["trained"]), "--question",
                                                 "Who does space belong to?", "--context-file", str(tmp_path / "story.txt"),
                                                 "--top-k", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    served = httpx.post(f"{qa['url']}/v1/models/qa:answer", timeout=30, json={
        "question": "Who does space belong to?", "context": context, "top_k": 2}).json()
    _same_answers(served["answers"], printed["answers"])


def test_a_20000_token_context_in_one_predict_call(qa):
    context = qa["long"]
    started = time.perf_counter()
    answer = httpx.post(f"{qa['url']}/v1/models/qa:answer", timeout=120, json={
        "question": RECIPE_QUESTION, "context": context, "top_k": 3, "handle_impossible_answer": True})
    seconds = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert served["context_tokens"] >= LONG_TOKENS and served["predict_calls"] == 1
    assert served["windows"] > LONG_TOKENS // MAX_SEQ_LEN
    local = _in_process(qa["trained"], RECIPE_QUESTION, context, top_k=3, handle_impossible_answer=True)
    assert local["windows"] == served["windows"] and local["context_tokens"] == served["context_tokens"]
    _same_answers(served["answers"], local["answers"])
    for a in served["answers"]:
        assert context[a["start"]:a["end"]] == a["answer"]
    print(f"20,000-token context: {served['windows']} windows, {seconds:.2f} s through the proxy")


@pytest.mark.parametrize("body, status, field", [
    ({"question": "", "context": "some text"}, 422, "question"),
    ({"question": "   ", "context": "some text"}, 422, "question"),
    ({"question": "what?", "context": ""}, 422, "context"),
    ({"question": "what?", "context": " \n "}, 422, "context"),
    ({"question": "what?", "context": "some text", "top_k": -1}, 422, "top_k"),
    ({"question": "what?", "context": "some text", "top_k": 0}, 422, "top_k"),
    ({"question": "what?", "context": "some text", "top_k": "3"}, 422, "top_k"),
    ({"question": "what?", "context": "some text", "max_answer_len": 0}, 422, "max_answer_len"),
    ({"question": "what?", "context": "some text", "doc_stride": -5}, 422, "doc_stride"),
    ({"question": "what?", "context": "some text", "handle_impossible_answer": "yes"}, 422, "handle_impossible_answer"),
    ({"question": "what?", "context": "some text", "max_len": 5}, 422, "max_len"),
    ({"question": "what?"}, 422, "context"),
    ({"question": "\u200b\u200d", "context": "some text"}, 422, "question"),
    ({"question": "what?", "context": "\x00\ufeff"}, 422, "context"),
    # No window of 256 tokens can share more than (256 - 4) // 2 context tokens (issue 23's audit: clamped unsaid).
    ({"question": "what?", "context": "some text", "doc_stride": 4000}, 422, "doc_stride 4000 is more than windows "
     "of 256 tokens can share: neighbours share at most half of a window's context, so it must lie between 0 and 126"),
    ({"question": "what?", "context": "some text", "doc_stride": 127}, 422, "between 0 and 126"),
])
def test_bad_answer_requests_get_4xx_with_a_message(qa, body, status, field):
    answer = httpx.post(f"{qa['url']}/v1/models/qa:answer", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["kind"] == "invalid_input" and field in error["error"] and len(error["error"]) > len(field) + 2


def test_a_long_question_is_refused_over_its_limit_and_said_to_be_cut_below_it(qa):
    """Issue 23's audit: a question of 200k characters was cut to 64 tokens without a word."""
    context = _course_contexts()[4]
    over = httpx.post(f"{qa['url']}/v1/models/qa:answer", json={"question": "why " * 251, "context": context},
                      timeout=30)
    assert over.status_code == 413 and over.json()["kind"] == "too_large", over.text
    assert "question holds 1004 characters; the limit is 1000" in over.json()["error"]
    edge = httpx.post(f"{qa['url']}/v1/models/qa:answer", json={"question": "x" * 1000, "context": context,
                                                                 "doc_stride": 126}, timeout=30)
    assert edge.status_code == 200, edge.text
    long_question = "when is the cake done and " * 20 + "?"
    cut = httpx.post(f"{qa['url']}/v1/models/qa:answer", json={"question": long_question, "context": context},
                     timeout=30).json()
    assert cut["question_tokens"] > 64 and cut["question_tokens_read"] == 64, cut
    short = httpx.post(f"{qa['url']}/v1/models/qa:answer", json={"question": RECIPE_QUESTION, "context": context},
                       timeout=30).json()
    assert short["question_tokens_read"] == short["question_tokens"] < 64, short
    # `tfxformers answer` reads the same 64 tokens and says so; a --doc-stride no window can honour is refused.
    local = _in_process(qa["trained"], long_question, context)
    assert local["question_tokens"] == cut["question_tokens"] and local["question_tokens_read"] == 64
    _same_answers(cut["answers"], local["answers"])
    assert local["notes"] == [f"the question is {cut['question_tokens']} tokens; only its first 64 were read (a "
                              "window of this model holds at most 64 question tokens)"]


def test_cli_answer_notes_a_cut_question_and_refuses_an_impossible_doc_stride(qa, capsys):
    from tfxformers.cli import main
    from tfxformers.errors import UserError

    context = _course_contexts()[4]
    assert main(["answer", "--model", str(qa["trained"]), "--context", context, "--question",
                 "when is the cake done and " * 20]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("note: the question is ") and "only its first 64 were read" in err[0], err
    with pytest.raises(UserError) as refused:  # what `answer --doc-stride 127` prints after "error: "
        _in_process(qa["trained"], RECIPE_QUESTION, context, doc_stride=127)
    assert str(refused.value) == ("--doc-stride 127 is more than windows of 256 tokens can share: neighbours share at "
                                  "most half of a window's context, so it must lie between 0 and 126 (less for long "
                                  "questions)")
    assert _in_process(qa["trained"], RECIPE_QUESTION, context, doc_stride=126)["answers"]


def test_contexts_over_the_limits_get_413(qa):
    over_chars = "x " * (len(qa["over"]) // 2 + 20)
    answer = httpx.post(f"{qa['url']}/v1/models/qa:answer", json={"question": "q?", "context": over_chars}, timeout=30)
    assert answer.status_code == 413 and "--max-context-chars" in answer.json()["error"]
    answer = httpx.post(f"{qa['url']}/v1/models/qa:answer", json={"question": RECIPE_QUESTION, "context": qa["over"]},
                        timeout=60)
    assert answer.status_code == 413, answer.text
    assert "windows" in answer.json()["error"] and answer.json()["kind"] == "too_large"


def test_unknown_model_and_wrong_route(qa):
    answer = httpx.post(f"{qa['url']}/v1/models/nope:answer", json={"question": "q?", "context": "c"}, timeout=30)
    assert answer.status_code == 404
    answer = httpx.post(f"{qa['url']}/v1/models/qa:classify", json={"texts": ["c"]}, timeout=30)
    assert answer.status_code == 400 and ":answer" in answer.json()["error"]


def test_the_answer_router_imports_no_tensorflow_or_numpy():
    code = ("import sys; import tfxformers.serving.proxy.app, tfxformers.serving.proxy.routers.answer; "
            "bad = [m for m in ('tensorflow', 'numpy') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
