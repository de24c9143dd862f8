"""The question-answering TFX pipeline end to end: real LocalDagRunner, SQLite ML Metadata, a tiny BERT reader.

The questions are a span task the lexical baseline cannot do and a tiny model learns in seconds: each
context is a run of Greek-letter words with one colour word somewhere in it, and every question asks
which colour is named (no question word occurs in the context, so the baseline's overlap and nearness see
nothing: F1 about 5). The first run must bless and push ``qa/1``; a second, cached run re-scores that
model against itself. Gate refusals stop before the Trainer.

The tests on the trained run are marked ``once`` (the current stack only where ``make test`` runs both):
the legacy stack still runs this pipeline once through (a run that is not blessed and pushes nothing)
and the classifier pipeline's whole Trainer -> Evaluator -> Pusher run (``tests/pipeline/classifier``), which
is where the stacks differ; the 2-3 minutes of training and pushing here would only repeat that. Beam runs in-process (as the LM pipeline's
test does: multi-processing workers would each import TensorFlow).
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

IN_PROCESS_BEAM = ["--direct_running_mode=in_memory"]
FILLER = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()
COLOURS = "red blue green yellow purple orange black white".split()
QUESTION = "which colour is named here ?"
MAX_SEQ_LEN = 64
DOC_STRIDE = 16


def colour_squad(count: int, seed: int, prefix: str) -> dict:
    """SQuAD 1.1 JSON: ``count`` contexts of 8-70 filler words with one colour inserted, one question each
    (contexts over one window of 64 tokens are split, so some answers sit in the second window)."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(count):
        words = [rng.choice(FILLER) for _ in range(rng.randint(8, 70))]
        at, colour = rng.randrange(len(words) + 1), rng.choice(COLOURS)
        words.insert(at, colour)
        start = len(" ".join(words[:at])) + (1 if at else 0)
        paragraphs.append({"context": " ".join(words) + " .", "qas": [{
            "id": f"{prefix}{i:03d}", "question": QUESTION, "answers": [{"text": colour, "answer_start": start}]}]})
    return {"version": "1.1", "data": [{"title": "colours", "paragraphs": paragraphs}]}


def _options(root: Path, files: dict, **overrides):
    from tfxformers.pipeline.qa.runner import QaRunOptions

    values = dict(data=str(files["train"]), eval_data=str(files["eval"]), eval_stride=1, encoder=str(files["encoder"]),
                  max_seq_len=MAX_SEQ_LEN, doc_stride=DOC_STRIDE, epochs=4, batch_size=16, learning_rate=3e-3,
                  name="tinyqa", model_base=str(root / "serving_models"), pipeline_root=str(root / "pipeline"),
                  beam_args=list(IN_PROCESS_BEAM))
    values.update(overrides)
    return QaRunOptions(**values)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("qa_pipeline_e2e")


@pytest.fixture(scope="module")
def files(root):
    from tfxformers.models.qa import tiny

    words = FILLER + COLOURS + QUESTION.split()
    paths = {"train": root / "train.json", "eval": root / "eval.json"}
    paths["train"].write_text(json.dumps(colour_squad(240, 1, "t")))
    paths["eval"].write_text(json.dumps(colour_squad(40, 2, "e")))
    paths["encoder"] = tiny.make_tiny_qa_checkpoint(root / "encoder", words=words, hidden_size=32,
                                                    max_position_embeddings=128, with_head=False)
    # The same architecture with a random span head, exported untrained: the model that must be refused.
    paths["untrained"] = tiny.make_tiny_qa_checkpoint(root / "untrained", words=words, hidden_size=32,
                                                      max_position_embeddings=128, seed=3)
    return paths


@pytest.fixture(scope="module")
def first_run(root, files):
    from tfxformers.pipeline.qa.runner import report_qa, run_qa_local

    out = io.StringIO()
    summary = run_qa_local(_options(root, files), out=out)
    code = report_qa(summary, out=out)
    return summary, code, out.getvalue()


def _versions(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) if model_dir.is_dir() else []


def _examples(path: Path):
    from tfxformers.models.qa import features

    return features.load_squad(path)[0]


@pytest.mark.once
def test_every_component_ran_and_the_blessed_model_was_pushed(first_run, root):
    from tfxformers.pipeline.qa.pipeline import COMPONENT_IDS

    summary, code, output = first_run
    executed = [c for c in COMPONENT_IDS if c != "latest_blessed_model_resolver"]
    assert {c: summary.states.get(c) for c in executed} == {c: "COMPLETE" for c in executed}, output
    assert code == 0 and "pushed version 1 to" in output, output
    assert _versions(root / "serving_models" / "tinyqa") == ["1"]
    assert Path(summary.pushed_path) == root / "serving_models" / "tinyqa" / "1"
    e = summary.evaluation
    assert e["blessed"] and not e["reasons"] and e["questions"] == 40 and e["baseline_model"] is None
    assert e["f1"] > 90 and e["baseline_f1"] < 20, e
    # The report prints the evaluation JSON's figures; the Trainer (Keras model) and the evaluator (the
    # exported SavedModel) scored the same questions alike.
    assert (f"eval EM {e['exact_match']:.1f} / F1 {e['f1']:.1f} on 40 questions (SQuAD v1.1 metric) vs the lexical "
            f"baseline's EM {e['baseline_exact_match']:.1f} / F1 {e['baseline_f1']:.1f}") in output
    assert e["f1"] == pytest.approx(summary.training_metrics["f1"], abs=1e-6)
    assert summary.training_metrics["train_questions"] == 240 and summary.questions["counts"] == {"train": 240, "eval": 40}


@pytest.mark.once
def test_the_pushed_version_loads_and_answers_like_the_trained_model(first_run, root, files):
    import tensorflow as tf

    from tfxformers.models.qa import inference
    from tfxformers.models.qa.model import load_qa
    from tfxformers.pipeline.qa.components import predict_serving_model

    summary, _, _ = first_run
    pushed = root / "serving_models" / "tinyqa" / "1"
    loaded = tf.saved_model.load(str(pushed))
    assert {"answer", "serving_default", "tfxformers_metadata"} <= set(loaded.signatures)
    info = json.loads((pushed / "assets.extra" / "tfxformers.json").read_text())
    assert info["kind"] == "qa" and info["version"] == 1 and info["max_length"] == MAX_SEQ_LEN
    assert (pushed / "assets.extra" / "tokenizer" / "tokenizer.json").is_file()
    questions = _examples(files["eval"])[:12]
    expected = inference.predict_examples(load_qa(summary.trained_dir), questions, max_answer_len=30)
    assert predict_serving_model(str(pushed), questions) == expected


@pytest.mark.once
def test_a_second_run_comes_from_the_cache_and_pushes_nothing_new(first_run, root, files):
    from tfxformers.pipeline.qa.runner import report_qa, run_qa_local

    out = io.StringIO()
    summary = run_qa_local(_options(root, files), out=out)
    code = report_qa(summary, out=out)
    for node in ("ImportExampleGen", "StatisticsGen", "ExampleValidator", "QAExampleGate", "Trainer"):
        assert summary.states[node] == "CACHED", (node, out.getvalue())
    # The evaluator re-ran because the resolver now finds the first run's model blessed: compared with
    # itself on the same questions, it is no worse.
    e = summary.evaluation
    assert e["baseline_model"] and e["blessed"] and e["baseline_model_f1"] == pytest.approx(e["f1"])
    assert "the latest blessed model's F1" in out.getvalue()
    assert code == 0 and "no new version" in out.getvalue()
    assert _versions(root / "serving_models" / "tinyqa") == ["1"]


def _lexical_squad() -> dict:
    """Questions the lexical baseline answers (the answer follows the question's own words)."""
    boxes = "one two three four five six".split()
    things = "kappa sigma omicron lambda upsilon theta".split()
    context = " ".join(f"box {b} holds the {t} ." for b, t in zip(boxes, things))
    qas = []
    for b, t in zip(boxes, things):
        start = context.index(f"box {b} holds the {t}") + len(f"box {b} holds the ")
        qas.append({"id": f"box-{b}", "question": f"what does box {b} hold ?", "answers": [{"text": t, "answer_start": start}]})
    return {"version": "1.1", "data": [{"title": "boxes", "paragraphs": [{"context": context, "qas": qas}]}]}


@pytest.mark.once
def test_the_evaluator_refuses_a_model_below_the_baseline_or_worse_than_the_latest_blessed(first_run, root, files,
                                                                                          tmp_path):
    from tfxformers.models.qa import features
    from tfxformers.models.qa.model import load_qa
    from tfxformers.pipeline.qa.components import evaluate
    from tfxformers.serving.export.qa import write_qa

    untrained = tmp_path / "untrained"
    write_qa(load_qa(files["untrained"]), untrained, name="tinyqa")
    blessed = str(root / "serving_models" / "tinyqa" / "1")
    colours = _examples(files["eval"])

    worse = evaluate(str(untrained), blessed, colours)
    assert not worse["blessed"] and worse["f1"] < worse["baseline_model_f1"], worse
    assert any("worse than the latest blessed model's" in r for r in worse["reasons"]), worse["reasons"]

    lexical = features.parse_squad(_lexical_squad())[0]
    below = evaluate(str(untrained), None, lexical)
    assert below["baseline_f1"] == 100.0 and below["f1"] < 100.0 and not below["blessed"], below
    assert below["reasons"] == [f"F1 {below['f1']:.2f} is not above the lexical baseline's 100.00"]

    same = evaluate(blessed, blessed, colours)
    assert same["blessed"] and same["f1"] == same["baseline_model_f1"]


def test_a_run_not_blessed_reports_why_and_pushes_nothing(tmp_path):
    from tfxformers.pipeline.qa.runner import QaRunSummary, report_qa

    summary = QaRunSummary(tmp_path, tmp_path / "m.sqlite", tmp_path / "log", 1.0, states={"Pusher": "COMPLETE"},
                           blessed=False, pushed=False)
    summary.evaluation = {"exact_match": 1.0, "f1": 2.0, "questions": 5, "baseline_exact_match": 3.0,
                          "baseline_f1": 4.0, "reasons": ["F1 2.00 is not above the lexical baseline's 4.00"]}
    out = io.StringIO()
    assert report_qa(summary, out) == 1
    assert "NOT pushed: F1 2.00 is not above the lexical baseline's 4.00" in out.getvalue()


def _malformed_file(path: Path) -> Path:
    """The colour questions with three faults: an answer moved off its answer_start, an empty context, a
    question without its 'question' field."""
    data = colour_squad(30, 5, "m")
    paragraphs = data["data"][0]["paragraphs"]
    paragraphs[3]["qas"][0]["answers"][0]["answer_start"] += 2
    paragraphs[7]["context"] = "   "
    del paragraphs[11]["qas"][0]["question"]
    path.write_text(json.dumps(data))
    return path


# Stopped by the project's own QAExampleGate before anything stack-specific trains: one stack suffices.
@pytest.mark.once
def test_malformed_questions_stop_the_run_before_training_naming_them(files, tmp_path, capsys):
    from tfxformers.cli import main
    from tfxformers.pipeline.qa.runner import QaRunSummary, summarize_qa

    options = _options(tmp_path, files)
    bad = _malformed_file(tmp_path / "bad.json")
    argv = ["pipeline", "run", "--task", "qa", "--data", str(bad), "--eval-data", str(files["eval"]),
            "--eval-stride", "1", "--encoder", str(files["encoder"]), "--name", options.name,
            "--max-seq-len", str(MAX_SEQ_LEN), "--doc-stride", str(DOC_STRIDE), "--model-base", options.model_base,
            "--pipeline-root", options.pipeline_root, "--beam-args=" + " ".join(options.beam_args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert "stopped before training (nothing was trained or pushed)" in err and "3 malformed questions" in err
    assert "question 'm003' (train split, data[0].paragraphs[3].qas[0]): answer 1 " in err
    assert "is not at answer_start" in err and "the context there reads" in err
    assert "question 'm007' (train split, data[0].paragraphs[7].qas[0]): empty context" in err
    assert "question 'm011' (train split, data[0].paragraphs[11].qas[0]): missing 'question'" in err
    # The schema sees the missing field too; only the gate sees the other two.
    assert "feature 'question'" in err
    assert not Path(options.model_base).exists()
    metadata = Path(options.pipeline_root) / "metadata.sqlite"
    summary = summarize_qa(metadata, f"tfxformers-{options.name}", QaRunSummary(tmp_path, metadata, tmp_path, 0.0))
    assert summary.states.get("QAExampleGate") == "FAILED", summary.states
    assert "Trainer" not in summary.states and "Pusher" not in summary.states, summary.states
