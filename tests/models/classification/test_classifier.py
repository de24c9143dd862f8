"""BERT classifiers on a tiny random checkpoint: loading, every mode's round trip, the CLI, resume."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from tfxformers.cli import main
from tfxformers.testing import tfxformers_command, train_until_epochs_then_kill


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


def _inputs(tokenizer, texts):
    from tfxformers.models.tokenization import tokenize_batch

    return tokenize_batch(tokenizer, texts, max_length=32)


def test_loader_puts_the_safetensors_weights_into_tf(tiny_bert_dir, tf):
    import safetensors.numpy

    from tfxformers.models.encoders import bert

    encoder = bert.load_bert_encoder(tiny_bert_dir)
    state = safetensors.numpy.load_file(str(tiny_bert_dir / "model.safetensors"))
    weights = {w.name: w.numpy() for w in encoder.weights}
    word = next(v for k, v in weights.items() if "word_embeddings" in k)
    np.testing.assert_array_equal(word, state["embeddings.word_embeddings.weight"])
    query = next(v for k, v in weights.items() if "layer_._0/attention/self/query/kernel" in k)
    np.testing.assert_array_equal(query, state["encoder.layer.0.attention.self.query.weight"].T)
    # Loading twice gives the same function (nothing left at random initialisation).
    again = bert.load_bert_encoder(tiny_bert_dir)
    ids = tf.constant([[2, 40, 50, 3]])
    np.testing.assert_allclose(encoder(ids).last_hidden_state, again(ids).last_hidden_state, atol=1e-6)


def test_loader_rejects_a_directory_without_weights(tmp_path):
    from tfxformers.errors import UserError
    from tfxformers.models.encoders import bert

    with pytest.raises(UserError, match="no config.json"):
        bert.load_bert_encoder(tmp_path)


def test_frozen_model_trains_only_the_head(tiny_bert_dir, tf):
    from tfxformers.models.encoders import bert

    encoder = bert.load_bert_encoder(tiny_bert_dir)
    model = bert.build_bert_classifier(encoder, num_labels=3, mode="frozen")
    hidden = encoder.config.hidden_size
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == hidden * 3 + 3
    finetune = bert.build_bert_classifier(bert.load_bert_encoder(tiny_bert_dir), num_labels=3)
    assert sum(int(np.prod(w.shape)) for w in finetune.trainable_weights) > trainable * 10
    assert sorted(i.name for i in model.inputs) == ["attention_mask", "input_ids"]


def test_buckets_pad_to_few_shapes(tiny_bert_dir, tf):
    from tfxformers.models.encoders import bert
    from tfxformers.models.tokenization import encode_texts, make_dataset

    tokenizer = bert.load_bert_tokenizer(tiny_bert_dir)
    texts = ["good"] * 50 + ["the movie was very good and the acting was great " * 5] * 14
    dataset = make_dataset(encode_texts(tokenizer, texts, 128), np.zeros(64, dtype=np.int64), batch_size=16)
    widths = sorted({int(x["input_ids"].shape[1]) for x, _ in dataset})
    assert widths == [16, 64]  # short batches are not padded to the long ones' length


@pytest.mark.parametrize("mode", ["finetune", "frozen", "hub", "cached"])
def test_every_mode_trains_saves_and_reloads_with_the_same_output(mode, tiny_bert_dir, tiny_reviews_csv, tmp_path, tf):
    from tfxformers.models import artifacts
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.models.tokenization import predict_logits

    config = ClassifierTrainConfig(
        data=str(tiny_reviews_csv), text_column="review", label_column="sentiment", encoder=str(tiny_bert_dir),
        mode="frozen" if mode == "cached" else mode, cache_features=mode == "cached", output=str(tmp_path / mode),
        epochs=2, batch_size=16, learning_rate=3e-3, max_length=32, verbose=0,
    )
    metrics = train_classifier(config)
    out = tmp_path / mode
    for name in ("tfxformers.json", "labels.json", "training_config.json", "metrics.json",
                 "plots/training_curves.png", "plots/confusion_matrix.png", "tokenizer/tokenizer.json"):
        assert (out / name).is_file(), name
    assert any((out / "logs").rglob("events.out.tfevents.*"))
    assert set(metrics) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["examples"]
    trained = artifacts.load_trained(out)
    assert trained.label_names == ["neg", "pos"]
    texts = ["a brilliant and moving film", "boring , dull and too long", "the plot"]
    reloaded = predict_logits(trained.keras_model, trained.tokenizer, texts, max_length=32)
    again = predict_logits(artifacts.load_trained(out).keras_model, trained.tokenizer, texts, max_length=32)
    np.testing.assert_allclose(reloaded, again, atol=1e-5)
    # The metrics were computed by the in-memory model before saving: the reloaded one must agree.
    from tfxformers.models.classification.trained import evaluate_model

    assert evaluate_model(out, str(tiny_reviews_csv), text_column="review", label_column="sentiment")["accuracy"] == \
        pytest.approx(metrics["accuracy"])


@pytest.mark.parametrize("mode", ["finetune", "frozen"])
def test_training_under_a_mirrored_strategy_learns(mode, tiny_bert_dir, tiny_reviews_csv, tmp_path, capsys):
    """``--distribute mirrored`` builds encoder, head and optimizer under MirroredStrategy (one CPU replica
    here); a variable created outside its scope would make Keras refuse to train."""
    out = tmp_path / mode
    code = main(["train", "classifier", "--data", str(tiny_reviews_csv), "--text-column", "review",
                 "--label-column", "sentiment", "--encoder", str(tiny_bert_dir), "--mode", mode,
                 "--distribute", "mirrored", "--output", str(out), "--epochs", "8" if mode == "frozen" else "3",
                 "--learning-rate", "1e-2" if mode == "frozen" else "3e-3", "--max-length", "32"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert json.loads((out / "training_config.json").read_text())["distribute"] == "mirrored"
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.75
    with pytest.raises(SystemExit) as refused:
        main(["train", "classifier", "--data", str(tiny_reviews_csv), "--output", str(tmp_path / "x"),
              "--distribute", "everywhere"])
    assert refused.value.code == 2 and "--distribute" in capsys.readouterr().err


def test_cli_predict_and_evaluate(tiny_bert_dir, tiny_reviews_csv, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["train", "classifier", "--data", str(tiny_reviews_csv), "--text-column", "review",
                 "--label-column", "sentiment", "--encoder", str(tiny_bert_dir), "--mode", "frozen",
                 "--output", str(out), "--epochs", "8", "--learning-rate", "1e-2", "--max-length", "32"])
    assert code == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(out), "--json", "brilliant wonderful best fun", "awful boring worst mess"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results] == ["pos", "neg"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)
    assert main(["evaluate", "--model", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.8
    assert main(["predict", "--model", str(tmp_path / "nothing"), "x"]) == 2
    assert "not found" in capsys.readouterr().err


def test_bad_options_exit_2(tiny_reviews_csv, tmp_path, capsys):
    args = ["train", "classifier", "--data", str(tiny_reviews_csv), "--text-column", "review",
            "--label-column", "sentiment", "--output", str(tmp_path / "o")]
    assert main(args + ["--encoder", str(tmp_path / "missing")]) == 2
    assert "neither 'minilm', 'mpnet' nor a checkpoint directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # an argparse range check (tfxformers.cli_types)
        main(args + ["--max-length", "4"])
    assert refused.value.code == 2 and "--max-length" in capsys.readouterr().err


def test_a_killed_run_resumes_instead_of_restarting(tiny_bert_dir, tiny_reviews_csv, tmp_path):
    """Kill a real training process after its first epoch; the same command then continues from epoch 2."""
    out = tmp_path / "run"
    command = tfxformers_command() + [
        "train", "classifier", "--data", str(tiny_reviews_csv), "--text-column", "review",
        "--label-column", "sentiment", "--encoder", str(tiny_bert_dir), "--mode", "finetune",
        "--output", str(out), "--epochs", "8", "--batch-size", "8", "--max-length", "32",
        "--patience", "100", "--checkpoint-every-steps", "0",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    history = out / "history.csv"
    before = train_until_epochs_then_kill(command, history)
    assert max(before) < 7, "the run finished before it could be killed"
    assert (out / "checkpoints" / "backup").exists()
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming from the checkpoint" in resumed.stdout
    epochs = [int(line.split(",")[0]) for line in history.read_text().strip().splitlines()[1:]]
    after = epochs[len(before):]
    assert epochs[: len(before)] == before
    # The second process started where the first stopped (epoch 0 did not run again) and finished the job.
    assert after[0] in (max(before) + 1, max(before) + 2), epochs
    assert after[-1] == 7 and after == sorted(after)
    assert not (out / "checkpoints" / "backup").exists()  # removed once training completed
