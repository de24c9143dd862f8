"""The Trainer's ``run_fn`` under multi-worker, as Vertex AI's custom training runs it: every replica calls it
with the same arguments and its own TF_CONFIG. Two real processes on 127.0.0.1; TFX itself is not needed
(``run_fn`` reads only attributes of its ``fn_args``): the inputs are ExampleGen-style gzipped TFRecords, read
through a data accessor built on TFXIO's ``TFExampleRecord`` (what TFX's own accessor makes for tf.Examples)
against the curated sentiment schema.

Checked: both replicas finish; the chief writes the trained model, ``Format-Serving`` and ``Format-Push``;
the other replica writes nothing into the shared artifact directories.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfxformers.pipeline.runner import SCHEMA_DIR
from tfxformers.testing import _die_with_parent, free_port

RUN_FN = r'''
import json, sys, types
import tfxformers
from tfx_bsl.public import tfxio
from tfxformers.pipeline.classifier.training import train_and_export

def tf_dataset_factory(file_patterns, options, schema):
    return tfxio.TFExampleRecord(file_patterns, schema=schema).TensorFlowDataset(options)

args = json.loads(sys.argv[1])
args["data_accessor"] = types.SimpleNamespace(tf_dataset_factory=tf_dataset_factory)
print(json.dumps(train_and_export(types.SimpleNamespace(**args))["accuracy"]))
'''


def _write_split(directory: Path, rows: list[tuple[str, int]]) -> None:
    import tensorflow as tf

    from tfxformers.pipeline.classifier.signatures import LABEL_KEY, TEXT_KEY

    directory.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(directory / "data.gz"), options="GZIP") as writer:
        for text, label in rows:
            example = tf.train.Example(features=tf.train.Features(feature={
                TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
            writer.write(example.SerializeToString())


def test_every_replica_runs_run_fn_and_only_the_chief_exports(tmp_path, tiny_bert_dir):
    rows = [(("good great fun " if i % 2 else "boring dull mess ") + "the film", i % 2) for i in range(32)]
    examples = tmp_path / "examples"
    for split, part in (("train", rows), ("eval", rows[:8]), ("test", rows[8:16])):
        _write_split(examples / f"Split-{split}", part)
    model_uri = tmp_path / "model"
    fn_args = {"train_files": [str(examples / "Split-train" / "*")], "eval_files": [str(examples / "Split-eval" / "*")],
               "model_run_dir": str(tmp_path / "model_run"), "serving_model_dir": str(model_uri / "Format-Serving"),
               "schema_path": str(SCHEMA_DIR / "sentiment.pbtxt"),
               "custom_config": {"mode": "finetune", "encoder": str(tiny_bert_dir), "epochs": 1, "batch_size": 8,
                                 "max_length": 16, "distribute": "multi-worker", "label_names": ["neg", "pos"],
                                 "model_name": "tiny"}}
    ports = set()
    while len(ports) < 2:
        ports.add(free_port())
    cluster = [f"127.0.0.1:{p}" for p in sorted(ports)]
    processes = []
    for index in range(2):
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   TF_CONFIG=json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}))
        log = open(tmp_path / f"replica{index}.log", "w")
        processes.append(subprocess.Popen([sys.executable, "-c", RUN_FN, json.dumps(fn_args)], stdout=log,
                                          stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent))
        log.close()
    deadline = time.monotonic() + 300
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("a replica did not finish in 300 s")
    for index, process in enumerate(processes):
        assert process.returncode == 0, (tmp_path / f"replica{index}.log").read_text()[-4000:]

    run = tmp_path / "model_run"
    assert sorted(p.name for p in run.iterdir()) == ["model"]  # no training CSV or scratch left behind
    assert json.loads((run / "model" / "tfxformers.json").read_text())["label_names"] == ["neg", "pos"]
    assert not list(run.rglob("workertemp_*")) and not (run / "model" / "checkpoints" / "backup").exists()
    assert sorted(p.name for p in model_uri.iterdir()) == ["Format-Push", "Format-Serving"]
    for export in ("Format-Serving", "Format-Push"):
        assert (model_uri / export / "saved_model.pb").is_file()
    assert "multi-worker training: worker 1 of 2 workers" in (tmp_path / "replica1.log").read_text()


def test_a_local_pipeline_run_refuses_multi_worker(tmp_path, tiny_reviews_csv, capsys):
    """LocalDagRunner starts one Trainer: multi-worker would wait forever for workers nobody starts."""
    from tfxformers.cli import main

    code = main(["pipeline", "run", "--data", str(tiny_reviews_csv), "--text-column", "review", "--label-column",
                 "sentiment", "--distribute", "multi-worker", "--pipeline-root", str(tmp_path / "root"),
                 "--model-base", str(tmp_path / "serving")])
    assert code == 2 and "a local run has one Trainer process" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()
