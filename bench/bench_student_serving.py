"""Serving throughput of the distilled students against MiniLM-L6 and their MPNet teacher, side by side
through one `tfxformers serve`.

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_student_serving.py [--rounds 3]
      (after bench/bench_encoders.py has trained mpnet-finetune-1, student-6 and student-3)
Writes bench/results/student_serving.json.

Each run of runs/bench-encoders/ is exported (`tfxformers export`'s library call) into one temporary model
base and served by a single `tfxformers serve` subprocess on 127.0.0.1 (no request batching: every request
already holds 32 texts). The 1,282 Rotten Tomatoes test snippets are tokenized once per model with the
export's own tokenizer and length rules (the proxy's `TextEncoder`: the same ids, windows and bucket
padding the proxy would send) and sent as REST `:predict` requests of 32 texts, one after another. In each
round every model sends the whole test split once, in an order that rotates between rounds; throughput is
texts per second of that pass. Reported: the median over rounds of each model's throughput and of the
per-round ratios to the 6-layer model (MiniLM's serving cost: the 6-layer student is MiniLM-L6 with other
weights). The served answers are also checked against each run's test accuracy (same labels), so what is
timed is the model that was scored.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tfxformers  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "bench-encoders"
RESULTS = ROOT / "bench" / "results"
MODELS = {"student-6": "student6", "student-3": "student3", "mpnet-finetune-1": "mpnet"}
BATCH = 32


def encoded_batches(version_dir: Path, texts: list[str]) -> list[bytes]:
    """REST bodies of 32 texts each, as the proxy would build them from this export's tokenizer."""
    from tfxformers.serving import layout
    from tfxformers.serving.proxy.text import TextEncoder

    extra = version_dir / layout.ASSETS_EXTRA
    metadata = json.loads((extra / layout.VERSION_INFO_FILE).read_text())
    encoder = TextEncoder((extra / layout.TOKENIZER_DIR / "tokenizer.json").read_text(), metadata)
    bodies = []
    for start in range(0, len(texts), BATCH):
        windows = encoder.windows(texts[start:start + BATCH], overlap=32, max_windows=8)
        if len(windows) != len(texts[start:start + BATCH]):
            raise SystemExit("a test text needed more than one window; the timing would not be per text")
        width = max(len(w.ids) for w in windows)
        ids = [w.ids + [encoder.pad_id] * (width - len(w.ids)) for w in windows]
        mask = [[1] * len(w.ids) + [0] * (width - len(w.ids)) for w in windows]
        bodies.append(json.dumps({"inputs": {"input_ids": ids, "attention_mask": mask}}).encode())
    return bodies


def one_pass(port: int, name: str, bodies: list[bytes]) -> tuple[float, list[int]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    predictions = []
    start = time.perf_counter()
    for body in bodies:
        connection.request("POST", f"/v1/models/{name}:predict", body=body, headers={"content-type": "application/json"})
        answer = connection.getresponse()
        payload = json.loads(answer.read())
        if answer.status != 200:
            raise SystemExit(f"{name}: HTTP {answer.status}: {payload}")
        outputs = payload["outputs"]
        probabilities = outputs["probabilities"] if isinstance(outputs, dict) else outputs
        predictions.extend(int(np.argmax(p)) for p in probabilities)
    seconds = time.perf_counter() - start
    connection.close()
    return seconds, predictions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs-dir", default=str(RUNS))
    args = parser.parse_args(argv)

    from tfxformers.models.data.classification import load_classification
    from tfxformers.serving.export.trained import export_model
    from tfxformers.testing import start_model_server, stop_model_server

    runs = {run: Path(args.runs_dir) / run for run in MODELS if (Path(args.runs_dir) / run / "tfxformers.json").is_file()}
    if "student-6" not in runs:
        raise SystemExit("error: runs/bench-encoders/student-6 is not trained yet (bench/bench_encoders.py)")
    test = load_classification("rotten_tomatoes").test
    report = {"texts": len(test.texts), "batch": BATCH, "rounds": args.rounds, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "models"
        bodies = {}
        for run, path in runs.items():
            version = export_model(path, MODELS[run], base)
            bodies[run] = encoded_batches(version, test.texts)
            print(f"exported {run} -> {version}", flush=True)
        server, _, rest_port = start_model_server(base)
        try:
            rates = {run: [] for run in runs}
            ratios = {run: [] for run in runs}
            order = list(runs)
            for round_ in range(args.rounds):
                this_round = {}
                for run in order[round_ % len(order):] + order[:round_ % len(order)]:
                    seconds, predictions = one_pass(rest_port, MODELS[run], bodies[run])
                    this_round[run] = len(test.texts) / seconds
                    accuracy = float(np.mean(np.array(predictions) == np.array(test.labels)))
                    report["models"].setdefault(run, {})["served_test_accuracy"] = round(accuracy, 4)
                    print(f"round {round_ + 1}: {run} {this_round[run]:.1f} texts/s (accuracy {accuracy:.4f})", flush=True)
                for run in runs:
                    rates[run].append(this_round[run])
                    ratios[run].append(this_round[run] / this_round["student-6"])
        finally:
            stop_model_server(server)
    for run in runs:
        report["models"][run].update(texts_per_second=round(statistics.median(rates[run]), 1),
                                     per_round=[round(r, 1) for r in rates[run]],
                                     ratio_to_6_layers=round(statistics.median(ratios[run]), 2))
    report["command"] = "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_student_serving.py " + " ".join(argv or sys.argv[1:])
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "student_serving.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["models"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
