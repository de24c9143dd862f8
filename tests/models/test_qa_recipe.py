"""The QA training recipe: ``fit_qa`` on examples in memory, resumed only on the same examples."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfxformers.errors import UserError

DATA = Path(__file__).resolve().parents[1] / "data" / "qa_course.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tfxformers.models.qa import tiny

    return tiny.make_tiny_qa_checkpoint(tmp_path_factory.mktemp("qa_recipe") / "ck", max_position_embeddings=128)


@pytest.fixture(scope="module")
def examples():
    from tfxformers.models.qa import features

    train, validation = features.split_examples(features.load_squad(DATA)[0])
    return train[:24], validation[:8]


def _config(checkpoint, output, **changes):
    from tfxformers.models.qa.train import QATrainConfig

    settings = dict(data="examples handed over in memory", output=str(output), encoder=str(checkpoint), epochs=1,
                    batch_size=8, max_seq_len=64, doc_stride=16, verbose=0)
    return QATrainConfig(**{**settings, **changes})


def test_fit_qa_on_examples_in_memory_writes_a_loadable_model(checkpoint, examples, tmp_path):
    from tfxformers.models.qa import inference, model
    from tfxformers.models.qa.train import fit_qa

    train, validation = examples
    scores = fit_qa(train, validation, _config(checkpoint, "unused"), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["total"] == scores["total"] == len(validation) and 0 <= metrics["f1"] <= 100
    assert metrics["train_questions"] == len(train)
    assert (tmp_path / "run" / "history.csv").is_file() and not (tmp_path / "run" / "checkpoints" / "backup").exists()
    trained = model.load_qa(tmp_path / "run")
    assert trained.max_seq_len == 64
    example = validation[0]
    answer = inference.answer_question(trained, example.question, example.context, max_answer_len=10)["answers"][0]
    assert example.context[answer["start"]:answer["end"]] == answer["answer"]
    # The run is identified by its examples, not by the description in config.data: an unfinished run with
    # the same settings but other examples is refused rather than resumed.
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    record = json.loads((tmp_path / "run" / "training_config.json").read_text())
    (unfinished / "training_config.json").write_text(json.dumps({**record, "output": str(unfinished)}))
    with pytest.raises(UserError, match="data_fingerprint"):
        fit_qa(train[:-1], validation, _config(checkpoint, unfinished), unfinished)
    with pytest.raises(UserError, match="training and validation questions"):
        fit_qa(train, [], _config(checkpoint, tmp_path / "empty"), tmp_path / "empty")
