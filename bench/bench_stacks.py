"""Legacy vs current stack (issue 12): the same four measurements on each stack, alternating, as ratios.

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_stacks.py [--repeats 3]
      [--kinds finetune,encode,generate,grpc] [--env TF_ENABLE_ONEDNN_OPTS=0] [--small]
From the legacy venv: the legacy side runs in `.venv` (Python 3.10, TF 2.16), the current side through
stacks/root-run.sh in the Debian 13 root (Python 3.12, TF 2.21). Each measurement is a short worker process
of this same file (`bench_stacks.py --worker KIND`) that prints one JSON line; the driver runs them
legacy, current, legacy, current, ... (every kind once per repeat) and reports per kind the median of each
side and the ratio current / legacy. Both sides get the same clean environment plus any `--env`.

  finetune  fine-tuning examples/s: the real MiniLM classifier, `model.fit` on Rotten Tomatoes training
            snippets in bucket-padded batches of 32 (tokenization.make_dataset, as training does); one
            untimed warm-up epoch traces every bucket width, then one timed epoch over the same batches.
  encode    frozen-encoder encoding texts/s: transfer.encode_features over 1,000 training snippets, no
            cache (each call traces its own tf.function, as a user's call does; a small call warms up first).
  generate  in-graph generation tokens/s: make_generate_fn on the `mini` random GPT-2 (bench_gpt2_generation's
            model and prompt), 64 new tokens, greedy; median of 5 calls after two warm-up calls.
  grpc      the embedded server's gRPC Predict latency at batch 1: the MiniLM classifier exported as
            bench_serving does (once per stack, reused by later repeats), `tfxformers serve` started in that
            stack, median of N sequential requests (32 tokens) with the official stubs after a warm-up; the
            same signature called in-process in the client is timed too, to split model time from the
            server and gRPC path.

Writes bench/results/stacks.json (or --output). Where the host cannot run the Debian 13 root, the current
side is reported as skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LEGACY_PYTHON = ROOT / ".venv" / "bin" / "python"
CURRENT_PYTHON = ROOT / ".venv-current" / "bin" / "python"
KINDS = ("finetune", "encode", "generate", "grpc")
# kind -> (the worker's headline key, unit, True when higher is better)
METRICS = {"finetune": ("examples_per_second", "examples/s", True),
           "encode": ("texts_per_second", "texts/s", True),
           "generate": ("tokens_per_second", "tokens/s", True),
           "grpc": ("grpc_median_ms", "ms", False)}
SIZES = {"full": {"finetune_batches": 6, "encode_texts": 1000, "new_tokens": 64, "grpc_calls": 200},
         "small": {"finetune_batches": 2, "encode_texts": 96, "new_tokens": 8, "grpc_calls": 20}}


# ----------------------------------------------------------------------------------------------- workers

def _versions() -> dict:
    import grpc
    import numpy
    import tensorflow as tf
    import tf_keras
    import transformers
    from google import protobuf

    try:  # IsMklEnabled: whether this process runs oneDNN's ops (False under TF_ENABLE_ONEDNN_OPTS=0)
        from tensorflow.python.util import _pywrap_util_port
        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn = None
    return {"python": platform.python_version(), "glibc": "-".join(platform.libc_ver()),
            "tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "transformers": transformers.__version__,
            "numpy": numpy.__version__, "protobuf": protobuf.__version__, "grpcio": grpc.__version__,
            "onednn_build": onednn, "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def _train_texts(n: int, seed: int = 0):
    import numpy as np

    from tfxformers.models.data.classification import load_classification

    data = load_classification("rotten_tomatoes")
    pick = np.random.default_rng(seed).choice(len(data.train), size=n, replace=False)
    return [data.train.texts[i] for i in pick], data.train.labels[pick]


def worker_finetune(size: dict, work: Path) -> dict:
    import tensorflow as tf

    from tfxformers.models.encoders import bert
    from tfxformers.models.data.sources import minilm_dir
    from tfxformers.models.tokenization import encode_texts, make_dataset

    texts, labels = _train_texts(32 * size["finetune_batches"])
    tokenizer = bert.load_bert_tokenizer(minilm_dir())
    encoded = encode_texts(tokenizer, texts, 128)
    # No shuffling: the timed epoch sees exactly the batches (and bucket widths) the warm-up traced.
    dataset = make_dataset(encoded, labels, batch_size=32, shuffle=False)
    tf.keras.utils.set_random_seed(0)
    model = bert.build_bert_classifier(bert.load_bert_encoder(minilm_dir()), 2, num_train_steps=1000)
    model.fit(dataset, epochs=1, verbose=0)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(dataset, epochs=1, verbose=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    widths = sorted({int(x["input_ids"].shape[1]) for x, _ in dataset})
    return {"examples_per_second": len(texts) / seconds, "examples": len(texts), "seconds": seconds,
            "cpu_seconds": cpu, "bucket_widths": widths}


def worker_encode(size: dict, work: Path) -> dict:
    from tfxformers.models.encoders import bert
    from tfxformers.models.classification import transfer
    from tfxformers.models.data.sources import minilm_dir

    texts, _ = _train_texts(size["encode_texts"])
    encoder = bert.load_bert_encoder(minilm_dir())
    tokenizer = bert.load_bert_tokenizer(minilm_dir())
    transfer.encode_features(encoder, tokenizer, texts[:64], progress=False)
    start, cpu = time.perf_counter(), time.process_time()
    features = transfer.encode_features(encoder, tokenizer, texts, progress=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"texts_per_second": len(texts) / seconds, "texts": len(texts), "seconds": seconds, "cpu_seconds": cpu,
            "feature_shape": list(features.shape)}


def worker_generate(size: dict, work: Path) -> dict:
    from bench_gpt2_generation import model_and_prompt

    _, _, ids, compiled = model_and_prompt("mini")
    n = size["new_tokens"]
    for _ in range(2):  # trace, then one more: TF 2.21's second call was still slow in a trial run
        compiled(ids, n, 0, 1.0, 0, 1.0, 0)["output_ids"].numpy()
    rates, cpu = [], []
    for _ in range(5):
        start, cpu_start = time.perf_counter(), time.process_time()
        compiled(ids, n, 0, 1.0, 0, 1.0, 0)["output_ids"].numpy()
        rates.append(n / (time.perf_counter() - start))
        cpu.append(time.process_time() - cpu_start)
    return {"tokens_per_second": statistics.median(rates), "runs": rates, "cpu_seconds_per_call": cpu, "new_tokens": n,
            "prompt_tokens": int(ids.shape[1])}


def worker_grpc(size: dict, work: Path) -> dict:
    import grpc
    import tensorflow as tf
    from bench_serving import export_minilm_classifier, features_32
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tfxformers.models.encoders import bert
    from tfxformers.models.data.sources import minilm_dir
    from tfxformers.testing import start_model_server, stop_model_server

    base = work / "grpc"
    versions = sorted((base / "models" / "minilm").glob("[0-9]*")) if (base / "models" / "minilm").is_dir() else []
    if versions:  # exported by an earlier repeat on this stack
        version_dir, tokenizer = versions[-1], bert.load_bert_tokenizer(minilm_dir())
    else:
        version_dir, tokenizer = export_minilm_classifier(base)
    features = features_32(tokenizer)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "minilm"
    for key, value in features.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]

    def in_process():
        return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in features.items()}).items()}

    process, grpc_port, _ = start_model_server(base / "models", wait_for="minilm")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))

        def over_grpc():
            response = stub.Predict(request, timeout=60)
            return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

        for _ in range(20):
            over_grpc()
            in_process()
        remote, local = [], []
        # Alternating blocks of 10, so that noise from the rest of the machine hits both alike.
        for _ in range(max(1, size["grpc_calls"] // 10)):
            for fn, times in ((over_grpc, remote), (in_process, local)):
                for _ in range(10):
                    start = time.perf_counter()
                    fn()
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        stop_model_server(process)
        Path(process.log_path).unlink(missing_ok=True)
    remote.sort()
    return {"grpc_median_ms": statistics.median(remote), "grpc_p90_ms": remote[int(0.9 * (len(remote) - 1))],
            "in_process_median_ms": statistics.median(local), "calls": len(remote),
            "request": "batch 1, 32 tokens", "server_flags": "defaults (no batching)"}


WORKERS = {"finetune": worker_finetune, "encode": worker_encode, "generate": worker_generate, "grpc": worker_grpc}


def run_worker(kind: str, size_name: str, work: Path) -> int:
    import tfxformers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = {"kind": kind, **WORKERS[kind](SIZES[size_name], work)}
    result["worker_seconds"] = time.perf_counter() - started
    result["versions"] = _versions()
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ driver

def _clean_env(extra: dict) -> dict:
    """The environment root-run.sh gives the current side (env -i plus a few), for the legacy side too."""
    env = {"HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "TERM": os.environ.get("TERM", "dumb"),
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    if "TFXFORMERS_HOME" in os.environ:
        env["TFXFORMERS_HOME"] = os.environ["TFXFORMERS_HOME"]
    env.update(extra)
    return env


def _host_glibc_at_least(version: str) -> bool:
    return subprocess.run([str(ROOT / "stacks" / "glibc-at-least.sh"), version], capture_output=True).returncode == 0


def worker_command(stack: str, kind: str, size: str, work: Path, extra_env: dict) -> tuple[list[str], dict | None]:
    """The legacy side runs in .venv; the current side in .venv-current where the host's glibc runs TFX 1.21
    (as the Makefile does), else in the Debian 13 root."""
    args = [str(Path(__file__).resolve()), "--worker", kind, "--size", size, "--work", str(work / stack)]
    if stack == "legacy":
        return [str(LEGACY_PYTHON), *args], _clean_env(extra_env)
    if CURRENT_PYTHON.exists() and _host_glibc_at_least("2.39"):
        return [str(CURRENT_PYTHON), *args], _clean_env(extra_env)
    assignments = [f"{k}={v}" for k, v in extra_env.items()]
    return [str(ROOT / "stacks" / "root-run.sh"), "env", *assignments, "python", *args], None


def call_worker(stack: str, kind: str, size: str, work: Path, extra_env: dict, timeout: float) -> dict:
    command, env = worker_command(stack, kind, size, work, extra_env)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        result = json.loads(lines[-1])
        result["wall_seconds"] = wall
        return result
    if done.returncode == 0 and "skipped:" in done.stdout:
        return {"skipped": done.stdout.strip().splitlines()[-1]}
    return {"error": f"exit {done.returncode}: " + (done.stderr or done.stdout)[-1500:]}


def machine_facts() -> dict:
    facts = {"cpus": os.cpu_count(), "host_glibc": "-".join(platform.libc_ver())}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        facts["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags"))
        facts["simd"] = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
        facts["memory_gib"] = round(mem_kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return facts


def _cpu_seconds(result: dict) -> float | None:
    if "cpu_seconds_per_call" in result:
        return statistics.median(result["cpu_seconds_per_call"])
    return result.get("cpu_seconds")


def summarize(runs: list[dict], kinds) -> dict:
    summary = {}
    for kind in kinds:
        key, unit, higher_better = METRICS[kind]
        sides = {s: [r["result"][key] for r in runs if r["kind"] == kind and r["stack"] == s and key in r["result"]]
                 for s in ("legacy", "current")}
        entry = {"metric": key, "unit": unit, "higher_is_better": higher_better,
                 **{f"{s}_runs": [round(v, 3) for v in values] for s, values in sides.items()}}
        if sides["legacy"] and sides["current"]:
            legacy, current = statistics.median(sides["legacy"]), statistics.median(sides["current"])
            ratio = current / legacy
            worse = (1 - ratio) if higher_better else (ratio - 1)  # > 0: the current stack is worse by that share
            entry.update(legacy_median=round(legacy, 3), current_median=round(current, 3), ratio=round(ratio, 3),
                         regression_over_10_percent=worse > 0.10)
        cpu = {s: [_cpu_seconds(r["result"]) for r in runs if r["kind"] == kind and r["stack"] == s
                   and _cpu_seconds(r["result"]) is not None] for s in ("legacy", "current")}
        if cpu["legacy"] and cpu["current"]:
            # CPU seconds of the same work: legacy / current, so that like `ratio`, above 1 = current faster.
            entry.update({f"{s}_cpu_seconds": [round(v, 3) for v in values] for s, values in cpu.items()})
            entry["cpu_ratio"] = round(statistics.median(cpu["legacy"]) / statistics.median(cpu["current"]), 3)
        if kind == "grpc":
            for s in ("legacy", "current"):
                local = [r["result"]["in_process_median_ms"] for r in runs
                         if r["kind"] == kind and r["stack"] == s and "in_process_median_ms" in r["result"]]
                if local:
                    entry[f"{s}_in_process_median_ms"] = round(statistics.median(local), 3)
        summary[kind] = entry
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=tuple(SIZES), default="full", help=argparse.SUPPRESS)
    parser.add_argument("--small", action="store_true", help="tiny sizes, one repeat: checks the script works")
    parser.add_argument("--repeats", type=int, default=3, help="runs per kind and stack (median of these)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="set in both stacks' workers (for experiments, e.g. TF_ENABLE_ONEDNN_OPTS=0)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per worker before it is abandoned")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.size, Path(args.work))

    if not LEGACY_PYTHON.exists():
        print(f"skipped: no legacy venv at {LEGACY_PYTHON} (make setup STACK=legacy)")
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    extra_env = dict(item.split("=", 1) for item in args.env)
    size = "small" if args.small else "full"
    repeats = 1 if args.small else args.repeats
    output = Path(args.output) if args.output else RESULTS / ("stacks-small.json" if args.small else "stacks.json")
    # Inside the checkout so the Debian 13 root sees it at the same path (runs/ is not committed).
    work = ROOT / "runs" / f"bench-stacks-{os.getpid()}"
    report = {"command": " ".join(["flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_stacks.py",
                                   *(argv if argv is not None else sys.argv[1:])]).strip(),
              "machine": machine_facts(), "sizes": SIZES[size], "repeats": repeats, "extra_env": extra_env,
              "order": "for each repeat, for each kind: legacy then current", "runs": []}
    started = time.perf_counter()
    skipped = None
    try:
        for repeat in range(repeats):
            for kind in kinds:
                for stack in ("legacy", "current"):
                    if stack == "current" and skipped:
                        continue
                    result = call_worker(stack, kind, size, work, extra_env, args.timeout)
                    if "skipped" in result:
                        skipped = result["skipped"]
                        report["current_skipped"] = skipped
                        print(skipped, flush=True)
                        continue
                    report["runs"].append({"repeat": repeat, "kind": kind, "stack": stack, "result": result})
                    key = METRICS[kind][0]
                    shown = f"{result[key]:.2f} {METRICS[kind][1]}" if key in result else result.get("error", "?")
                    print(f"[{time.perf_counter() - started:5.0f} s] repeat {repeat + 1} {kind:8s} {stack:7s} {shown}",
                          flush=True)
                    report["summary"] = summarize(report["runs"], kinds)
                    report["wall_seconds"] = round(time.perf_counter() - started, 1)
                    output.parent.mkdir(parents=True, exist_ok=True)
                    output.write_text(json.dumps(report, indent=2) + "\n")  # kept up to date: a cut-short run still shows
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    for stack in ("legacy", "current"):
        versions = next((r["result"]["versions"] for r in report["runs"] if r["stack"] == stack and "versions" in r["result"]), None)
        if versions:
            report[f"{stack}_versions"] = versions
    report["summary"] = summarize(report["runs"], kinds)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(report))
    print(f"wrote {output}")
    errors = [r for r in report["runs"] if "error" in r["result"]]
    return 1 if errors else 0


def markdown_table(report: dict) -> str:
    lines = ["| metric | legacy median | current median | ratio current / legacy | CPU-time ratio | runs (legacy; current) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind, entry in report["summary"].items():
        if "ratio" not in entry:
            continue
        better = "higher is better" if entry["higher_is_better"] else "lower is better"
        lines.append(f"| {kind} ({entry['unit']}, {better}) | {entry['legacy_median']:.2f} | {entry['current_median']:.2f} | "
                     f"**{entry['ratio']:.2f}** | {entry.get('cpu_ratio', '-')} | {', '.join(f'{v:.1f}' for v in entry['legacy_runs'])}; "
                     f"{', '.join(f'{v:.1f}' for v in entry['current_runs'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
