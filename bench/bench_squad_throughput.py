"""What a MiniLM question-answering step costs here, and how SQuAD 1.1's windows spread over lengths.

    flock /tmp/tfxformers-heavy.lock nice -n 5 .venv/bin/python bench/bench_squad_throughput.py [--steps 2]

For planning a training recipe in CPU minutes: (1) SQuAD 1.1 train and dev cut into ``train qa``'s windows
(``features.build_features``, 384 tokens, stride 128, and 256 / 192 for comparison), the share of windows
per padded length under the buckets training uses today (``features.window_buckets``: 128, 256, 384) and
with a 192 bucket added; (2) MiniLM with a span head (``qa.model``, the real weights), examples per second
of one training step (forward + backward + AdamW) and of inference, at each padded length and batch size,
on random token ids (the cost does not depend on the ids); (3) from those, the estimated time of one epoch
over the train windows and of one pass over the full dev set, for both bucket sets.
Needs ``tfxformers data fetch minilm squad``. Results: ``bench/results/squad_throughput.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "squad_throughput.json"
TODAY = (16, 32, 64, 128, 256, 384)  # features.window_buckets(384)
WITH_192 = (16, 32, 64, 128, 192, 256, 384)


def window_lengths(fast, examples, max_seq_len: int, doc_stride: int, labelled: bool) -> list[int]:
    from tfxformers.models.qa import features

    built = features.build_features(fast, examples, max_seq_len=max_seq_len, doc_stride=doc_stride, labelled=labelled)
    return [len(w) for w in built.windows]


def shares(lengths: list[int], buckets) -> dict[str, float]:
    from tfxformers.models.buckets import bucket_length

    counts = Counter(bucket_length(n, buckets) for n in lengths)
    return {str(b): round(counts[b] / len(lengths), 4) for b in buckets if counts[b]}


def time_steps(model, tf, np, length: int, batch: int, steps: int, train: bool) -> tuple[float, float]:
    """Examples per wall second and per CPU second (this process's, all threads) at ``length`` x ``batch``
    (one untimed call first: tracing). On a machine others share, the CPU figure is the steadier one."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (batch, length), dtype=np.int32)
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids),
              "token_type_ids": np.concatenate([np.zeros((batch, 16), np.int32), np.ones((batch, length - 16), np.int32)], 1)}
    inputs = {k: v for k, v in inputs.items() if k in model.input_names}
    labels = {"start_logits": rng.integers(0, length, batch).astype(np.int32),
              "end_logits": rng.integers(0, length, batch).astype(np.int32)}

    def once():
        if train:
            model.train_on_batch(inputs, labels)
        else:
            model(inputs, training=False)["start_logits"].numpy()

    once()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        once()
    return batch * steps / (time.perf_counter() - wall), batch * steps / (time.process_time() - cpu)


def padded_chunks(lengths: list[int], batch: int, buckets, sort: bool) -> Counter:
    """How many model calls of each padded width a pass makes: ``sort`` groups similar lengths (as training's
    ``batches`` does), else consecutive windows (as ``inference.predict_logits`` does)."""
    from tfxformers.models.buckets import bucket_length

    order = sorted(lengths) if sort else lengths
    return Counter(bucket_length(max(order[i:i + batch]), buckets) for i in range(0, len(order), batch))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 192, 256, 384])
    parser.add_argument("--train-batches", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--infer-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting, after one untimed")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.data.sources import minilm_dir
    from tfxformers.models.qa import features, squad
    from tfxformers.models.qa.model import compile_qa_model, load_qa_checkpoint

    result = {"machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
              "load_average_at_start": os.getloadavg(), "tensorflow": tf.__version__}
    fast = features.fast_tokenizer(encoders.load_tokenizer(minilm_dir()))
    train, _ = squad.load("squad")
    dev, _ = squad.load("squad-dev")
    started = time.perf_counter()
    lengths = {"train_384": window_lengths(fast, train, 384, 128, True),
               "dev_384": window_lengths(fast, dev, 384, 128, False)}
    result["windows_seconds"] = round(time.perf_counter() - started, 1)
    for max_seq_len in (256, 192):
        lengths[f"train_{max_seq_len}"] = window_lengths(fast, train, max_seq_len, min(128, max_seq_len // 4), True)
    result["windows"] = {}
    for name, v in lengths.items():
        today = features.window_buckets(int(name.split("_")[1]))  # what training pads to at that max_seq_len
        with_192 = tuple(sorted(set(today) | {192})) if today[-1] > 192 else today
        result["windows"][name] = {"count": len(v), "mean_tokens": round(sum(v) / len(v), 1),
                                   "median_tokens": sorted(v)[len(v) // 2], "share_by_bucket_today": shares(v, today),
                                   "share_by_bucket_with_192": shares(v, with_192)}
    print(json.dumps(result["windows"], indent=1), flush=True)

    model, _ = load_qa_checkpoint(minilm_dir())
    compile_qa_model(model, learning_rate=5e-5, num_train_steps=10_000)
    speed = {"train": {}, "inference": {}}
    per_cpu = {"train": {}, "inference": {}}
    for length in args.lengths:
        for kind, batch in [*(("train", b) for b in args.train_batches), ("inference", args.infer_batch)]:
            key = f"{length}x{batch}" if kind == "train" else str(length)
            wall, cpu = time_steps(model, tf, np, length, batch, args.steps, kind == "train")
            speed[kind][key], per_cpu[kind][key] = round(wall, 2), round(cpu, 2)
            print(f"{kind} {length} x {batch}: {wall:.2f} examples/s, {cpu:.2f} per CPU second "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    result["examples_per_second"] = speed
    result["examples_per_cpu_second"] = per_cpu

    # Estimates: every padded width's calls at the measured speed (the largest training batch measured).
    batch = max(args.train_batches)
    train_speed = {int(k.split("x")[0]): v for k, v in speed["train"].items() if k.endswith(f"x{batch}")}
    infer_speed = {int(k): v for k, v in speed["inference"].items()}

    def seconds(chunks: Counter, per_second: dict, size: int) -> float | None:
        if any(width not in per_second and width > min(per_second) for width in chunks):
            return None  # a width that was not measured (and is not below all that were)
        return sum(n * size / per_second[max(w, min(per_second))] for w, n in chunks.items())

    estimates = {}
    train_cpu = {int(k.split("x")[0]): v for k, v in per_cpu["train"].items() if k.endswith(f"x{batch}")}
    infer_cpu = {int(k): v for k, v in per_cpu["inference"].items()}
    for name, buckets in (("today", TODAY), ("with_192", WITH_192)):
        train_chunks = padded_chunks(lengths["train_384"], batch, buckets, True)
        dev_chunks = padded_chunks(lengths["dev_384"], args.infer_batch, buckets, False)
        values = {"train_epoch_minutes": seconds(train_chunks, train_speed, batch),
                  "train_epoch_cpu_minutes": seconds(train_chunks, train_cpu, batch),
                  "full_dev_inference_minutes": seconds(dev_chunks, infer_speed, args.infer_batch),
                  "full_dev_inference_cpu_minutes": seconds(dev_chunks, infer_cpu, args.infer_batch)}
        estimates[name] = {k: v and round(v / 60, 1) for k, v in values.items()}
    result["estimates_384_stride_128"] = estimates
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps({k: result[k] for k in ("examples_per_second", "examples_per_cpu_second",
                                             "estimates_384_stride_128")}, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
