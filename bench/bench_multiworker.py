"""What two workers on one machine cost: the tiny-BERT classifier trained with one process (``--distribute
none``) and with two worker processes on 127.0.0.1 (``--distribute multi-worker``), same data, global batch
and seed, timed in one run.

    flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_multiworker.py [--repeats 3]

Reported per setting: the median training time the run records (``metrics.json``'s ``train_seconds``, the
chief's for two workers) and the median wall time of the whole command (process start-up, cluster set-up,
evaluation and saving included), with the ratio one worker / two workers (above 1: two workers are faster).
On one machine both workers share its cores and add an all-reduce per step, so the ratio says what the
mechanics cost, not what two machines would gain. Results: bench/results/multiworker.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tfxformers.testing import free_port, write_two_class_reviews

RESULTS = Path(__file__).resolve().parent / "results" / "multiworker.json"


def _data(path: Path, train: int) -> Path:
    return write_two_class_reviews(path, {"train": train, "validation": 64, "test": 64}, length=(4, 20))


def _run(args: list[str], workers: int, log_dir: Path) -> float:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cluster = [f"127.0.0.1:{free_port()}" for _ in range(workers)]
    started = time.perf_counter()
    processes = []
    for index in range(workers):
        worker_env = dict(env)
        if workers > 1:
            worker_env["TF_CONFIG"] = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        log = open(log_dir / f"w{workers}-{index}-{time.monotonic_ns()}.log", "w")
        processes.append((subprocess.Popen([sys.executable, "-m", "tfxformers"] + args
                                           + ["--distribute", "multi-worker" if workers > 1 else "none"],
                                           stdout=log, stderr=subprocess.STDOUT, env=worker_env), log))
    for process, log in processes:
        process.wait()
        log.close()
        if process.returncode:
            raise SystemExit(f"a worker failed; see {log.name}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", type=int, default=1024, help="training examples")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import tfxformers  # noqa: F401
    from tfxformers.testing import make_tiny_bert_checkpoint

    work = Path(tempfile.mkdtemp(prefix="bench-multiworker-"))
    encoder = make_tiny_bert_checkpoint(work / "tiny_bert", hidden_size=64, num_hidden_layers=2, intermediate_size=128)
    data = _data(work / "reviews.csv", args.train)
    results: dict[str, dict[str, list[float]]] = {"1 worker": {"wall": [], "train": []},
                                                  "2 workers": {"wall": [], "train": []}}
    for repeat in range(args.repeats):
        for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
            name = "1 worker" if workers == 1 else "2 workers"
            out = work / f"run-{workers}-{repeat}"
            command = ["train", "classifier", "--data", str(data), "--encoder", str(encoder), "--mode", "finetune",
                       "--output", str(out), "--epochs", str(args.epochs), "--batch-size", "32", "--max-length", "32",
                       "--checkpoint-every-steps", "0", "--seed", "1"]
            env_dir = work / "scratch"
            os.environ["TFXFORMERS_WORKER_DIR"] = str(env_dir)
            wall = _run(command, workers, work)
            train = json.loads((out / "metrics.json").read_text())["train_seconds"]
            results[name]["wall"].append(wall)
            results[name]["train"].append(train)
            print(f"repeat {repeat + 1}, {name}: training {train:.1f} s, command {wall:.1f} s", flush=True)
    medians = {name: {k: statistics.median(v) for k, v in parts.items()} for name, parts in results.items()}
    ratio = {k: medians["1 worker"][k] / medians["2 workers"][k] for k in ("wall", "train")}
    summary = {"runs": results, "median_seconds": medians, "ratio_1_over_2_workers": ratio, "cpus": os.cpu_count(),
               "train_examples": args.train, "epochs": args.epochs,
               "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_multiworker.py "
                          + " ".join(sys.argv[1:])}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    for name, m in medians.items():
        print(f"{name:>10}: training {m['train']:.1f} s, command {m['wall']:.1f} s (medians of {args.repeats})")
    print(f"1 worker / 2 workers: training {ratio['train']:.2f}x, command {ratio['wall']:.2f}x; {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
