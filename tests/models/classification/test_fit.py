"""The fit functions that take data, not paths (``fit_classifier``, ``fit_gpt2``): what the TFX Trainers call.

- the classifier keeps the label names it was given (in their order, not sorted), records the data's
  description, and a run on other examples under the same description is refused as other data;
- GPT-2 trains with a tokenizer and documents it is handed, saves that tokenizer, and scores no test part
  shorter than one block.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfxformers.errors import UserError


def _data(label_names, texts_and_labels):
    from tfxformers.models.data.classification import ClassificationData, Split

    def split(rows):
        return Split([t for t, _ in rows], np.array([label_names.index(l) for _, l in rows], dtype=np.int64))

    rows = list(texts_and_labels)
    return ClassificationData("examples", list(label_names), split(rows[:160]), split(rows[160:200]),
                              split(rows[200:]))


def _reviews(path):
    import csv

    return [(row["review"], row["sentiment"]) for row in csv.DictReader(path.open())]


def test_fit_classifier_keeps_the_given_label_names_and_refuses_other_examples(tiny_bert_dir, tiny_reviews_csv,
                                                                              tmp_path):
    from tfxformers.models import artifacts
    from tfxformers.models.classification.train import ClassifierTrainConfig, fit_classifier

    rows = _reviews(tiny_reviews_csv)
    names = ["pos", "neg"]  # not sorted: a Trainer's class ids follow the pipeline's own order
    config = ClassifierTrainConfig(data="pipeline:reviews", output="ignored", encoder=str(tiny_bert_dir),
                                   mode="frozen", epochs=1, batch_size=32, learning_rate=1e-2, max_length=32,
                                   verbose=0)
    out = tmp_path / "model"
    metrics = fit_classifier(_data(names, rows), config, out)
    info = artifacts.read_info(out)
    assert info["label_names"] == names and json.loads((out / "labels.json").read_text()) == names
    assert list(metrics["per_class"]) == names and metrics["examples"] == 40
    assert info["data"] == "pipeline:reviews"  # a description, not turned into a path
    recorded = json.loads((out / "training_config.json").read_text())
    assert recorded["output"] == str(out) and len(recorded["data_fingerprint"]) == 64
    with pytest.raises(UserError, match=r"other data than asked \(data_fingerprint"):
        fit_classifier(_data(names, rows[::-1]), config, out)
    with pytest.raises(UserError, match="already holds a trained classifier run"):
        fit_classifier(_data(names, rows), config, out)


def test_fit_gpt2_trains_with_the_tokenizer_and_documents_it_is_given(tmp_path):
    from tfxformers.models import artifacts
    from tfxformers.models.data.corpus import Corpus
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, fit_gpt2
    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer

    documents = [f"Emma walked to Highbury on day {i} and met Mr Knightley by the church." for i in range(40)]
    corpus = Corpus("letters", documents[:30], documents[30:39], ["Short."])
    tokenizer = train_bpe_tokenizer(corpus.train, tmp_path / "bpe", vocab_size=300)
    config = Gpt2TrainConfig(corpus="pipeline:letters", output="ignored", preset="tiny", vocab_size=300,
                             block_size=16, epochs=1, batch_size=8, verbose=0)
    out = tmp_path / "lm"
    metrics = fit_gpt2(tokenizer, corpus, config, out)
    assert metrics["test_perplexity"] is None  # one short sentence is less than a block: not scored
    assert metrics["validation_perplexity"] < metrics["initial_validation_perplexity"]
    assert metrics["train_blocks"] > 0 and metrics["epochs"] == 1
    info = artifacts.read_info(out)
    assert info["kind"] == "gpt2" and info["corpus"] == "pipeline:letters" and info["vocab_size"] == len(tokenizer)
    assert (out / "tokenizer" / "tokenizer.json").read_text() == (tmp_path / "bpe" / "tokenizer.json").read_text()
    with pytest.raises(UserError, match=r"other data than asked \(data_fingerprint"):
        fit_gpt2(tokenizer, Corpus("letters", documents[:29], documents[30:39], []), config, out)
