"""How the proxy's ``:answer`` cuts a context's windows into Predict calls, against a real ``tfxformers serve``.

One tiny ``BertForQuestionAnswering`` checkpoint (random weights, max_seq_len 384, doc_stride 128) exported
as it is; one server and one proxy, both at their default limits (the server's ``--max-rows 128 --max-tokens
16384`` take at most 42 windows of 384 tokens per call). Checked: a context as large as the proxy accepts is
answered, not refused by the server (502 before: all its windows went in one call); the answer through the
proxy equals the in-process ``tfxformers answer`` on a multi-window non-ASCII context; the call plan itself
(buckets, windows per call, the server's limits) and the new flags' bad values.

Marked ``once``: the call plan is the proxy's own logic (no TensorFlow), and the gRPC path it calls through
is the one ``test_proxy.py`` runs on both stacks.
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tfxformers.serving.proxy.routers.answer import plan_calls, window_buckets, windows_per_call
from tfxformers.serving.proxy.settings import ProxySettings
from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

pytestmark = pytest.mark.once

DATA = Path(__file__).resolve().parents[2] / "data" / "qa_course.json"
QUESTION = "When is the cake done?"
NON_ASCII = "Zoë’s café in Zürich — “naïve” crème brûlée, 東京 and Ελλάδα; the soufflé rises at 180 °C. "


def _passages() -> list[str]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tokenizers import Tokenizer

    from tfxformers.cli import main
    from tfxformers.models.qa import features, tiny

    root = tmp_path_factory.mktemp("answer")
    words = sorted({w.strip(".,;:()'\"").lower() for c in _passages() for w in c.split()})
    checkpoint = tiny.make_tiny_qa_checkpoint(root / "checkpoint", words=words, hidden_size=32,
                                              max_position_embeddings=512)
    base = root / "models"
    assert main(["export", "--model", str(checkpoint), "--name", "qa", "--model-base", str(base)]) == 0
    version = base / "qa" / "1"
    info = json.loads((version / "assets.extra" / "tfxformers.json").read_text())
    fast = features.fast_tokenizer(Tokenizer.from_file(str(version / "assets.extra" / "tokenizer" / "tokenizer.json")))
    server, grpc_port, rest_port = start_model_server(base)  # the server's default limits
    try:
        proxy, url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", log_path=root / "proxy.log")  # and the proxy's
    except RuntimeError:
        stop_model_server(server)
        raise
    try:
        yield {"checkpoint": checkpoint, "info": info, "tokenizer": fast, "url": url, "rest_port": rest_port}
    finally:
        stop_process(proxy)
        stop_model_server(server)


def _windows(served, context: str):
    from tfxformers.models.qa import features

    return features.plan_windows(served["tokenizer"], QUESTION, context, max_seq_len=served["info"]["max_length"],
                                 doc_stride=served["info"]["doc_stride"])


def _largest_accepted_context(served) -> str:
    """Course passages appended while the proxy's default limits (characters, windows) still accept them."""
    defaults = ProxySettings()
    passages, context, i = _passages(), "", 0
    while True:
        longer = context + ("\n\n" if context else "") + passages[i % len(passages)]
        if len(longer) > defaults.max_context_chars:
            break
        context, i = longer, i + 1
    while len(_windows(served, context)) > defaults.max_answer_windows:
        context = context[: int(len(context) * 0.95)]
    return context


def test_the_proxys_defaults_fit_the_servers():
    from tfxformers.serving.server.limits import ServerLimits

    settings, limits = ProxySettings(), ServerLimits()
    assert (settings.backend_max_rows, settings.backend_max_tokens) == (limits.max_rows, limits.max_tokens)


def test_a_context_at_the_proxys_limit_is_answered_with_both_defaults(served):
    context = _largest_accepted_context(served)
    windows = _windows(served, context)
    max_length = served["info"]["max_length"]
    # More windows than the server takes in one call: sent as one call, the server refuses them (400).
    assert len(windows) * max_length > ProxySettings().backend_max_tokens
    rows = [w.input_ids for w in windows]
    refused = httpx.post(f"http://127.0.0.1:{served['rest_port']}/v1/models/qa:predict", timeout=120, json={
        "signature_name": "answer", "inputs": {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows],
                                               "token_type_ids": [w.token_type_ids for w in windows]}})
    assert refused.status_code == 400 and ("--max-rows" in refused.text or "--max-tokens" in refused.text), \
        refused.text[:300]

    answer = httpx.post(f"{served['url']}/v1/models/qa:answer", timeout=120,
                        json={"question": QUESTION, "context": context, "top_k": 3})
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert body["windows"] == len(windows)
    per_call = served["info"]["preferred_windows_per_call"]
    assert per_call == 4 and body["predict_calls"] == -(-len(windows) // per_call)
    for a in body["answers"]:
        assert context[a["start"]:a["end"]] == a["answer"] and a["answer"]


def test_answer_equals_tfxformers_answer_on_a_multi_window_non_ascii_context(served):
    from tfxformers.models.qa import inference, model

    passages = _passages()
    context = "\n\n".join(NON_ASCII + p for p in (passages * 2)[:12])
    windows = _windows(served, context)
    assert len(windows) > served["info"]["preferred_windows_per_call"]  # several calls, in flight together
    answer = httpx.post(f"{served['url']}/v1/models/qa:answer", timeout=60,
                        json={"question": QUESTION, "context": context, "top_k": 5})
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert body["windows"] == len(windows) and body["predict_calls"] > 1
    local = inference.answer_question(model.load_qa(served["checkpoint"]), QUESTION, context, top_k=5)
    assert [(a["answer"], a["start"], a["end"]) for a in body["answers"]] == \
        [(a["answer"], a["start"], a["end"]) for a in local["answers"]]
    for a, b in zip(body["answers"], local["answers"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert context[a["start"]:a["end"]] == a["answer"]
    assert any(ord(c) > 127 for c in context)


def test_calls_hold_one_padded_length_and_fit_the_servers_limits():
    buckets = (16, 32, 64, 128, 256, 384)
    # A short context's window pads to its own bucket, not to 384.
    assert plan_calls([40], buckets, 8, 128, 16384) == [(64, [0])]
    # Mixed lengths: one group per bucket; the 384 group cut into equal calls of at most 8.
    lengths = [384] * 19 + [200, 30]
    calls = plan_calls(lengths, buckets, 8, 128, 16384)
    assert [(w, len(m)) for w, m in calls] == [(32, 1), (256, 1), (384, 7), (384, 6), (384, 6)]
    assert sorted(i for _, m in calls for i in m) == list(range(len(lengths)))
    # No preference (0 / all in one): as many as the server takes, 16384 // 384 = 42 rows, equal sizes.
    calls = plan_calls([384] * 47, buckets, None, 128, 16384)
    assert [len(m) for _, m in calls] == [24, 23] and all(w * len(m) <= 16384 for w, m in calls)
    assert [len(m) for _, m in plan_calls([16] * 300, buckets, None, 128, 16384)] == [100, 100, 100]
    # A server whose token limit is below one window still gets one window per call (it answers why).
    assert [len(m) for _, m in plan_calls([384] * 3, buckets, None, 128, 100)] == [1, 1, 1]


def test_the_export_prefers_small_calls_on_cpu_and_big_ones_on_gpu():
    from tfxformers.serving.export.qa import preferred_windows_per_call

    assert [preferred_windows_per_call(n, "cpu") for n in (384, 256, 128, 4096)] == [4, 6, 12, 1]
    assert preferred_windows_per_call(384, "gpu") == ProxySettings().backend_max_rows


def test_windows_per_call_flag_then_export_then_rule():
    meta = {"max_length": 384, "buckets": [16, 32, 64, 128, 256, 384], "preferred_windows_per_call": 5}
    assert windows_per_call(ProxySettings(), meta) == 5
    assert windows_per_call(ProxySettings(answer_batch_windows=3), meta) == 3
    assert windows_per_call(ProxySettings(answer_batch_windows=0), meta) is None
    assert windows_per_call(ProxySettings(), {"max_length": 384}) == 4  # exports before the field
    assert windows_per_call(ProxySettings(), {"max_length": 128, "preferred_windows_per_call": "9"}) == 12
    assert window_buckets(meta) == (16, 32, 64, 128, 256, 384)
    assert window_buckets({"max_length": 384, "buckets": [16, 999]}) == (16, 32, 64, 128, 256, 384)


@pytest.mark.parametrize("flag, value", [("--answer-concurrency", "0"), ("--answer-concurrency", "x"),
                                         ("--backend-max-rows", "0"), ("--backend-max-tokens", "-1"),
                                         ("--answer-batch-windows", "-2")])
def test_bad_answer_flags_get_one_line_errors(flag, value, capsys):
    from tfxformers.serving.proxy.cli import main

    try:
        code = main([flag, value])
    except SystemExit as exc:  # argparse's own type check
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
