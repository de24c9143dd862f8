"""Question-answering latency through the proxy: windows in ONE Predict call vs one call per window.

    flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_qa.py [--encoder tiny|minilm] [--runs 5]

Exports a question-answering model (``tiny``: a random 2-layer BERT, hidden 64, in BertForQuestionAnswering
layout; ``minilm``: MiniLM with a random span head, the real model's cost), starts one real
``tfxformers serve`` and two real ``tfxformers proxy`` processes on 127.0.0.1 (one with the default
``--answer-batch-windows 0``: every window of a context in one Predict call; one with ``1``: a Predict call
per window, sent concurrently), and times ``POST /v1/models/qa:answer`` for contexts of about 300, 2,000 and
20,000 tokens (the course's passages over and over). Reports the median of ``--runs`` requests after one
warm-up each, and the ratio per-window / batched. Results: ``bench/results/qa_ENCODER.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "qa_course.json"
QUESTION = "When is the cake done?"


def contexts(tokenizer, sizes) -> dict[int, str]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    passages = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    out = {}
    for size in sizes:
        pieces, tokens, i = [], 0, 0
        while tokens < size:
            pieces.append(passages[i % len(passages)])
            tokens += len(tokenizer.encode(pieces[-1], add_special_tokens=False).ids) + 1
            i += 1
        out[size] = "\n\n".join(pieces)
    return out


def build_model(encoder: str, work: Path) -> Path:
    from tfxformers.models.qa import tiny

    if encoder == "tiny":
        return tiny.make_tiny_qa_checkpoint(work / "checkpoint", hidden_size=64, num_attention_heads=4,
                                            intermediate_size=128, max_position_embeddings=512)
    from tfxformers.models import artifacts, encoders
    from tfxformers.models.qa import model

    source = encoders.resolve_checkpoint("minilm")
    built, _ = model.load_qa_checkpoint(source)
    return artifacts.save_qa(work / "minilm_qa", built, encoders.load_tokenizer(source), max_seq_len=384,
                             doc_stride=128, input_names=list(built.input_names))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="300,2000,20000")
    parser.add_argument("--chunks", default="",
                        help="also run proxies with --answer-batch-windows N for each N given (comma-separated)")
    parser.add_argument("--output", default=None, help="default: bench/results/qa_ENCODER.json")
    args = parser.parse_args(argv)
    args.output = args.output or str(ROOT / "bench" / "results" / f"qa_{args.encoder}{'_chunks' if args.chunks else ''}.json")

    import httpx
    from tokenizers import Tokenizer

    from tfxformers.cli import main as cli
    from tfxformers.models.qa import features
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-qa-") as tmp:
        work = Path(tmp)
        source = build_model(args.encoder, work)
        base = work / "models"
        assert cli(["export", "--model", str(source), "--name", "qa", "--model-base", str(base)]) == 0
        info = json.loads((base / "qa" / "1" / "assets.extra" / "tfxformers.json").read_text())
        fast = features.fast_tokenizer(Tokenizer.from_file(str(base / "qa" / "1" / "assets.extra" / "tokenizer" /
                                                               "tokenizer.json")))
        texts = contexts(fast, sizes)
        server, grpc_port, _ = start_model_server(base, max_rows=1024, max_tokens=1_000_000,
                                                  max_request_bytes=64 * 1024 * 1024)
        proxies = {}
        try:
            extra = [(f"chunks_of_{n}", n) for n in (int(c) for c in args.chunks.split(",") if c)]
            for mode, per_call in (("batched", 0), ("per_window", 1), *extra):
                proxies[mode] = start_proxy(f"grpc://127.0.0.1:{grpc_port}", log_path=work / f"proxy-{mode}.log",
                                            extra_args=["--answer-batch-windows", str(per_call), "--answer-timeout",
                                                        "600", "--max-answer-windows", "1000"])
            results = []
            for size in sizes:
                row = {"target_tokens": size}
                times = {mode: [] for mode in proxies}
                bodies = {}
                # The two modes alternate request by request, so a change in the machine's load hits both.
                for run in range(args.runs + 1):
                    for mode, (_, url) in proxies.items():
                        started = time.perf_counter()
                        answer = httpx.post(f"{url}/v1/models/qa:answer", timeout=600,
                                            json={"question": QUESTION, "context": texts[size], "top_k": 3})
                        elapsed = time.perf_counter() - started
                        answer.raise_for_status()
                        bodies[mode] = answer.json()
                        if run:  # the first request of each size and mode is the warm-up
                            times[mode].append(elapsed)
                for mode, body in bodies.items():
                    row.update(context_tokens=body["context_tokens"], windows=body["windows"])
                    row[mode] = {"median_s": statistics.median(times[mode]), "runs_s": times[mode],
                                 "predict_calls": body["predict_calls"]}
                assert bodies["batched"]["answers"] == bodies["per_window"]["answers"] or all(
                    (a["answer"], a["start"]) == (b["answer"], b["start"])
                    for a, b in zip(bodies["batched"]["answers"], bodies["per_window"]["answers"]))
                row["ratio_per_window_over_batched"] = row["per_window"]["median_s"] / row["batched"]["median_s"]
                results.append(row)
                for mode, _ in extra:
                    print(f"{'':>24}{mode}: {row[mode]['median_s'] * 1000:8.1f} ms ({row[mode]['predict_calls']} calls)")
                print(f"{row['context_tokens']:>6} tokens {row['windows']:>4} windows: batched "
                      f"{row['batched']['median_s'] * 1000:8.1f} ms (1 call), per window "
                      f"{row['per_window']['median_s'] * 1000:8.1f} ms ({row['per_window']['predict_calls']} calls), "
                      f"ratio {row['ratio_per_window_over_batched']:.2f}", flush=True)
        finally:
            for process, _ in proxies.values():
                stop_process(process)
            stop_model_server(server)
    out = {"encoder": args.encoder, "load_average_1min_at_end": os.getloadavg()[0], "max_seq_len": info["max_length"], "doc_stride": info["doc_stride"],
           "runs": args.runs, "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_qa.py "
           + " ".join(argv if argv is not None else sys.argv[1:]), "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"results in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
