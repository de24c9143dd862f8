"""The QA training recipe: ``fit_qa`` on examples in memory, resumed only on the same examples."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfxformers.errors import UserError

DATA = Path(__file__).resolve().parents[2] / "data" / "qa_course.json"


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


def _lr_trace(clock_options, steps_cap=100_000):
    """Train a small dense model under a CpuClock; the learning rate and progress the optimizer saw, step by step."""
    import numpy as np
    import tensorflow as tf

    from tfxformers.models.qa import budget

    progress = tf.Variable(0.0, trainable=False)
    optimizer = budget.budget_optimizer(1e-3, progress, 0.2, 0.01)
    model = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(64), tf.keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensors((rng.normal(size=(32, 64)).astype("float32"),
                                         rng.normal(size=(32, 1)).astype("float32"))).repeat()
    trace = []

    class Record(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch % 5 == 0:  # the rate the optimizer's schedule gives this step (not every step: it costs CPU)
                schedule = self.model.optimizer.learning_rate
                trace.append((float(progress.numpy()), float(schedule(self.model.optimizer.iterations))))

    clock = budget.CpuClock(progress=progress, batch_sizes=lambda epoch: [32] * steps_cap, save_freq=0,
                            learning_rate=1e-3, warmup_ratio=0.2, verbose=0, **clock_options)
    model.fit(data, epochs=1, steps_per_epoch=steps_cap, verbose=0, callbacks=[clock, Record()])
    return clock, trace


def test_the_budget_schedule_warms_up_decays_to_zero_and_stops_at_the_budget(tmp_path):
    from tfxformers.models.qa import budget

    clock, trace = _lr_trace(dict(budget_minutes=0.03, checkpoints=tmp_path))
    assert clock.exhausted and clock.spent() >= 1.8 and 10 < clock.steps < 100_000
    assert clock.examples == 32 * clock.steps
    progresses, rates = zip(*trace)
    assert progresses[0] == 0.0 and rates[0] == 0.0 and list(progresses) == sorted(progresses)
    peak = max(range(len(rates)), key=rates.__getitem__)
    assert 0.15 <= progresses[peak] <= 0.25 and rates[peak] > 0.8e-3  # peak at the end of the warm-up
    assert all(a <= b + 1e-12 for a, b in zip(rates[:peak], rates[1:peak + 1]))  # rising, then falling
    assert all(a >= b - 1e-12 for a, b in zip(rates[peak:], rates[peak + 1:]))
    assert rates[-1] < 0.1e-3 and float(budget.lr_factor(1.0, 0.2)) == 0.0
    # A clock resumed with 60% of the budget spent goes on decaying from there, it does not warm up again.
    resumed, trace = _lr_trace(dict(budget_minutes=0.03, checkpoints=tmp_path,
                                    start={"cpu_seconds": 1.08, "steps": 7, "examples": 224}))
    assert trace[0][0] >= 0.6 and trace[0][1] <= 0.5e-3 + 1e-9 and resumed.exhausted
    assert resumed.steps > 7 and resumed.examples == 32 * resumed.steps


def test_a_budget_run_stops_at_its_budget_and_a_killed_one_resumes_with_the_cpu_it_had_spent(
        checkpoint, examples, tmp_path, monkeypatch, capsys):
    from tfxformers.models.qa import budget
    from tfxformers.models.qa.train import fit_qa

    train, validation = examples
    run = tmp_path / "run"
    config = _config(checkpoint, run, epochs=1000, budget_cpu_minutes=0.05, checkpoint_every_steps=4, verbose=2)
    monkeypatch.setattr(budget, "LOG_EVERY_STEPS", 1)
    counting = budget.CpuClock.on_train_batch_end

    def killed_at_step_10(self, batch, logs=None):  # the process dies after step 10; the last backup is step 8's
        counting(self, batch, logs)
        if self.steps == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(budget.CpuClock, "on_train_batch_end", killed_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        fit_qa(train, validation, config, run)
    state = json.loads((run / "checkpoints" / budget.STATE_FILE).read_text())
    assert (run / "checkpoints" / "backup").is_dir() and state["steps"] == 8 and 0 < state["cpu_seconds"] < 3
    assert 8 <= state["examples"] <= 8 * 8
    monkeypatch.setattr(budget.CpuClock, "on_train_batch_end", counting)
    capsys.readouterr()

    scores = fit_qa(train, validation, config, run)
    out = capsys.readouterr().out
    assert "resuming from the checkpoint" in out and "backed up at epoch" in out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert lines[0].startswith("step 9 ") and "/0.05 min" in lines[0]
    first_cpu = float(lines[0].split("CPU ")[1].split("/")[0])
    assert first_cpu >= round(state["cpu_seconds"] / 60, 2)  # the clock goes on from the backup's CPU time
    assert "the CPU budget is used up" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped_by"] == "cpu budget" and metrics["budget_cpu_minutes"] == 0.05
    assert 0.05 <= metrics["train_cpu_minutes"] < 0.2 and metrics["train_steps"] == int(lines[-1].split()[1]) > 10
    assert metrics["train_steps"] <= metrics["examples_seen"] <= 8 * metrics["train_steps"]
    assert not (run / "checkpoints" / budget.STATE_FILE).exists() and not (run / "checkpoints" / "backup").exists()


@pytest.mark.parametrize("options, message", [
    (["--budget-cpu-minutes", "0"], "--budget-cpu-minutes"),
    (["--budget-cpu-minutes", "-3"], "--budget-cpu-minutes"),
    (["--budget-cpu-minutes", "soon"], "--budget-cpu-minutes"),
    (["--warmup-ratio", "1"], "--warmup-ratio"),
    (["--buckets", "64", "32", "96"], "--buckets must be increasing lengths ending at --max-seq-len 96"),
    (["--buckets", "32", "64"], "--buckets must be increasing lengths ending at --max-seq-len 96 (got 32 64)"),
    (["--buckets", "32", "32", "96"], "--buckets must be increasing"),
    (["--buckets", "0", "96"], "--buckets"),
])
def test_bad_budget_and_bucket_values_are_one_error_line_and_exit_2(options, message, tmp_path, capsys):
    argv = ["train", "qa", "--data", str(DATA), "--output", str(tmp_path / "out"), "--max-seq-len", "96", *options]
    from tfxformers.testing import cli_error_line

    assert message in cli_error_line(argv, capsys)
    assert not (tmp_path / "out").exists()


def test_library_callers_get_the_same_checks(checkpoint, examples, tmp_path):
    from tfxformers.models.qa.train import fit_qa

    train, validation = examples
    for changes, message in (({"budget_cpu_minutes": 0.0}, "--budget-cpu-minutes must be > 0"),
                             ({"buckets": [32, 48]}, "ending at --max-seq-len 64")):
        with pytest.raises(UserError, match=message):
            fit_qa(train, validation, _config(checkpoint, tmp_path / "out", **changes), tmp_path / "out")
    assert not (tmp_path / "out").exists()
