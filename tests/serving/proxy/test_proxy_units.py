"""The proxy's pure parts: windows over long texts, bucket padding, score combination, settings and CLI."""
from __future__ import annotations

import pytest

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.text import TextEncoder, Window, combine, window_starts


@pytest.mark.parametrize("length", [1, 29, 30, 31, 59, 60, 61, 200, 1000])
@pytest.mark.parametrize("body,overlap", [(30, 8), (30, 0), (30, 40), (126, 32)])
def test_windows_cover_every_token_overlap_and_end_flush(length, body, overlap):
    starts = window_starts(length, body, overlap)
    covered = set()
    for start in starts:
        covered.update(range(start, min(start + body, length)))
    assert covered == set(range(length))
    assert starts[0] == 0 and starts == sorted(set(starts))
    if length > body:
        assert starts[-1] == length - body  # the last window is full, not a stub
        shared = [starts[i] + body - starts[i + 1] for i in range(len(starts) - 1)]
        assert min(shared) >= min(overlap, body // 2)


@pytest.fixture(scope="module")
def encoder(tiny_bert_dir):
    metadata = {"max_length": 32, "buckets": [16, 32, 64], "pad_id": 0, "cls_id": 2, "sep_id": 3}
    return TextEncoder((tiny_bert_dir / "tokenizer.json").read_text(), metadata)


def test_short_texts_tokenize_exactly_as_in_training(encoder, tiny_bert_dir):
    from transformers import BertTokenizerFast

    reference = BertTokenizerFast.from_pretrained(str(tiny_bert_dir))
    texts = ["a brilliant and moving film", "Boring, DULL, and far too long!", ""]
    windows = encoder.windows(texts, overlap=8, max_windows=4)
    assert [w.ids for w in windows] == [reference(t)["input_ids"] for t in texts]
    assert encoder.buckets == (16, 32)


def test_long_texts_become_overlapping_full_windows_and_hit_the_limit(encoder, tiny_bert_dir):
    from transformers import BertTokenizerFast

    reference = BertTokenizerFast.from_pretrained(str(tiny_bert_dir))
    text = " ".join(f"the film was good {i} times" for i in range(12))
    body = reference(text, add_special_tokens=False)["input_ids"]
    assert len(body) > 30
    windows = encoder.windows(["short", text], overlap=8, max_windows=16)
    long = [w for w in windows if w.text_index == 1]
    assert len(long) == len(window_starts(len(body), 30, 8)) > 1
    for window in long:
        assert window.ids[0] == 2 and window.ids[-1] == 3 and len(window.ids) == 32
        assert window.text_tokens == len(body) + 2
    seen = [t for w in long for t in w.ids[1:-1]]
    assert set(seen) == set(body)
    with pytest.raises(errors.TooLarge, match=r"texts\[1\].*limit is 2 windows"):
        encoder.windows(["short", text], overlap=8, max_windows=2)


def test_an_overlap_over_half_a_window_is_cut_and_said_once_in_the_log(tiny_bert_dir, caplog):
    """Issue 23's audit: --window-overlap far over the limit was cut without a word."""
    metadata = {"max_length": 32, "buckets": [16, 32], "pad_id": 0, "cls_id": 2, "sep_id": 3}
    encoder = TextEncoder((tiny_bert_dir / "tokenizer.json").read_text(), metadata)
    text = " ".join(f"the film was good {i} times" for i in range(12))
    with caplog.at_level("WARNING", logger="tfxformers.proxy"):
        encoder.windows(["short"], overlap=100, max_windows=16)  # no window: nothing to say
        assert not caplog.records
        first = encoder.windows([text], overlap=100, max_windows=16)
        assert [w.ids for w in first] == [w.ids for w in encoder.windows([text], overlap=15, max_windows=16)]
        encoder.windows([text], overlap=100, max_windows=16)  # said once per served version, not per request
    assert [r.getMessage() for r in caplog.records] == [
        "--window-overlap 100 is more than windows of this model's 32 tokens can share: neighbours share at most half "
        "a window, so it must lie between 0 and 15; windows of this model share 15 tokens (the proxy's "
        "--window-overlap is one for every model)"]


def test_batches_are_grouped_by_bucket_padded_and_split(encoder):
    windows = [Window(0, [2, 9, 3], 3, 3), Window(1, [2] + [9] * 20 + [3], 22, 22), Window(2, [2, 3], 2, 2)]
    batches = encoder.batches(windows, max_batch_size=1)
    assert [members for members, _, _ in batches] == [[0], [2], [1]]
    batches = encoder.batches(windows, max_batch_size=8)
    assert [members for members, _, _ in batches] == [[0, 2], [1]]
    members, ids, mask = batches[0]
    assert ids == [[2, 9, 3] + [0] * 13, [2, 3] + [0] * 14]
    assert mask == [[1] * 3 + [0] * 13, [1] * 2 + [0] * 14]
    assert len(batches[1][1][0]) == 32


def test_window_scores_combine_as_a_token_weighted_mean():
    windows = [Window(0, [], 30, 50), Window(0, [], 10, 50), Window(1, [], 5, 7)]
    scores = [[0.8, 0.2], [0.0, 1.0], [0.5, 0.5]]
    combined, counts = combine(windows, scores, 2)
    assert combined[0] == pytest.approx([0.6, 0.4]) and combined[1] == pytest.approx([0.5, 0.5])
    assert counts == [2, 1]


def test_settings_come_from_env_and_flags_win(monkeypatch):
    import argparse

    from tfxformers.serving.proxy.cli import add_arguments, build_settings

    monkeypatch.setenv("TFXFORMERS_BACKEND", "http://127.0.0.1:8501")
    monkeypatch.setenv("TFXFORMERS_MAX_TEXTS", "7")
    monkeypatch.setenv("TFXFORMERS_MODELS", "sentiment, emma")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = build_settings(parser.parse_args([]))
    assert settings.backend_kind == "rest" and settings.max_texts == 7 and settings.model_names == ["sentiment", "emma"]
    settings = build_settings(parser.parse_args(["--max-texts", "3", "--backend", "grpc://10.0.0.1:8500"]))
    assert settings.max_texts == 3 and settings.backend_kind == "grpc"


@pytest.mark.parametrize("argv,message", [
    (["proxy", "--backend", "ftp://127.0.0.1:8500"], "backend must look like grpc://HOST:PORT"),
    (["proxy", "--backend", "grpc://127.0.0.1"], "backend must look like"),
    (["proxy", "--timeout", "0"], "--timeout (TFXFORMERS_TIMEOUT_SECONDS): Input should be greater than 0"),
])
def test_bad_settings_exit_2_with_a_message(argv, message, capsys):
    from tfxformers.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad proxy settings") and message in err and "Traceback" not in err
