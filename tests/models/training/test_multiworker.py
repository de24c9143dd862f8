"""``--distribute multi-worker`` for real: two TensorFlow processes on 127.0.0.1 (worker 0 = chief, worker 1),
each with its own TF_CONFIG, training the tiny classifier and the tiny GPT-2 through the CLI.

Checked: both workers end with the same weights; only the chief writes the run directory (the other worker
writes to its own directory, kept here through TFXFORMERS_WORKER_DIR so that its weights can be compared);
the result predicts like a single-worker run of the same seed; a worker killed with SIGKILL mid-epoch makes
the chief fail by itself (no hang), and the restarted cluster resumes from the last BackupAndRestore backup
(the step is asserted) and finishes a complete model.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tfxformers.testing import (_die_with_parent, free_port, make_tiny_bert_checkpoint, tfxformers_command,
                                write_two_class_reviews)

# Both workers compute the same all-reduced update; a single worker computes it in one piece. With every
# dropout at 0 and batches that split evenly between the two workers, what is left is the order of float
# additions, so probabilities agree far below this.
SINGLE_VS_MULTI_ATOL = 1e-4
# Generous: on a loaded 2-core machine the first epoch's tracing alone has taken 110 s.
WORKER_TIMEOUT = 600
GPT2_PERPLEXITY_RTOL = 0.01


def _cluster(n: int = 2) -> list[str]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return [f"127.0.0.1:{port}" for port in sorted(ports)]


def start_cluster(args: list[str], logs: Path, worker_dir: Path | None = None) -> list[subprocess.Popen]:
    """``tfxformers ARGS`` once per worker of a fresh two-worker cluster, each with its TF_CONFIG."""
    cluster = _cluster()
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for index in range(len(cluster)):
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   TF_CONFIG=json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}))
        if worker_dir is not None:
            env["TFXFORMERS_WORKER_DIR"] = str(worker_dir / f"worker{index}")
        log = open(logs / f"worker{index}-{time.monotonic_ns()}.log", "w")
        process = subprocess.Popen(tfxformers_command() + args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=_die_with_parent)
        process.log = Path(log.name)
        log.close()
        processes.append(process)
    return processes


def wait_cluster(processes, timeout: float = WORKER_TIMEOUT) -> list[str]:
    """Wait for every worker; their logs. Fails (killing what still runs) if one fails or time runs out."""
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    outputs = [p.log.read_text(errors="replace") for p in processes]
    for index, (process, output) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, f"worker {index} exited with {process.returncode}:\n{output[-4000:]}"
    return outputs


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """The tiny BERT with every dropout at 0, so that runs differ only in how the work is split."""
    path = make_tiny_bert_checkpoint(tmp_path_factory.mktemp("tiny_bert_nodropout"))
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


def _write_reviews(path: Path, counts: dict[str, int]) -> Path:
    """Short two-class reviews with a split column (every text fits the first length bucket, and
    each split's size is a multiple of the batch size, so every batch splits evenly over two workers)."""
    return write_two_class_reviews(path, counts, length=(3, 8))


def _classifier_args(data: Path, encoder: Path, output: Path, *extra: str) -> list[str]:
    return ["train", "classifier", "--data", str(data), "--encoder", str(encoder), "--mode", "finetune",
            "--output", str(output), "--batch-size", "8", "--max-length", "16", "--dropout", "0",
            "--learning-rate", "1e-3", "--seed", "3", "--distribute", "multi-worker", *extra]


def _history_epochs(run: Path) -> list[int]:
    rows = (run / "history.csv").read_text().strip().splitlines()[1:]
    return [int(row.split(",")[0]) for row in rows]


def _weights(model_dir: Path) -> list[np.ndarray]:
    from tfxformers.models import artifacts

    return [w.numpy() for w in artifacts.load_trained(model_dir).keras_model.weights]


def _probabilities(model_dir: Path, texts: list[str]) -> np.ndarray:
    from tfxformers.models.classification.trained import predict_texts

    return np.array([[r["probabilities"][name] for name in sorted(r["probabilities"])]
                     for r in predict_texts(model_dir, texts)])


# 16 steps per epoch: the first backup (step 4) comes long before the end, and the resumed run is short.
TRAIN_KILLED = 128

TEXTS = ["good great fun", "boring dull mess", "the film was very good", "the plot was awful"]


def test_two_workers_train_the_classifier_like_one_worker(tmp_path, encoder_dir):
    data = _write_reviews(tmp_path / "reviews.csv", {"train": 64, "validation": 16, "test": 16})
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    args = _classifier_args(data, encoder_dir, run, "--epochs", "2", "--checkpoint-every-steps", "0")
    outputs = wait_cluster(start_cluster(args, tmp_path / "logs", worker_dir=scratch))
    assert all("of 2 workers" in out for out in outputs), outputs[0][-2000:]

    # Only the chief wrote the run: one CSV row per epoch (two writers would append twice), one TensorBoard
    # writer, no worker's temporary backup left behind, and worker 1's files in its own directory.
    assert _history_epochs(run) == [0, 1]
    assert len(list((run / "logs" / "fit" / "train").glob("events.out.tfevents.*"))) == 1
    assert json.loads((run / "tfxformers.json").read_text())["kind"] == "classifier"
    assert not (run / "checkpoints" / "backup").exists()
    assert not list(run.rglob("workertemp_*"))
    assert not (scratch / "worker0").exists()
    worker = next((scratch / "worker1").glob("*/tfxformers.json")).parent
    assert _history_epochs(worker) == [0, 1]

    chief_weights, worker_weights = _weights(run), _weights(worker)
    assert len(chief_weights) == len(worker_weights) > 0
    for a, b in zip(chief_weights, worker_weights):
        np.testing.assert_array_equal(a, b)

    # The same seed on one worker, in this process.
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier

    single = tmp_path / "single"
    train_classifier(ClassifierTrainConfig(
        data=str(data), encoder=str(encoder_dir), mode="finetune", output=str(single), epochs=2, batch_size=8,
        max_length=16, dropout=0.0, learning_rate=1e-3, seed=3, checkpoint_every_steps=0, verbose=0))
    multi_p, single_p = _probabilities(run, TEXTS), _probabilities(single, TEXTS)
    np.testing.assert_allclose(multi_p, single_p, atol=SINGLE_VS_MULTI_ATOL)
    # Both learnt something (the comparison is not between two untouched models: chance is 0.5), alike.
    multi_m, single_m = (json.loads((d / "metrics.json").read_text()) for d in (run, single))
    assert multi_m["examples"] == single_m["examples"] == 16
    assert multi_m["accuracy"] == single_m["accuracy"] >= 0.75


def test_a_killed_worker_makes_the_cluster_resume_from_the_backup(tmp_path, encoder_dir):
    import tensorflow as tf

    data = _write_reviews(tmp_path / "reviews.csv", {"train": TRAIN_KILLED, "validation": 16, "test": 16})
    run = tmp_path / "run"
    args = _classifier_args(data, encoder_dir, run, "--epochs", "2", "--checkpoint-every-steps", "4")
    backup = run / "checkpoints" / "backup" / "chief"
    chief, worker = start_cluster(args, tmp_path / "logs")
    deadline = time.monotonic() + WORKER_TIMEOUT
    while not (backup / "checkpoint").is_file():
        assert chief.poll() is None and worker.poll() is None, chief.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no backup was ever written"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # The chief notices the lost worker (coordination-service heartbeat) and fails by itself, as a pod would,
    # instead of waiting forever in the next all-reduce.
    try:
        chief.wait(timeout=120)
    except subprocess.TimeoutExpired:
        chief.kill()
        pytest.fail("the chief hung after its worker was killed")
    assert chief.returncode != 0
    assert not (run / "tfxformers.json").exists()

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(backup)))
    epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
    steps_per_epoch = TRAIN_KILLED // 8
    done = epoch * steps_per_epoch + batch + 1
    assert 0 < done < 2 * steps_per_epoch, (epoch, batch)
    assert (batch + 1) % 4 == 0  # a backup every 4 steps

    outputs = wait_cluster(start_cluster(args, tmp_path / "logs"))
    for out in outputs:
        assert f"(backed up at epoch {epoch + 1}, step {batch + 1})" in out, out[-3000:]
    assert json.loads((run / "tfxformers.json").read_text())["kind"] == "classifier"
    assert (run / "metrics.json").is_file() and not (run / "checkpoints" / "backup").exists()
    # Epochs finished before the kill are not trained again.
    assert _history_epochs(run) == list(range(2)) or _history_epochs(run) == [1], _history_epochs(run)
    assert _history_epochs(run)[-1] == 1
    probabilities = _probabilities(run, TEXTS)
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_two_workers_train_gpt2(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley." for i in range(120)))
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    args = ["train", "gpt2", "--corpus", str(corpus), "--output", str(run), "--preset", "tiny", "--vocab-size", "300",
            "--block-size", "16", "--epochs", "1", "--batch-size", "8", "--seed", "5", "--distribute", "multi-worker"]
    outputs = wait_cluster(start_cluster(args, tmp_path / "logs", worker_dir=scratch))
    assert all("of 2 workers" in out for out in outputs), outputs[0][-2000:]
    assert json.loads((run / "tfxformers.json").read_text())["kind"] == "gpt2"
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2  # header + one epoch, one writer
    assert not list(run.rglob("workertemp_*")) and not (run / "checkpoints" / "backup").exists()
    worker = next((scratch / "worker1").glob("*/tfxformers.json")).parent

    from transformers import TFGPT2LMHeadModel

    chief_model = TFGPT2LMHeadModel.from_pretrained(str(run / "model"))
    worker_model = TFGPT2LMHeadModel.from_pretrained(str(worker / "model"))
    for a, b in zip(chief_model.weights, worker_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # A single-worker run of the same seed. GPT-2's dropout (0.1) draws differently per replica, so the
    # two runs are close, not equal: validation perplexity within GPT2_PERPLEXITY_RTOL.
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, train_gpt2
    from tfxformers.models.lm.text_generation import generate_text

    single = tmp_path / "single"
    train_gpt2(Gpt2TrainConfig(corpus=str(corpus), output=str(single), preset="tiny", vocab_size=300, block_size=16,
                               epochs=1, batch_size=8, seed=5, verbose=0))
    multi_m, single_m = (json.loads((d / "metrics.json").read_text()) for d in (run, single))
    print("validation perplexity: two workers", multi_m["validation_perplexity"], "one", single_m["validation_perplexity"])
    assert multi_m["validation_perplexity"] < multi_m["initial_validation_perplexity"] * 0.9  # it learnt
    assert abs(multi_m["validation_perplexity"] / single_m["validation_perplexity"] - 1) < GPT2_PERPLEXITY_RTOL
    assert isinstance(generate_text(run, "Emma walked", max_new_tokens=5)["continuation"], str)  # loads, generates
