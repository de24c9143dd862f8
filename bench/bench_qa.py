"""Question-answering latency through the proxy: the default call plan vs one call per window vs one big call.

    .venv/bin/python bench/bench_qa.py [--encoder tiny|minilm] [--runs 3] [--chunks 4,16]

(pause the long SQuAD run around it, see docs/benchmarks.md). Exports a question-answering model (``tiny``:
a random 2-layer BERT, hidden 64, in BertForQuestionAnswering layout; ``minilm``: MiniLM with a random span
head, the real model's cost), starts one real ``tfxformers serve`` (limits raised so every mode fits) and
real ``tfxformers proxy`` processes on 127.0.0.1:

* ``default``: the proxy's defaults (the export's ``preferred_windows_per_call``, ``tfxformers serve``'s
  default limits, ``--answer-concurrency 2``);
* ``per_window``: ``--answer-batch-windows 1``, one Predict call per window (2 in flight);
* ``all_in_one``: ``--answer-batch-windows 0`` with limits as large as the server's: every window of one
  padded length in one call;
* ``chunks_of_N`` for each ``--chunks`` N, ``concurrency_N`` (the default plan, N calls in flight) for each
  ``--concurrency`` N;

and times ``POST /v1/models/qa:answer`` for contexts of about 2,000 and 20,000 tokens (the course's
passages over and over), the modes alternating request by request. Reports the median of ``--runs``
requests after one warm-up each, as seconds per 1,000 context tokens. Results: ``bench/results/qa_ENCODER.json``.
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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--chunks", default="",
                        help="also run proxies with --answer-batch-windows N for each N given (comma-separated)")
    parser.add_argument("--concurrency", default="",
                        help="also run default proxies with --answer-concurrency N for each N given (comma-separated)")
    parser.add_argument("--modes", default="default,per_window,all_in_one", help="which of the three standard modes")
    parser.add_argument("--output", default=None, help="default: bench/results/qa_ENCODER.json")
    args = parser.parse_args(argv)
    args.output = args.output or str(ROOT / "bench" / "results" / f"qa_{args.encoder}{'_chunks' if args.chunks else '_concurrency' if args.concurrency else ''}.json")

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
        big = ["--backend-max-rows", "1024", "--backend-max-tokens", "1000000"]
        standard = {"default": [], "per_window": ["--answer-batch-windows", "1"],
                    "all_in_one": ["--answer-batch-windows", "0", *big]}
        modes = {m: standard[m] for m in args.modes.split(",") if m}
        modes.update({f"chunks_of_{n}": ["--answer-batch-windows", n, *big] for n in args.chunks.split(",") if n})
        modes.update({f"concurrency_{n}": ["--answer-concurrency", n] for n in args.concurrency.split(",") if n})
        try:
            for mode, flags in modes.items():
                proxies[mode] = start_proxy(f"grpc://127.0.0.1:{grpc_port}", log_path=work / f"proxy-{mode}.log",
                                            extra_args=[*flags, "--answer-timeout", "600", "--max-answer-windows", "1000"])
            results = []
            for size in sizes:
                row = {"target_tokens": size}
                times = {mode: [] for mode in proxies}
                bodies = {}
                # The modes alternate request by request, so a change in the machine's load hits them all.
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
                first = next(iter(bodies.values()))
                row.update(context_tokens=first["context_tokens"], windows=first["windows"])
                for mode, body in bodies.items():
                    median = statistics.median(times[mode])
                    row[mode] = {"median_s": median, "s_per_1000_tokens": 1000 * median / body["context_tokens"],
                                 "runs_s": times[mode], "predict_calls": body["predict_calls"]}
                    # Same spans in every mode (scores differ only by float noise of different batch shapes).
                    assert [(a["answer"], a["start"]) for a in body["answers"]] == \
                        [(a["answer"], a["start"]) for a in first["answers"]], mode
                results.append(row)
                print(f"{row['context_tokens']:>6} tokens {row['windows']:>4} windows:", flush=True)
                for mode in proxies:
                    print(f"{'':>8}{mode:>14}: {row[mode]['median_s'] * 1000:8.1f} ms, "
                          f"{row[mode]['s_per_1000_tokens']:.3f} s per 1,000 tokens ({row[mode]['predict_calls']} calls)",
                          flush=True)
        finally:
            for process, _ in proxies.values():
                stop_process(process)
            stop_model_server(server)
    out = {"encoder": args.encoder, "load_average_1min_at_end": os.getloadavg()[0], "max_seq_len": info["max_length"],
           "doc_stride": info["doc_stride"], "preferred_windows_per_call": info.get("preferred_windows_per_call"),
           "runs": args.runs, "command": ".venv/bin/python bench/bench_qa.py "
           + " ".join(argv if argv is not None else sys.argv[1:]), "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"results in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
