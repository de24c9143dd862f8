"""The QA pipeline's input and its gate's content check, without TFX: what is written for ExampleGen,
what the gate says about each malformed question, and the options refused before anything runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfxformers.pipeline.qa import checks, data
from tfxformers.testing import requires_real


def _squad(questions: int, per_context: int = 3) -> dict:
    paragraphs = []
    for p in range(0, questions, per_context):
        context = f"passage {p} says the answer is word{p} and more."
        start = context.index(f"word{p}")
        paragraphs.append({"context": context, "qas": [
            {"id": f"q{p + i}", "question": f"what does passage {p} say ({i})?",
             "answers": [{"text": f"word{p}", "answer_start": start}]} for i in range(min(per_context, questions - p))]})
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}


def _ids(directory: Path, split: str) -> list[str]:
    import tensorflow as tf

    records = tf.data.TFRecordDataset([str(directory / split / data.RECORDS_FILE)]).as_numpy_iterator()
    return [data.parse_example(r)["id"] for r in records]


def test_a_seeded_training_sample_every_kth_eval_question_and_unchanged_files_left_alone(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps(_squad(60)))
    (tmp_path / "dev.json").write_text(json.dumps(_squad(25)))
    out = tmp_path / "out"
    records = data.write_squad_records(str(tmp_path / "train.json"), out, eval_data=str(tmp_path / "dev.json"),
                                       limit_train=20, eval_stride=10)
    assert records.counts == {"train": 20, "eval": 3} and records.available == {"train": 60, "eval": 25}
    train_ids = _ids(out, "train")
    assert len(set(train_ids)) == 20 and train_ids == sorted(train_ids, key=lambda i: int(i[1:]))  # file order
    assert _ids(out, "eval") == ["q0", "q10", "q20"]   # every 10th, from the first (bench_squad's dev[::10])
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.tfrecord")}
    again = data.write_squad_records(str(tmp_path / "train.json"), out, eval_data=str(tmp_path / "dev.json"),
                                     limit_train=20, eval_stride=10)
    assert _ids(out, "train") == train_ids and again.counts == records.counts   # the same seeded sample
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tfrecord")} == before
    data.write_squad_records(str(tmp_path / "train.json"), out, eval_data=str(tmp_path / "dev.json"), limit_train=21)
    assert len(_ids(out, "train")) == 21


def test_without_eval_data_a_tenth_of_the_passages_is_held_out(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps(_squad(300)))
    records = data.write_squad_records(str(tmp_path / "train.json"), tmp_path / "out", eval_stride=1)
    assert records.counts["train"] + records.counts["eval"] == 300 and 0 < records.counts["eval"] < 90
    rows = data.raw_questions(_squad(300), "x")
    contexts = {r["context"] for r in rows if data.held_out(r)}
    held = [data.parse_example(r) for r in _records(tmp_path / "out" / "eval" / data.RECORDS_FILE)]
    assert {r["context"] for r in held} == contexts   # whole passages, never a passage in both splits


def _records(path: Path) -> list[bytes]:
    import tensorflow as tf

    return list(tf.data.TFRecordDataset([str(path)]).as_numpy_iterator())


def test_malformed_questions_are_written_through_as_they_are_and_each_fault_is_named(tmp_path):
    squad = _squad(9)
    paragraphs = squad["data"][0]["paragraphs"]
    paragraphs[0]["qas"][0]["answers"][0]["answer_start"] += 1           # off by one: not repaired here
    paragraphs[0]["qas"][1]["question"] = "  "
    del paragraphs[0]["qas"][2]["id"]
    paragraphs[1]["context"] = ""
    paragraphs[2]["qas"][0]["answers"] = []
    del paragraphs[2]["qas"][1]["answers"][0]["answer_start"]
    paragraphs[2]["qas"][2]["answers"].append({"answer_start": 3})          # an answer without text
    rows = [data.parse_example(data.serialize(r)) for r in data.raw_questions(squad, "x")]
    assert rows[0]["answer_start"] == [squad["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"]]
    lines = checks.faulty_questions(rows, "train")
    assert lines[0].startswith("question 'q0' (train split, data[0].paragraphs[0].qas[0]): answer 1 'word0' is not "
                               "at answer_start 30 (the context there reads ")
    assert lines[1] == "question 'q1' (train split, data[0].paragraphs[0].qas[1]): empty question"
    assert lines[2] == "a question without an id (train split, data[0].paragraphs[0].qas[2]): missing 'id'"
    assert [l.split(": ", 1)[1] for l in lines[3:6]] == ["empty context"] * 3
    assert lines[6].endswith("qas[0]): no answers")
    assert lines[7].endswith("answer 1 'word6' has no 'answer_start' (missing, negative or not an integer)")
    assert lines[8].endswith("answer 2 has no text")
    assert len(lines) == 9


def test_at_most_ten_faults_are_shown_then_how_many_more():
    rows = [{"id": f"x{i}", "position": "p", "context": "c", "question": "q"} for i in range(13)]
    report = checks.problem_report(checks.faulty_questions(rows, "eval"))
    assert len(report) == 11 and report[-1] == "and 3 more" and report[9].startswith("question 'x9'")
    assert checks.problem_report(report[:4]) == report[:4]


def test_a_file_that_is_not_squad_is_refused_when_written(tmp_path):
    from tfxformers.errors import UserError

    (tmp_path / "x.json").write_text(json.dumps({"questions": []}))
    with pytest.raises(UserError, match="is not SQuAD format"):
        data.write_squad_records(str(tmp_path / "x.json"), tmp_path / "out")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(UserError, match="is not JSON"):
        data.write_squad_records(str(tmp_path / "y.json"), tmp_path / "out")


BAD_OPTIONS = [
    (["--eval-stride", "0"], "argument --eval-stride"),
    (["--limit-train", "-3"], "argument --limit-train"),
    (["--budget-cpu-minutes", "0"], "argument --budget-cpu-minutes"),
    (["--max-seq-len", "8"], "argument --max-seq-len"),
    (["--doc-stride", "-1"], "argument --doc-stride"),
    (["--learning-rate", "-1"], "argument --learning-rate"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--data", "no-such-file.json"], "--data no-such-file.json: not a built-in SQuAD split"),
    (["--eval-data", "missing.json"], "--eval-data missing.json: not a built-in SQuAD split"),
    (["--name", "bad name"], "bad name"),
    (["--encoder", "/no/such/encoder"], "/no/such/encoder"),
]


@pytest.mark.parametrize("extra,message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_values_are_one_error_line_and_exit_2(extra, message, tmp_path, capsys, monkeypatch):
    from tfxformers.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.json").write_text(json.dumps(_squad(6)))
    argv = ["pipeline", "run", "--task", "qa", "--data", "ok.json", "--eval-data", "ok.json"]
    try:
        code = main(argv + extra)
    except SystemExit as exc:   # argparse's errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert not (tmp_path / "pipelines").exists() and not (tmp_path / "serving_models").exists()


@pytest.mark.real
@requires_real("squad")
def test_real_squad_passes_the_gate_and_the_eval_subset_is_bench_squads(tmp_path):
    from tfxformers.models.qa import squad

    for name in ("squad", "squad-dev"):
        reference, parsed = data.load_raw(name)
        rows = data.raw_questions(parsed, reference)
        assert len(rows) == {"squad": 87_599, "squad-dev": 10_570}[name]
        assert checks.faulty_questions(rows, name) == []   # every answer_start of SQuAD 1.1 matches
    records = data.write_squad_records("squad", tmp_path / "out", limit_train=40)
    assert records.counts == {"train": 40, "eval": 1057} and records.eval_data == "squad-dev"
    assert _ids(tmp_path / "out", "eval") == [e.id for e in squad.load("squad-dev")[0][::10]]


def test_options_built_in_code_are_checked_too(tmp_path):
    from tfxformers.errors import UserError
    from tfxformers.pipeline.qa.runner import QaRunOptions, check_options

    (tmp_path / "ok.json").write_text(json.dumps(_squad(6)))
    with pytest.raises(UserError, match="trainer_eval_questions must be at least 1"):
        check_options(QaRunOptions(data=str(tmp_path / "ok.json"), trainer_eval_questions=0))
    with pytest.raises(UserError, match="--eval-stride must be at least 1"):
        check_options(QaRunOptions(data=str(tmp_path / "ok.json"), eval_stride=0))
