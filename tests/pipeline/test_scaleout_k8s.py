"""deploy/k8s/training-multiworker.yaml: the names the pods give themselves are the names TF_CONFIG uses.

No cluster here: the manifest is parsed, and the container's own shell script is run with each pod's
JOB_COMPLETION_INDEX (as Kubernetes sets it) up to the training command; the TF_CONFIG it builds goes
through the same parser the training command uses (``models.multiworker``).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "training-multiworker.yaml"


@pytest.fixture(scope="module")
def documents():
    import yaml

    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def _tf_config(container: dict, index: int) -> str:
    env = {e["name"]: e["value"] for e in container["env"]}
    script = container["args"][0]
    script = script[: script.index("exec tfxformers")] + 'printf "%s" "$TF_CONFIG" >&2\n'
    answer = subprocess.run(["sh", "-c", script], env=dict(env, JOB_COMPLETION_INDEX=str(index), PATH="/usr/bin:/bin"),
                            capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0, answer.stderr
    return answer.stderr


def test_pods_build_a_tf_config_from_their_own_names(documents):
    from tfxformers.models.multiworker import worker_role

    job, service = documents["Job"], documents["Service"]
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    workers = int(env["WORKERS"])
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == workers == 2
    # Pod host names are JOB-INDEX; DNS resolves them under the headless Service named by `subdomain`.
    assert env["JOB_NAME"] == job["metadata"]["name"] and env["SERVICE"] == pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    assert int(env["PORT"]) == service["spec"]["ports"][0]["port"] == container["ports"][0]["containerPort"]
    hosts = [f"{env['JOB_NAME']}-{i}.{env['SERVICE']}:{env['PORT']}" for i in range(workers)]
    roles = []
    for index in range(workers):
        config = json.loads(_tf_config(container, index))
        assert config == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        roles.append(worker_role("multi-worker", {"TF_CONFIG": json.dumps(config)}))
    assert [r.is_chief for r in roles] == [True, False] and {r.num_workers for r in roles} == {2}
    # Restarting in place keeps the names; the run and its backup live on storage both pods mount.
    assert pod["restartPolicy"] == "OnFailure"
    command = container["args"][0]
    assert "--distribute multi-worker" in command and "--checkpoint-every-steps" in command
    output = command.split("--output", 1)[1].split()[0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert output.startswith(mounts["runs"] + "/")
    claim = next(v for v in pod["volumes"] if v["name"] == "runs")["persistentVolumeClaim"]["claimName"]
    assert documents["PersistentVolumeClaim"]["metadata"]["name"] == claim
    assert documents["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert env["TFXFORMERS_WORKER_DIR"] == mounts["scratch"]


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', "needs a \"cluster\" object and a \"task\""),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "no parameter servers"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "is not in its cluster"),
])
def test_a_bad_tf_config_is_a_user_error(tf_config, message):
    from tfxformers.errors import UserError
    from tfxformers.models.multiworker import worker_role

    with pytest.raises(UserError, match=message):
        worker_role("multi-worker", {} if tf_config is None else {"TF_CONFIG": tf_config})


def test_the_chief_is_the_chief_task_or_else_worker_0():
    from tfxformers.models.multiworker import worker_role

    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["w:2", "w:3"]}}
    roles = [worker_role("multi-worker", {"TF_CONFIG": json.dumps(dict(with_chief, task=task))})
             for task in ({"type": "chief", "index": 0}, {"type": "worker", "index": 0}, {"type": "worker", "index": 1})]
    assert [r.is_chief for r in roles] == [True, False, False] and roles[0].num_workers == 3
    assert worker_role("none", {}).is_chief and worker_role("mirrored", {}).num_workers == 1


@pytest.mark.parametrize("command", ["classifier", "gpt2"])
def test_the_training_commands_refuse_a_bad_multi_worker_setup_before_training(command, tmp_path, capsys, monkeypatch):
    from tfxformers.cli import main

    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "good film,pos\nbad film,neg\n" * 20)
    base = ["train", command, "--corpus" if command == "gpt2" else "--data", str(data), "--output", str(tmp_path / "out"),
            "--distribute", "multi-worker"]
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(base) == 2 and "needs the TF_CONFIG environment variable" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert main(base + ["--overwrite"]) == 2 and "--overwrite cannot be combined" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
