"""Partial fine-tuning (``--mode partial``) on the tiny test checkpoint: cache, shared weights, CLI errors."""
from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["a charming and moving film , great acting", "the plot is a tedious mess", "fun",
         "boring boring boring slow dull script that was too long and the music was awful and flat"]


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir):
    from tfxformers.models.encoders import bert

    return bert.load_bert_encoder(tiny_bert_dir), bert.load_bert_tokenizer(tiny_bert_dir)


def _classifier_and_partial(encoder, trainable_layers=1):
    from tfxformers.models.encoders import bert
    from tfxformers.models.classification import partial

    classifier = bert.build_bert_classifier(encoder, 2, compile=False)
    return classifier, partial.build_partial_model(classifier, encoder, trainable_layers, num_train_steps=10)


def test_only_the_top_layers_and_the_head_train(tiny):
    encoder, _ = tiny
    _, model = _classifier_and_partial(encoder, trainable_layers=1)
    layers = encoder.bert.encoder.layer
    expected = sum(int(np.prod(w.shape)) for w in layers[-1].trainable_weights) + 16 * 2 + 2  # + logits kernel, bias
    got = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert got == expected
    assert not {id(w) for w in model.trainable_weights} & {id(w) for w in layers[0].weights}
    assert not {id(w) for w in model.trainable_weights} & {id(w) for w in encoder.bert.embeddings.weights}


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-5), ("float16", 2e-2)])
def test_the_full_classifier_gives_the_partial_models_logits_after_training(tiny, tmp_path, dtype, atol):
    from tfxformers.models.classification import partial
    from tfxformers.models.buckets import bucket_length
    from tfxformers.models.tokenization import predict_logits

    encoder, tokenizer = tiny
    classifier, model = _classifier_and_partial(encoder, trainable_layers=1)
    states = partial.encode_hidden_states(encoder, tokenizer, TEXTS, frozen_depth=1, cache_dir=tmp_path,
                                          dtype=dtype, progress=False)
    dataset = partial.make_state_dataset(states, np.array([1, 0, 1, 0]), batch_size=2, shuffle=True)
    before = predict_logits(classifier, tokenizer, TEXTS)
    model.fit(dataset, epochs=3, verbose=0)
    after = predict_logits(classifier, tokenizer, TEXTS)
    assert np.abs(after - before).max() > 1e-3  # training moved the shared weights
    # The partial model on cached states, one text per batch, padded to a bucket as in training.
    from_states = np.concatenate([
        np.asarray(model(dict(zip(("hidden_states", "attention_mask"), states.padded([i], bucket_length(states.lengths[i])))),
                         training=False))
        for i in range(len(TEXTS))])
    np.testing.assert_allclose(after, from_states, atol=atol)


def test_the_cache_is_reused_and_a_change_of_depth_or_texts_invalidates_it(tiny, tmp_path):
    from tfxformers.models.classification import partial

    encoder, tokenizer = tiny
    first = partial.encode_hidden_states(encoder, tokenizer, TEXTS, frozen_depth=1, cache_dir=tmp_path, progress=False)
    again = partial.encode_hidden_states(encoder, tokenizer, TEXTS, frozen_depth=1, cache_dir=tmp_path, progress=False)
    assert not first.reused and again.reused and again.path == first.path
    np.testing.assert_array_equal(again.states, first.states)
    assert first.states.dtype == np.float16 and len(first.states) == first.lengths.sum()
    deeper = partial.encode_hidden_states(encoder, tokenizer, TEXTS, frozen_depth=2, cache_dir=tmp_path, progress=False)
    fewer = partial.encode_hidden_states(encoder, tokenizer, TEXTS[:3], frozen_depth=1, cache_dir=tmp_path,
                                         progress=False)
    assert not deeper.reused and not fewer.reused
    assert len({first.path, deeper.path, fewer.path}) == 3
    assert np.abs(deeper.states.astype(np.float32) - first.states.astype(np.float32)).max() > 1e-2


def test_train_classifier_partial_writes_an_ordinary_model_directory(tiny_bert_dir, tiny_reviews_csv,
                                                                     tmp_path, capsys):
    from tfxformers.cli import main
    from tfxformers.models.artifacts import load_trained

    argv = ["train", "classifier", "--data", str(tiny_reviews_csv), "--text-column", "review", "--label-column",
            "sentiment", "--encoder", str(tiny_bert_dir), "--mode", "partial",  # default: the top half, 1 of 2 layers
            "--epochs", "2", "--learning-rate", "3e-3", "--distribute", "mirrored", "--output", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "hidden-state cache after layer 1 of 2:" in out and " MB " in out and "built in" in out
    trained = load_trained(tmp_path / "run")
    assert trained.info["mode"] == "partial" and trained.info["trainable_layers"] == 1
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 3
    assert any((tmp_path / "run" / "logs" / "partial").iterdir())
    assert len(list((tmp_path / "run" / "hidden_cache").glob("hidden-*.npz"))) == 2


def test_an_interrupted_partial_run_resumes_from_its_backup_and_cache(tiny_bert_dir, tiny_reviews_csv, tmp_path,
                                                                     monkeypatch, capsys):
    import tensorflow as tf

    from tfxformers.models.classification import train as classifier_train
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier

    class StopInSecondEpoch(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if self.params.get("steps") and batch == 2 and self.model.optimizer.iterations.numpy() > self.params["steps"]:
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of epoch 2

    config = ClassifierTrainConfig(data=str(tiny_reviews_csv), output=str(tmp_path / "run"), encoder=str(tiny_bert_dir),
                                   mode="partial", trainable_layers=1, text_column="review", label_column="sentiment",
                                   epochs=2, learning_rate=3e-3, checkpoint_every_steps=1, verbose=0)
    callbacks = classifier_train._callbacks
    monkeypatch.setattr(classifier_train, "_callbacks", lambda *a, **k: callbacks(*a, **k) + [StopInSecondEpoch()])
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config)
    assert (tmp_path / "run" / "checkpoints" / "backup").is_dir()

    class CountBatches(tf.keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            CountBatches.batches += 1

    monkeypatch.setattr(classifier_train, "_callbacks", lambda *a, **k: callbacks(*a, **k) + [CountBatches()])
    capsys.readouterr()
    train_classifier(config)
    out = capsys.readouterr().out
    assert "resuming from the checkpoint" in out and "reused in" in out
    assert 0 < CountBatches.batches <= 6  # at most the second epoch's 6 batches: the first was not trained again
    epochs = [line.split(",")[0] for line in (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]  # epoch 1 (the second) was finished by the resumed run, not restarted from 0
    assert not (tmp_path / "run" / "checkpoints" / "backup").exists()


@pytest.mark.parametrize("value, message", [
    ("0", "--trainable-layers: must be an integer >= 1"),
    ("-1", "--trainable-layers: must be an integer >= 1"),
    ("3", "--trainable-layers must be between 1 and the encoder's depth (2), got 3"),
])
def test_trainable_layers_outside_the_encoder_is_a_one_line_error(tiny_bert_dir, tiny_reviews_csv, tmp_path, capsys,
                                                                   value, message):
    from tfxformers.cli import main

    argv = ["train", "classifier", "--data", str(tiny_reviews_csv), "--text-column", "review", "--label-column",
            "sentiment", "--encoder", str(tiny_bert_dir), "--mode", "partial", "--trainable-layers", value,
            "--output", str(tmp_path / "run")]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own checks exit from parse_args, after printing the one line
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "hidden_cache").exists()
