"""Peak memory of `tfxformers serve` under 16 concurrent worst-case requests at its default limits (issue 23).

Run (pausing the long SQuAD run, never killing it; at most a few minutes):
  pkill -STOP -f bench_squad.py; trap 'pkill -CONT -f bench_squad.py' EXIT
  .venv/bin/python bench/bench_server_load.py [--clients 16] [--compare-unbounded]

One server (a subprocess at the defaults of `tfxformers serve --help`, so also the default
--in-flight-tokens derived from this host's memory) serves all-MiniLM-L6-v2 with an untrained 2-label
head, exported as bench_server_limits.py does (512 maximum positions). The worst-case request the default
limits allow is 32 rows x 512 tokens (--max-tokens over --max-sequence-length: the most attention memory).

1. one worst-case request alone (REST), twice: the server's peak RSS (VmHWM, reset through
   /proc/PID/clear_refs before the request) is the reference;
2. `--clients` worst-case requests at once, half over REST and half over gRPC: every answer's status, and
   the server's peak RSS over the whole round. Goal: peak within the reference + 25%, every request
   answered 200 or 429 (RESOURCE_EXHAUSTED), none failed otherwise or dropped.
`--compare-unbounded` repeats step 2 on a second server whose budget takes every client at once (what
the server did before the budget): it takes several GiB, so only on an otherwise idle host.
Needs `tfxformers data fetch minilm`. Writes bench/results/server_load.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import tfxformers  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_server_limits import classify_body, export_minilm_classifier, peak_kib, reset_peak  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def post(port: int, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/minilm:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            answer.read()
            return answer.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300].decode()


def grpc_predict(port: int, rows: int, length: int) -> tuple[int, str]:
    """(HTTP-equivalent status, message) of one gRPC Predict."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    ids = np.full((rows, length), 2023, np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "minilm"
    request.inputs["input_ids"].CopyFrom(tf.make_tensor_proto(ids))
    request.inputs["attention_mask"].CopyFrom(tf.make_tensor_proto(np.ones_like(ids)))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    try:
        stub.Predict(request, timeout=600)
        return 200, ""
    except grpc.RpcError as exc:
        return {grpc.StatusCode.RESOURCE_EXHAUSTED: 429}.get(exc.code(), 500), f"{exc.code().name}: {exc.details()}"


def concurrent_round(process, clients: int, rows: int, length: int) -> dict:
    body = classify_body(rows, length)
    statuses, messages = [None] * clients, [""] * clients
    barrier = threading.Barrier(clients)

    def client(i):
        barrier.wait()
        if i % 2 == 0:
            statuses[i], messages[i] = post(process.rest_port, body)
        else:
            statuses[i], messages[i] = grpc_predict(process.grpc_port, rows, length)

    reset_peak(process.pid)
    before = peak_kib(process.pid)[1] / 1024
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    seconds = time.perf_counter() - started
    peak = peak_kib(process.pid)[0] / 1024
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)}
    other = sorted({m for s, m in zip(statuses, messages) if s not in (200, 429)})
    refusal = next((m for s, m in zip(statuses, messages) if s == 429), "")
    print(f"{clients} clients: statuses {counts}, RSS before {before:.0f} MiB, peak {peak:.0f} MiB, {seconds:.1f} s",
          flush=True)
    return {"clients": clients, "statuses": counts, "rss_before_mib": before, "peak_rss_mib": peak,
            "seconds": seconds, "a_429_message": refusal[:300], "other_failures": other}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--compare-unbounded", action="store_true")
    args = parser.parse_args(argv)

    from tfxformers.serving.server.admission import default_tokens_in_flight, host_memory_bytes
    from tfxformers.serving.server.limits import ServerLimits
    from tfxformers.testing import start_model_server, stop_model_server

    limits = ServerLimits()
    length = limits.max_sequence_length
    rows = limits.max_tokens // length
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        base = work / "models"
        export_minilm_classifier(base)
        process, _, _ = start_model_server(base, file_system_poll_wait_seconds=0, log_level="WARNING")
        try:
            idle = peak_kib(process.pid)[1] / 1024
            single = []
            for _ in range(2):
                reset_peak(process.pid)
                started = time.perf_counter()
                status, text = post(process.rest_port, classify_body(rows, length))
                assert status == 200, text
                single.append({"peak_rss_mib": peak_kib(process.pid)[0] / 1024,
                               "seconds": time.perf_counter() - started})
            reference = max(s["peak_rss_mib"] for s in single)
            print(f"idle {idle:.0f} MiB; one {rows} x {length} request alone: peak {reference:.0f} MiB", flush=True)
            loaded = concurrent_round(process, args.clients, rows, length)
        finally:
            stop_model_server(process)
        unbounded = None
        if args.compare_unbounded:
            process, _, _ = start_model_server(base, file_system_poll_wait_seconds=0, log_level="WARNING",
                                               in_flight_tokens=limits.max_tokens * args.clients)
            try:
                unbounded = concurrent_round(process, args.clients, rows, length)
            finally:
                stop_model_server(process)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    answered = sum(loaded["statuses"].get(str(s), 0) for s in (200, 429))
    summary = {
        "request": f"minilm {rows} rows x {length} tokens (the default limits' worst case)",
        "host_memory_gib": host_memory_bytes() / 1024**3,
        "in_flight_tokens_default": default_tokens_in_flight(limits.max_tokens),
        "idle_rss_mib": idle, "one_request": single, "reference_peak_rss_mib": reference,
        "concurrent": loaded, "peak_over_reference": loaded["peak_rss_mib"] / reference,
        "goal": "peak within reference x 1.25; every request 200 or 429",
        "goal_met": loaded["peak_rss_mib"] <= 1.25 * reference and answered == args.clients,
        "unbounded": unbounded,
        "command": "pkill -STOP -f bench_squad.py; trap 'pkill -CONT -f bench_squad.py' EXIT; "
                   ".venv/bin/python bench/bench_server_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_load.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"peak {loaded['peak_rss_mib']:.0f} MiB = {summary['peak_over_reference']:.2f} x one request; "
          f"{answered} of {args.clients} answered 200 or 429; goal met: {summary['goal_met']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
