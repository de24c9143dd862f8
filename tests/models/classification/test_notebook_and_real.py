"""The example notebook runs, and the real MiniLM weights behave like a trained sentence encoder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tfxformers.testing import requires_real

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.real
@pytest.mark.once
@requires_real("rotten_tomatoes")
def test_text_classification_notebook_runs(tiny_bert_dir, monkeypatch):
    from tfxformers.testing import run_notebook

    monkeypatch.setenv("TFXFORMERS_NOTEBOOK_LIMIT", "64")
    monkeypatch.setenv("TFXFORMERS_NOTEBOOK_ENCODER", str(tiny_bert_dir))
    outputs, notebook = run_notebook(ROOT / "examples" / "text_classification.ipynb")
    assert "test accuracy" in outputs
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the plot cell drew nothing"


@pytest.mark.real
@pytest.mark.once
@requires_real("minilm", "rotten_tomatoes")
def test_real_minilm_is_a_sentence_encoder_and_frozen_transfer_beats_chance():
    from tfxformers.models.encoders import bert
    from tfxformers.models.classification import transfer
    from tfxformers.models.data.classification import load_classification
    from tfxformers.models.data.sources import minilm_dir
    from tfxformers.models.classification.train import classification_metrics

    encoder = bert.load_bert_encoder(minilm_dir())
    tokenizer = bert.load_bert_tokenizer(minilm_dir())
    vectors = transfer.encode_features(encoder, tokenizer, [
        "a great and moving film", "an excellent, touching movie", "the stock market fell sharply today"],
        progress=False)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3  # random weights give no such structure

    data = load_classification("rotten_tomatoes").limited(400, 200, 300)
    train_x = transfer.encode_features(encoder, tokenizer, data.train.texts, progress=False)
    test_x = transfer.encode_features(encoder, tokenizer, data.test.texts, progress=False)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    head = transfer.build_head(train_x.shape[-1], 2, learning_rate=1e-2, num_train_steps=30 * 13)
    head.fit(train_x, data.train.labels, epochs=30, batch_size=32, verbose=0)
    metrics = classification_metrics(data.test.labels, np.asarray(head(test_x)), data.label_names)
    majority = max(np.mean(data.test.labels), 1 - np.mean(data.test.labels))
    # 400 examples is little for a linear head (logistic regression on the same vectors: 0.67); the point
    # is that real weights carry sentiment signal. The full-data figures are in docs/benchmarks.md.
    assert metrics["accuracy"] > majority + 0.04, metrics["accuracy"]


@pytest.mark.real
@pytest.mark.once
@requires_real("austen")
def test_gpt2_pretraining_notebook_runs(monkeypatch):
    from tfxformers.testing import run_notebook

    monkeypatch.setenv("TFXFORMERS_NOTEBOOK_TINY", "1")
    outputs, notebook = run_notebook(ROOT / "examples" / "gpt2_pretraining.ipynb")
    assert "unigram" in outputs and "Emma was" in outputs
    assert any("image/png" in o.get("data", {}) for cell in notebook.cells for o in cell.get("outputs", []))
