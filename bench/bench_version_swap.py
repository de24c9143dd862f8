"""Version swaps under load: failed requests, answers per version and latency during vs outside a swap (issue 23).

Run (a few minutes at most; on a shared machine say so beside the figures):
  nice -n 10 .venv/bin/python bench/bench_version_swap.py [--swaps 3] [--clients 8] [--encoder minilm|tiny]

One `tfxformers serve` subprocess (``--file-system-poll-wait-seconds 0.5``) serves a classifier
(``minilm``: all-MiniLM-L6-v2 with an untrained 2-label head, as bench_server_limits.py exports it, needs
`tfxformers data fetch minilm`; ``tiny``: a random 2-layer BERT, nothing to fetch), with one proxy per
backend kind (gRPC, REST) in front. ``--clients`` threads send requests without pause, in turn over gRPC,
REST, the gRPC proxy and the REST proxy (a 2-text request, 16 tokens). After a quiet stretch, ``--swaps``
new versions are pushed the way the pipeline's Pusher does (copied under a hidden name, renamed into
place), each once the previous swap is over (the new version AVAILABLE and the old one END in the REST
status) plus ``--gap`` seconds. A request counts as "during a swap" when it was sent between a push and
half a second after that swap was over. Writes bench/results/version_swap.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from http.client import HTTPConnection
from pathlib import Path

import tfxformers  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TEXTS = ["a charming, funny and moving film", "dull, far too long and the plot was a mess"]
KINDS = ("grpc", "rest", "proxy-grpc", "proxy-rest")


def export_classifier(encoder: str, base: Path, work: Path) -> dict:
    """``base/clf/1``: a classifier export over MiniLM or a tiny random BERT (the head is untrained); returns
    the direct clients' features (TEXTS tokenized to 16 tokens)."""
    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.encoders import bert
    from tfxformers.serving.export.trained import export_trained

    if encoder == "minilm":
        from tfxformers.models.data.sources import minilm_dir

        checkpoint = minilm_dir()
    else:
        from tfxformers.testing import make_tiny_bert_checkpoint

        checkpoint = make_tiny_bert_checkpoint(work / "tiny_bert")
    model_encoder = bert.load_bert_encoder(checkpoint)
    model = bert.build_bert_classifier(model_encoder, 2, mode="frozen", compile=False)
    info = {"kind": "classifier", "format_version": 1, "max_length": 128, "buckets": [16, 32, 64, 128],
            "label_names": ["rotten", "fresh"], "input_names": ["input_ids", "attention_mask"],
            "encoder_config": model_encoder.config.to_dict()}
    trained = TrainedModel(directory=work, info=info, keras_model=model, tokenizer=bert.load_bert_tokenizer(checkpoint),
                           label_names=["rotten", "fresh"])
    export_trained(trained, "clf", base)
    from tfxformers.models.tokenization import tokenize_batch

    return {k: v.tolist() for k, v in tokenize_batch(trained.tokenizer, TEXTS, 16).items()}


def push(model_dir: Path, source: Path, version: int) -> None:
    """The Pusher's way (pipeline/components.py): a hidden copy beside the versions, renamed into place."""
    staging = model_dir / f".push-{uuid.uuid4().hex[:12]}"
    shutil.copytree(source, staging)
    os.rename(staging, model_dir / str(version))


def status(rest_port: int) -> dict[int, str]:
    connection = HTTPConnection("127.0.0.1", rest_port, timeout=10)
    connection.request("GET", "/v1/models/clf")
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return {int(s["version"]): s["state"] for s in answer["model_version_status"]}


class Client(threading.Thread):
    """Sends one kind of request without pause; records (kind, sent, seconds, version or None, error)."""

    def __init__(self, kind: str, ports: dict, proxies: dict, features: dict, records: list, stop: threading.Event):
        super().__init__(daemon=True)
        self.kind, self.ports, self.proxies, self.features = kind, ports, proxies, features
        self.records, self.stop = records, stop

    def run(self) -> None:
        send = self._setup()
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                version, error = send(), None
            except Exception as exc:  # noqa: BLE001  (counted, with its message)
                version, error = None, repr(exc)[:300]
            self.records.append((self.kind, sent, time.monotonic() - sent, version, error))

    def _setup(self):
        if self.kind == "grpc":
            import grpc
            import numpy as np
            import tensorflow as tf
            from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

            request = predict_pb2.PredictRequest()
            request.model_spec.name = "clf"
            for key, value in self.features.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value, np.int32)))
            stub = prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(f"127.0.0.1:{self.ports['grpc']}"))
            return lambda: stub.Predict(request, timeout=60).model_spec.version.value
        if self.kind == "rest":
            body = json.dumps({"inputs": self.features})
            state = {"connection": None}

            def rest():
                if state["connection"] is None:
                    state["connection"] = HTTPConnection("127.0.0.1", self.ports["rest"], timeout=60)
                state["connection"].request("POST", "/v1/models/clf:predict", body=body,
                                            headers={"Content-Type": "application/json"})
                answer = state["connection"].getresponse()
                text = answer.read()
                if answer.getheader("Connection", "").lower() == "close":
                    state["connection"].close()
                    state["connection"] = None
                if answer.status != 200:
                    raise RuntimeError(f"REST {answer.status}: {text[:200]!r}")
                return int(answer.getheader("X-Model-Version"))
            return rest
        import httpx

        client = httpx.Client(base_url=self.proxies[self.kind.split("-")[1]], timeout=60)

        def proxy():
            response = client.post("/v1/models/clf:classify", json={"texts": TEXTS})
            if response.status_code != 200:
                raise RuntimeError(f"proxy {response.status_code}: {response.text[:200]}")
            return response.json()["version"]
        return proxy


def percentiles(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {"requests": 0}
    ms = np.asarray(values) * 1000
    return {"requests": len(values), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--encoder", choices=["minilm", "tiny"], default="minilm")
    parser.add_argument("--quiet-seconds", type=float, default=5.0, help="load before the first push")
    parser.add_argument("--gap", type=float, default=5.0, help="seconds between a swap's end and the next push")
    parser.add_argument("--output", type=Path, default=RESULTS / "version_swap.json")
    args = parser.parse_args(argv)

    from tfxformers.testing import start_model_server, start_proxy, stop_process

    work = Path(tempfile.mkdtemp(prefix="bench-version-swap-"))
    server, proxies, processes = None, {}, []
    records, stop, swaps = [], threading.Event(), []
    try:
        base = work / "models"
        features = export_classifier(args.encoder, base, work)
        source = work / "version"
        shutil.copytree(base / "clf" / "1", source)
        server, grpc_port, rest_port = start_model_server(base, file_system_poll_wait_seconds=0.5)
        for kind, backend in (("grpc", f"grpc://127.0.0.1:{grpc_port}"), ("rest", f"http://127.0.0.1:{rest_port}")):
            process, url = start_proxy(backend, models="clf", extra_args=["--status-refresh", "0.2", "--timeout", "30"])
            processes.append(process)
            proxies[kind] = url
        ports = {"grpc": grpc_port, "rest": rest_port}
        clients = [Client(KINDS[i % len(KINDS)], ports, proxies, features, records, stop) for i in range(args.clients)]
        for client in clients:
            client.start()
        started = time.monotonic()
        time.sleep(args.quiet_seconds)
        for i in range(args.swaps):
            old, new = i + 1, i + 2
            pushed = time.monotonic()
            push(base / "clf", source, new)
            while not ((s := status(rest_port)).get(new) == "AVAILABLE" and s.get(old) == "END"):
                time.sleep(0.05)
            swaps.append({"from": old, "to": new, "pushed": pushed, "over": time.monotonic()})
            print(f"swap {old} -> {new}: {swaps[-1]['over'] - pushed:.2f} s", flush=True)
            time.sleep(args.gap)
        stop.set()
        for client in clients:
            client.join(60)
        ended = time.monotonic()
    finally:
        stop.set()
        for process in processes:
            stop_process(process)
        if server is not None:
            stop_process(server)
        shutil.rmtree(work, ignore_errors=True)

    def in_swap(sent):
        return any(s["pushed"] <= sent <= s["over"] + 0.5 for s in swaps)

    ok = [r for r in records if r[4] is None]
    failures = [r for r in records if r[4] is not None]
    result = {
        "what": f"{args.swaps} version swaps under {args.clients} clients without pause ({', '.join(KINDS)} in "
                f"turn); classifier over {args.encoder}, 2 texts / 2 x 16 tokens per request",
        "host": {"cores": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                 "note": "shared machine: a long training benchmark (bench_squad.py) kept running; this ran at "
                         "nice 10"},
        "seconds": round(ended - started, 1),
        "requests": len(records),
        "failed": len(failures),
        "failures_first": [f"{r[0]}: {r[4]}" for r in failures[:5]],
        "answers_per_version": {str(v): sum(1 for r in ok if r[3] == v) for v in sorted({r[3] for r in ok})},
        "answers_per_kind_and_version": {k: {str(v): sum(1 for r in ok if r[0] == k and r[3] == v)
                                             for v in sorted({r[3] for r in ok if r[0] == k})} for k in KINDS},
        "swap_seconds": [round(s["over"] - s["pushed"], 2) for s in swaps],
        "latency_during_swaps": percentiles([r[2] for r in ok if in_swap(r[1])]),
        "latency_outside_swaps": percentiles([r[2] for r in ok if not in_swap(r[1])]),
        "latency_per_kind": {k: {"during": percentiles([r[2] for r in ok if r[0] == k and in_swap(r[1])]),
                                 "outside": percentiles([r[2] for r in ok if r[0] == k and not in_swap(r[1])])}
                             for k in KINDS},
        "command": "nice -n 10 .venv/bin/python bench/bench_version_swap.py " + " ".join(argv or sys.argv[1:]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("requests", "failed", "answers_per_version", "swap_seconds",
                                             "latency_during_swaps", "latency_outside_swaps")}, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
