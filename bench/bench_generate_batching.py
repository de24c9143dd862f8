"""Generate throughput under concurrency: N clients calling one GPT-2's ``generate`` on ``tfxformers serve``
with ``--enable-batching`` vs without.

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_generate_batching.py [--preset mini]
      [--clients 16] [--requests 3] [--new-tokens 32] [--repeats 3]
One randomly initialised GPT-2 of the preset (context 128) with a byte-level BPE of 8,000 tokens trained on
Emma (speed does not depend on the weights) is exported once; two servers load it, one with batching
(max_batch_size 16, batch_timeout_micros --timeout-micros, one batch thread, pad_variable_length_inputs
true) and one without. Every client sends ``--requests`` greedy calls of one prompt each (prompts of 6 to
40 tokens from the novel, different per client), one after the other, over gRPC; the servers are measured
alternately, ``--repeats`` times each. tokens/s = tokens generated (num_generated) / wall time of the whole
round. Before timing, every request's tokens are checked equal on both servers. Writes
bench/results/generate_batching.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import tfxformers  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"


def export_model(base: Path, preset: str) -> list[list[int]]:
    """Export a random GPT-2 as ``lm`` version 1 under ``base``; returns candidate prompts (token ids)."""
    import tensorflow as tf

    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.data.corpus import load_corpus
    from tfxformers.models.lm.gpt2 import build_lm, make_config
    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer
    from tfxformers.serving.export.trained import export_trained

    corpus = load_corpus("emma")
    tokenizer = train_bpe_tokenizer(corpus.train, base.parent / "tokenizer", vocab_size=8000, max_length=128)
    tf.keras.utils.set_random_seed(0)
    hf = build_lm(make_config(tokenizer, preset, 128), compile=False).hf_model
    info = {"kind": "gpt2", "max_length": 128, "preset": preset}
    export_trained(TrainedModel(base.parent, info, hf, tokenizer), "lm", base, version=1)
    sentences = [s.strip() for s in " ".join(corpus.validation).replace("\n", " ").split(".") if s.strip()]
    prompts = [tokenizer(s)["input_ids"] for s in sentences]
    return [p for p in prompts if 6 <= len(p) <= 40]


def request(ids: list[int], new_tokens: int):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tfxformers.models.lm.generate import as_arrays, request_inputs

    message = predict_pb2.PredictRequest()
    message.model_spec.name, message.model_spec.signature_name = "lm", "generate"
    for key, value in as_arrays(request_inputs([ids], 0, max_new_tokens=new_tokens)).items():
        message.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return message


def run_round(port: int, work: list[list], timeout: float = 600) -> tuple[float, int, list]:
    """Every client sends its requests one after another; returns (seconds, tokens generated, answers)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    answers = [[None] * len(requests) for requests in work]
    failures = []

    def client(c: int):
        try:
            for i, message in enumerate(work[c]):
                out = stub.Predict(message, timeout=timeout).outputs
                ids, count = tf.make_ndarray(out["output_ids"]), tf.make_ndarray(out["num_generated"])
                answers[c][i] = ids[0, 0, :count[0, 0]].tolist()
        except Exception as exc:  # reported after the round
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(len(work))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    channel.close()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return seconds, sum(len(a) for client_answers in answers for a in client_answers), answers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3, help="calls per client per round")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-micros", type=int, default=20000, help="batch_timeout_micros of the batching server")
    args = parser.parse_args(argv)

    from tfxformers.testing import start_model_server, stop_model_server

    with tempfile.TemporaryDirectory(prefix="bench-generate-batching-") as tmp:
        base = Path(tmp) / "models"
        prompts = export_model(base, args.preset)
        work = [[request(prompts[(c * args.requests + i) % len(prompts)], args.new_tokens)
                 for i in range(args.requests)] for c in range(args.clients)]
        params = Path(tmp) / "batching.txt"
        params.write_text(f"max_batch_size {{ value: {args.clients} }}\n"
                          f"batch_timeout_micros {{ value: {args.timeout_micros} }}\n"
                          "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 100 }\n"
                          "pad_variable_length_inputs: true\n")
        servers = {}
        try:
            servers["off"] = start_model_server(base, wait_for="lm")
            servers["on"] = start_model_server(base, wait_for="lm", enable_batching=True,
                                               batching_parameters_file=str(params))
            # Warm-up round on each, and the check that batching does not change a single token.
            checks = {mode: run_round(servers[mode][1], work)[2] for mode in ("off", "on")}
            same = checks["off"] == checks["on"]
            rates = {"off": [], "on": []}
            seconds = {"off": [], "on": []}
            for _ in range(args.repeats):
                for mode in ("off", "on"):
                    took, tokens, _ = run_round(servers[mode][1], work)
                    rates[mode].append(tokens / took)
                    seconds[mode].append(round(took, 2))
        finally:
            for process, _, _ in servers.values():
                stop_model_server(process)
    ratios = [on / off for on, off in zip(rates["on"], rates["off"])]
    report = {"preset": args.preset, "clients": args.clients, "requests_per_client": args.requests,
              "new_tokens": args.new_tokens, "batch_timeout_micros": args.timeout_micros, "repeats": args.repeats,
              "same_tokens_batched_and_not": same,
              "tokens_per_second_batching_off": [round(r, 1) for r in rates["off"]],
              "tokens_per_second_batching_on": [round(r, 1) for r in rates["on"]],
              "round_seconds": seconds,
              "median_tokens_per_second": {m: round(statistics.median(r), 1) for m, r in rates.items()},
              "median_ratio_on_to_off": round(statistics.median(ratios), 2), "goal_ratio": 2.0,
              "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_generate_batching.py "
                         + " ".join(argv if argv is not None else sys.argv[1:])}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generate_batching.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
