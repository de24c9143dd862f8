"""GPT-2 from scratch: byte-level BPE, block packing, a tiny model that learns, round trip, generation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfxformers.cli import main
from tfxformers.errors import UserError
from tfxformers.testing import requires_real

UNICODE = "Emma Woodhouse — 日本語, émigré 😀\ttab\x07bell\n\n  two  spaces "


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory):
    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer

    texts = ["Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition."] * 20
    return train_bpe_tokenizer(texts, tmp_path_factory.mktemp("bpe"), vocab_size=300)


def test_tokenizer_round_trips_any_text_and_loads_with_auto_tokenizer(small_tokenizer, tmp_path):
    from transformers import AutoTokenizer, GPT2TokenizerFast

    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer

    ids = small_tokenizer(UNICODE)["input_ids"]
    assert small_tokenizer.decode(ids) == UNICODE
    assert len(small_tokenizer) < 300 + 1 or len(small_tokenizer) == 300  # reports the real size
    directory = tmp_path / "tok"
    small_tokenizer.save_pretrained(str(directory))
    for cls in (AutoTokenizer, GPT2TokenizerFast):
        loaded = cls.from_pretrained(str(directory))
        assert (loaded.bos_token, loaded.eos_token, loaded.pad_token, loaded.unk_token, loaded.mask_token) == (
            "<s>", "</s>", "<pad>", "<unk>", "<mask>")
        assert loaded(UNICODE)["input_ids"] == ids
    lower = train_bpe_tokenizer(["Some Text"] * 5, tmp_path / "lower", vocab_size=280, lowercase=True)
    assert lower.decode(lower(UNICODE)["input_ids"]) == UNICODE.lower()
    with pytest.raises(UserError, match="no text"):
        train_bpe_tokenizer(["", "  "], tmp_path / "empty")


def test_blocks_do_not_overlap_and_cover_every_token():
    from tfxformers.models.lm.gpt2 import pack_blocks

    stream = np.arange(1001, dtype=np.int32)
    blocks = pack_blocks(stream, 100)
    assert blocks.shape == (10, 101)
    inputs, labels = blocks[:, :-1], blocks[:, 1:]
    np.testing.assert_array_equal(labels, inputs + 1)  # labels are the next token
    assert len(np.unique(labels)) == labels.size == 1000  # each token is a target exactly once
    with pytest.raises(UserError, match="smaller than one block"):
        pack_blocks(stream[:50], 100)


def test_round_trip_gives_the_same_logits(small_tokenizer, tmp_path):
    import tensorflow as tf
    from transformers import TFGPT2LMHeadModel

    from tfxformers.models.lm.gpt2 import build_lm, make_config

    model = build_lm(make_config(small_tokenizer, "tiny", 32), compile=False)
    ids = tf.constant([small_tokenizer("Emma Woodhouse, handsome")["input_ids"]])
    before = model(ids).numpy()
    np.testing.assert_allclose(before, model.hf_model(ids).logits.numpy(), atol=1e-5)
    model.hf_model.save_pretrained(str(tmp_path / "m"))
    after = TFGPT2LMHeadModel.from_pretrained(str(tmp_path / "m"))(ids).logits.numpy()
    np.testing.assert_allclose(before, after, atol=1e-5)


@pytest.mark.real
@pytest.mark.once
@requires_real("austen")
def test_tiny_model_learns_emma_and_generates(tmp_path, capsys):
    out = tmp_path / "gpt2"
    assert main(["train", "gpt2", "--corpus", "emma", "--output", str(out), "--preset", "tiny", "--vocab-size", "512",
                 "--block-size", "64", "--epochs", "3", "--learning-rate", "5e-3", "--limit-chars", "50000"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation_perplexity"] < metrics["initial_validation_perplexity"]
    assert metrics["validation_perplexity"] < metrics["validation_unigram_perplexity"]
    assert (out / "tokenizer" / "tokenizer.json").is_file() and json.loads((out / "tfxformers.json").read_text())["kind"] == "gpt2"
    capsys.readouterr()

    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.lm.text_generation import generate_text

    for strategy in ("greedy", "beam", "sample"):
        result = generate_text(out, "Emma was", max_new_tokens=12, strategy=strategy, seed=3, stop_at_eos=False)
        assert result["new_tokens"] == 12, strategy
    # Stop at </s>: make the token greedy decoding picks first the end-of-sequence token.
    trained = load_trained(out)
    ids = trained.tokenizer("Emma was", return_tensors="tf")["input_ids"]
    first = int(trained.keras_model(ids).logits.numpy()[0, -1].argmax())
    trained.tokenizer.eos_token_id  # noqa: B018
    out_ids = trained.keras_model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=first,
                                           pad_token_id=trained.tokenizer.pad_token_id)
    assert out_ids.shape[1] == ids.shape[1] + 1
    assert main(["generate", "--model", str(out), "--prompt", "Emma", "--max-new-tokens", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new_tokens"] == 5


def test_bad_inputs_exit_2(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 10)
    (tmp_path / "short.txt").write_text("\n\n".join(f"Short paragraph {i}." for i in range(12)))
    base = ["train", "gpt2", "--output", str(tmp_path / "out"), "--preset", "tiny"]
    for corpus, message in ((tmp_path / "empty.txt", "empty"), (tmp_path / "binary.txt", "binary"),
                            (tmp_path / "missing.txt", "not found")):
        assert main(base + ["--corpus", str(corpus)]) == 2
        assert message in capsys.readouterr().err
    assert main(base + ["--corpus", str(tmp_path / "short.txt"), "--vocab-size", "300", "--block-size", "512"]) == 2
    assert "smaller than one block" in capsys.readouterr().err
    assert main(base + ["--corpus", str(tmp_path / "short.txt"), "--preset", "huge"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_compiled_generation_matches_hf_greedy_and_stops_at_eos(small_tokenizer):
    """The in-graph generate on a model built by build_lm (more in test_gpt2_generate.py)."""
    import tensorflow as tf

    from tfxformers.models.lm.gpt2 import build_lm, make_config
    from tfxformers.models.lm.generate import as_arrays, make_generate_fn, request_inputs

    tf.keras.utils.set_random_seed(1)
    hf = build_lm(make_config(small_tokenizer, "tiny", 64), compile=False).hf_model
    prompt = small_tokenizer("Emma Woodhouse, handsome")["input_ids"]
    ids = tf.constant([prompt], dtype=tf.int32)
    pad = small_tokenizer.pad_token_id
    reference = hf.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=pad,
                            eos_token_id=None).numpy()[0, ids.shape[1]:]

    def run(generate, **options):
        out = generate(**{k: tf.constant(v) for k, v in as_arrays(request_inputs([prompt], pad, **options)).items()})
        return out["output_ids"].numpy()[0, 0], int(out["num_generated"].numpy()[0, 0])

    generate = make_generate_fn(hf, eos_id=-1, pad_id=pad)
    tokens, count = run(generate, max_new_tokens=10)
    np.testing.assert_array_equal(tokens, reference)
    assert count == 10
    # Stop at </s>: declare the second greedy token the end-of-sequence token.
    stop, count = run(make_generate_fn(hf, eos_id=int(reference[1]), pad_id=pad), max_new_tokens=10)
    assert count == (2 if reference[0] != reference[1] else 1)
    assert stop.shape == (10,) and (stop[count:] == pad).all()
    # Sampling is seeded: the same seed repeats, another seed differs somewhere over a few tries.
    first, _ = run(generate, max_new_tokens=12, strategy=1, temperature=1.5, seed=5)
    np.testing.assert_array_equal(first, run(generate, max_new_tokens=12, strategy=1, temperature=1.5, seed=5)[0])
    assert any((run(generate, max_new_tokens=12, strategy=1, temperature=1.5, seed=s)[0] != first).any()
               for s in range(6, 10))
    # top_k = 1 is greedy whatever the seed.
    np.testing.assert_array_equal(run(generate, max_new_tokens=10, strategy=1, top_k=1, seed=3)[0], reference)


def test_a_killed_gpt2_run_resumes(tmp_path):
    import os
    import subprocess

    from tfxformers.testing import tfxformers_command, train_until_epochs_then_kill

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley." for i in range(200)))
    out = tmp_path / "run"
    command = tfxformers_command() + ["train", "gpt2", "--corpus", str(corpus), "--output", str(out), "--preset", "tiny",
                                      "--vocab-size", "300", "--block-size", "16", "--epochs", "5", "--batch-size", "4"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    history = out / "history.csv"
    before = train_until_epochs_then_kill(command, history)
    assert max(before) < 4, "the run finished before it could be killed"
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming from the checkpoint" in resumed.stdout
    epochs = [int(line.split(",")[0]) for line in history.read_text().strip().splitlines()[1:]]
    after = epochs[len(before):]
    assert epochs[: len(before)] == before and after[0] in (max(before) + 1, max(before) + 2), epochs
    assert after[-1] == 4
    assert (out / "metrics.json").is_file() and not (out / "checkpoints" / "backup").exists()
