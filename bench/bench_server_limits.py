"""Peak memory of `tfxformers serve` at its default request limits (issue 16).

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_server_limits.py [--repeats 3]
      [--unlimited-rows 512]

One server (a subprocess at the default limits of `tfxformers serve --help`) serves two models:

* `minilm`: all-MiniLM-L6-v2 with an untrained 2-label head (memory does not depend on the head's
  weights), exported as `tfxformers train classifier` + `tfxformers export` would (its tfxformers.json
  carries the encoder's 512 maximum positions, so the server-wide --max-sequence-length 512 applies);
* `emma`: a tiny GPT-2 (2 layers, 32 wide) trained for one epoch with a context of 256 tokens.

For each request at a limit, the server's peak RSS (VmHWM in /proc/PID/status, reset to the current RSS
before each request through /proc/PID/clear_refs) is read after the answer; each request is repeated
`--repeats` times and the largest peak is kept. Freed memory mostly stays mapped, so a request's peak
includes what earlier (larger) requests left behind; the largest peak is the process's peak over all. Requests: MiniLM 128 rows x 128 tokens (--max-rows and --max-tokens), 32 rows x 512
tokens (--max-sequence-length and --max-tokens: the worst attention memory the limits allow), a 4 MiB
body (--max-request-bytes, refused after parsing by the token limit: the JSON parse is the cost), GPT-2
generating up to its context (1 row, 1 + 255 tokens) and 64 rows x 256 tokens (--max-tokens).
The other side: a second server with --max-rows/--max-tokens lifted answers `--unlimited-rows` rows of
128 tokens, the kind of request that grew the old server to the whole machine (12,000 rows there).
Needs `tfxformers data fetch minilm`. Writes bench/results/server_limits.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import tfxformers  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GPT2_CONTEXT = 256


def export_minilm_classifier(base: Path) -> None:
    from tfxformers.models.encoders import bert
    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.data.sources import minilm_dir
    from tfxformers.serving.export.trained import export_trained

    encoder = bert.load_bert_encoder(minilm_dir())
    tokenizer = bert.load_bert_tokenizer(minilm_dir())
    model = bert.build_bert_classifier(encoder, 2, mode="frozen", compile=False)
    info = {"kind": "classifier", "format_version": 1, "max_length": 128, "buckets": [16, 32, 64, 128],
            "label_names": ["rotten", "fresh"], "input_names": ["input_ids", "attention_mask"],
            "encoder_config": encoder.config.to_dict()}
    trained = TrainedModel(directory=base, info=info, keras_model=model, tokenizer=tokenizer,
                           label_names=["rotten", "fresh"])
    export_trained(trained, "minilm", base)


def export_tiny_gpt2(work: Path, base: Path) -> None:
    from tfxformers.cli import main

    corpus = work / "corpus.txt"
    corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley there." for i in range(400)))
    assert main(["train", "gpt2", "--corpus", str(corpus), "--output", str(work / "gpt2"), "--preset", "tiny",
                 "--vocab-size", "300", "--block-size", str(GPT2_CONTEXT), "--epochs", "1"]) == 0
    assert main(["export", "--model", str(work / "gpt2"), "--name", "emma", "--model-base", str(base)]) == 0


def peak_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values["VmHWM"], values["VmRSS"]


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS


def post(port: int, model: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{model}:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return answer.status, answer.read()[:120].decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300].decode()


def classify_body(rows: int, length: int) -> bytes:
    ids = [[101] + [2023] * (length - 2) + [102]] * rows
    return json.dumps({"inputs": {"input_ids": ids, "attention_mask": [[1] * length] * rows}}).encode()


def generate_body(rows: int, prompt: int, new: int) -> bytes:
    return json.dumps({"signature_name": "generate", "inputs": {
        "input_ids": [[5] * prompt] * rows, "max_new_tokens": new, "strategy": 1, "temperature": 1.0, "top_k": 0,
        "top_p": 0.9, "seed": 0}}).encode()


def measure(process, cases, repeats: int) -> list[dict]:
    results = []
    for name, model, body, expected in cases:
        peaks, before, seconds = [], [], []
        for _ in range(repeats):
            reset_peak(process.pid)
            before.append(peak_kib(process.pid)[1])
            started = time.perf_counter()
            status, text = post(process.rest_port, model, body)
            seconds.append(time.perf_counter() - started)
            assert status == expected, (name, status, text)
            peaks.append(peak_kib(process.pid)[0])
        # RSS before a request is what earlier ones left mapped (TensorFlow's allocator keeps freed memory);
        # the peak is the process's, so it includes that.
        results.append({"request": name, "status": status, "body_bytes": len(body), "rss_before_mib": min(before) / 1024,
                        "peak_rss_mib": max(peaks) / 1024, "median_seconds": sorted(seconds)[len(seconds) // 2]})
        print(f"{name:64s} {status}  RSS before {min(before) / 1024:6.0f} MiB  peak {max(peaks) / 1024:6.0f} MiB  "
              f"{results[-1]['median_seconds']:6.2f} s", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unlimited-rows", type=int, default=512,
                        help="rows of 128 tokens sent to a server without row/token limits (0: skip)")
    args = parser.parse_args(argv)

    from tfxformers.serving.server.limits import ServerLimits
    from tfxformers.testing import start_model_server, stop_model_server

    limits = ServerLimits()
    work = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    try:
        base = work / "models"
        export_minilm_classifier(base)
        export_tiny_gpt2(work, base)
        process, _, _ = start_model_server(base, file_system_poll_wait_seconds=0, log_level="WARNING")
        try:
            idle = peak_kib(process.pid)[1] / 1024
            print(f"server idle after loading both models: RSS {idle:.0f} MiB", flush=True)
            big = b'{"inputs": {"input_ids": [[' + b",".join([b"7"] * ((limits.max_request_bytes - 200) // 2)) + b']]}}'
            big += b" " * (limits.max_request_bytes - len(big))
            cases = [
                ("minilm 1 row x 16 tokens (baseline)", "minilm", classify_body(1, 16), 200),
                (f"minilm {limits.max_rows} rows x 128 tokens (rows, tokens)", "minilm",
                 classify_body(limits.max_rows, 128), 200),
                (f"minilm 32 rows x {limits.max_sequence_length} tokens (sequence, tokens)", "minilm",
                 classify_body(limits.max_tokens // limits.max_sequence_length, limits.max_sequence_length), 200),
                ("minilm 4 MiB JSON body (request bytes; refused after parsing)", "minilm", big, 400),
                (f"gpt2 1 row, 1 + {GPT2_CONTEXT - 1} new tokens (context)", "emma",
                 generate_body(1, 1, GPT2_CONTEXT - 1), 200),
                (f"gpt2 {limits.max_tokens // GPT2_CONTEXT} rows x (1 + {GPT2_CONTEXT - 1}) tokens (tokens)", "emma",
                 generate_body(limits.max_tokens // GPT2_CONTEXT, 1, GPT2_CONTEXT - 1), 200),
            ]
            results = measure(process, cases, args.repeats)
        finally:
            stop_model_server(process)
        unlimited = []
        if args.unlimited_rows:
            process, _, _ = start_model_server(base, file_system_poll_wait_seconds=0, log_level="WARNING",
                                               max_rows=10**6, max_tokens=10**9, max_request_bytes=2**31 - 1)
            try:
                unlimited = measure(process, [(f"limits lifted: minilm {args.unlimited_rows} rows x 128 tokens",
                                               "minilm", classify_body(args.unlimited_rows, 128), 200)], 1)
            finally:
                stop_model_server(process)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {"limits": {k: getattr(limits, k) for k in ServerLimits.FLAGS}, "idle_rss_mib": idle,
               "requests": results, "limits_lifted": unlimited,
               "peak_rss_mib_at_default_limits": max(r["peak_rss_mib"] for r in results),
               "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_server_limits.py "
                          + " ".join(argv if argv is not None else sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_limits.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"peak RSS at the default limits: {summary['peak_rss_mib_at_default_limits']:.0f} MiB "
          f"(idle {idle:.0f} MiB); written to bench/results/server_limits.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
