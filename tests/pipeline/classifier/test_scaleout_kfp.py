"""The Vertex AI / Kubeflow Pipelines v2 spec that ``pipeline compile`` writes, read by the KFP SDK itself.

The ``kfp`` package (2.x) needs protobuf >= 6.31 and pins ``requests`` / ``urllib3`` exactly, which neither
stack's lock can take (the legacy stack has protobuf 3.20), so it lives in a venv of its own: ``kfp`` in this
interpreter if it is there, else ``$TFXFORMERS_KFP_PYTHON``, else ``.venv-kfp/bin/python`` in the checkout
(``requirements/kfp.lock``). The spec is compiled here, by this stack's TFX, and handed to that interpreter,
which parses it strictly into KFP's own protobuf messages (an unknown field fails), checks every task's
component and executor, loads it as a KFP component and compiles it again inside a KFP pipeline.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

KFP_CHECK = r'''
import json, sys

import kfp
import yaml
from google.protobuf import json_format
from kfp import compiler, components, dsl
from kfp.pipeline_spec import pipeline_spec_pb2

path, recompiled = sys.argv[1], sys.argv[2]
with open(path) as f:
    document = json.load(f)
job = json_format.ParseDict(document, pipeline_spec_pb2.PipelineJob())
spec = json_format.ParseDict(document["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
problems, tasks = [], {}
for name, task in spec.root.dag.tasks.items():
    component = task.component_ref.name
    if component not in spec.components:
        problems.append(f"{name}: no component {component}")
        continue
    label = spec.components[component].executor_label
    if label not in executors:
        problems.append(f"{name}: no executor {label}")
        continue
    for upstream in task.dependent_tasks:
        if upstream not in spec.root.dag.tasks:
            problems.append(f"{name}: depends on a missing task {upstream}")
    parameters = {}
    for key, value in task.inputs.parameters.items():
        runtime = value.runtime_value
        if runtime.HasField("constant"):
            parameters[key] = json_format.MessageToDict(runtime.constant)
        elif runtime.HasField("constant_value"):  # the older field TFX 1.16 writes: {"stringValue": ...}
            parameters[key] = next(iter(json_format.MessageToDict(runtime.constant_value).values()), None)
    tasks[name] = {"depends_on": sorted(task.dependent_tasks), "image": executors[label].get("container", {}).get("image"),
                   "parameters": parameters}

loaded = components.load_component_from_text(yaml.safe_dump(document["pipelineSpec"]))


@dsl.pipeline(name="wrapper")
def wrapper():
    loaded()


compiler.Compiler().compile(wrapper, recompiled)
with open(recompiled) as f:
    again = yaml.safe_load(f)
print(json.dumps({"kfp": kfp.__version__, "name": spec.pipeline_info.name, "schema": spec.schema_version,
                  "sdk": spec.sdk_version, "display_name": job.display_name,
                  "output_directory": job.runtime_config.gcs_output_directory, "problems": problems,
                  "tasks": tasks, "loaded_name": loaded.name,
                  "recompiled_components": sorted(again["components"])}))
'''


def kfp_python() -> str | None:
    """An interpreter that has the KFP SDK, or None."""
    if importlib.util.find_spec("kfp") is not None and importlib.util.find_spec("kfp.compiler") is not None:
        return sys.executable
    for candidate in (os.environ.get("TFXFORMERS_KFP_PYTHON"), str(REPO / ".venv-kfp" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


KFP_PYTHON = kfp_python()
pytestmark = pytest.mark.skipif(KFP_PYTHON is None, reason="no KFP SDK: make kfp-venv (requirements/kfp.lock) "
                                                           "or set TFXFORMERS_KFP_PYTHON")


def _compile(tmp_path, tiny_reviews_csv, tiny_bert_dir, monkeypatch, capsys, *extra: str) -> Path:
    from tfxformers.cli import main

    monkeypatch.chdir(tmp_path)
    output = tmp_path / "pipeline.json"
    code = main(["pipeline", "compile", "--runner", "vertex", "--output", str(output), "--data", str(tiny_reviews_csv),
                 "--text-column", "review", "--label-column", "sentiment", "--encoder", str(tiny_bert_dir),
                 "--mode", "finetune", "--image", "example.com/tfxformers:1", "--pipeline-root", "gs://bucket/root",
                 "--data-root", "gs://bucket/data", "--model-base", "gs://bucket/serving_models",
                 "--min-accuracy", "0.6", *extra])
    assert code == 0, capsys.readouterr()
    return output


def check_with_kfp(spec: Path) -> dict:
    answer = subprocess.run([KFP_PYTHON, "-c", KFP_CHECK, str(spec), str(spec.with_suffix(".recompiled.yaml"))],
                            capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr[-4000:]
    return json.loads(answer.stdout.strip().splitlines()[-1])


def test_the_kfp_sdk_accepts_the_compiled_spec(tmp_path, tiny_reviews_csv, tiny_bert_dir, monkeypatch, capsys):
    from tfxformers.pipeline.classifier.pipeline import COMPONENT_IDS

    spec = _compile(tmp_path, tiny_reviews_csv, tiny_bert_dir, monkeypatch, capsys, "--distribute", "multi-worker")
    summary = check_with_kfp(spec)
    assert summary["kfp"].startswith("2.") and summary["schema"] == "2.0.0", summary
    assert summary["problems"] == []
    assert summary["name"] == summary["loaded_name"] == "tfxformers-sentiment"
    assert summary["output_directory"] == "gs://bucket/root"
    tasks = summary["tasks"]
    assert all(any(t == c or t.startswith(c + "-") for t in tasks) for c in COMPONENT_IDS), sorted(tasks)
    # Every container runs the image given to compile (the resolver lookups run inside Vertex, no image).
    images = {t["image"] for t in tasks.values()} - {None}
    assert images == {"example.com/tfxformers:1"}
    # The order that keeps bad data from training and unblessed models from serving.
    assert "ValidationGate" in tasks["Trainer"]["depends_on"]
    assert {"Evaluator", "Trainer"} <= set(tasks["Pusher"]["depends_on"])
    assert "Trainer" in tasks["Evaluator"]["depends_on"]
    # What the Trainer's run_fn receives: the strategy among the rest (TF_CONFIG comes from where it runs).
    trainer = tasks["Trainer"]["parameters"]
    assert trainer["run_fn"] == "tfxformers.pipeline.classifier.trainer_module.run_fn"
    custom = json.loads(trainer["custom_config"])
    assert custom["distribute"] == "multi-worker" and custom["mode"] == "finetune"
    assert custom["label_names"] == ["neg", "pos"]
    # KFP could load it as a component and compile it again inside a pipeline of its own.
    assert {"CsvExampleGen", "Trainer", "Pusher"} <= set(summary["recompiled_components"])


def test_the_kfp_check_fails_on_a_broken_spec(tmp_path):
    """The check can fail: a task pointing at a component the spec does not have."""
    broken = {"displayName": "broken", "runtimeConfig": {"gcsOutputDirectory": "gs://b/r"}, "pipelineSpec": {
        "pipelineInfo": {"name": "broken"}, "schemaVersion": "2.0.0", "sdkVersion": "tfx-test",
        "deploymentSpec": {"executors": {"A_executor": {"container": {"image": "i", "command": ["true"]}}}},
        "components": {"A": {"executorLabel": "A_executor"}},
        "root": {"dag": {"tasks": {"A": {"componentRef": {"name": "A"}, "taskInfo": {"name": "A"}},
                                   "B": {"componentRef": {"name": "Missing"}, "taskInfo": {"name": "B"},
                                         "dependentTasks": ["A"]}}}}}}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    answer = subprocess.run([KFP_PYTHON, "-c", KFP_CHECK, str(path), str(tmp_path / "again.yaml")],
                            capture_output=True, text=True, timeout=300)
    # KFP refuses to load it, or the per-task check names the missing component.
    assert answer.returncode != 0 or "no component Missing" in answer.stdout
    broken["pipelineSpec"]["unknownField"] = 1
    path.write_text(json.dumps(broken))
    answer = subprocess.run([KFP_PYTHON, "-c", KFP_CHECK, str(path), str(tmp_path / "again.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert answer.returncode != 0 and "unknownField" in answer.stderr
