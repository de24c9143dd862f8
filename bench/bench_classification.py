"""Text classification benchmark on Rotten Tomatoes: quality of every approach, and two speed ratios.

Run:  .venv/bin/python bench/bench_classification.py [--epochs-finetune 2] [--quick]
Writes bench/results/classification.json and prints a Markdown summary (copied into docs/benchmarks.md).

Quality (test split, fixed seeded split of 12,808 snippets):
  * TF-IDF word uni+bigrams + logistic regression (the honest non-neural baseline)
  * frozen MiniLM (mean pooling) + trained head, on cached encoder outputs
  * fine-tuned MiniLM (AdamW, warm-up + linear decay)
Speed, both sides measured in this one run on the same model and data, median of several repeats:
  * fine-tuning examples/s with length buckets vs the textbook recipe (every example padded to 256)
  * a frozen-encoder epoch on cached encoder outputs vs an epoch that re-encodes every text
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import tfxformers  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"


def tfidf_baseline(data) -> dict:
    from tfxformers.models.classification.baseline import tfidf_baseline_for

    baseline = tfidf_baseline_for(data)  # C chosen on the validation split, never on test
    return {"test_accuracy": baseline.accuracy(data.test.texts, data.test.labels),
            "validation_accuracy": baseline.validation_accuracy, "C": baseline.C,
            "seconds": round(baseline.seconds, 1)}


def timed_steps(model, batches, repeats: int) -> list[float]:
    """Examples per second of ``train_on_batch`` over the given batches, once per repeat."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = 0
        for x, y in batches:
            model.train_on_batch(x, y)
            n += len(y)
        rates.append(n / (time.perf_counter() - start))
    return rates


def finetune_throughput(encoder_dir, data, *, batch_size: int, n_batches: int, repeats: int) -> dict:
    """Bucketed batches vs every example padded to 256, same model weights and the same examples."""
    import tensorflow as tf

    from tfxformers.models.encoders import bert
    from tfxformers.models.buckets import bucket_length
    from tfxformers.models.tokenization import encode_texts, pad_to

    tokenizer = bert.load_bert_tokenizer(encoder_dir)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(data.train), size=batch_size * n_batches, replace=False)
    texts = [data.train.texts[i] for i in pick]
    labels = data.train.labels[pick]
    encoded = encode_texts(tokenizer, texts, 128)
    # Same examples, same batch composition (random order, as in training) for both recipes.
    plan = [np.arange(i, i + batch_size) for i in range(0, len(texts), batch_size)]
    ours, textbook = [], []
    for index in plan:
        ids = [encoded.ids[i] for i in index]
        width = bucket_length(max(len(s) for s in ids))
        x, m = pad_to(ids, width, encoded.pad_id)
        ours.append(({"input_ids": x, "attention_mask": m}, labels[index]))
        x, m = pad_to(ids, 256, encoded.pad_id)
        textbook.append(({"input_ids": x, "attention_mask": m}, labels[index]))
    models = {}
    for name, batches in (("buckets", ours), ("pad_256", textbook)):
        tf.keras.utils.set_random_seed(0)
        models[name] = bert.build_bert_classifier(bert.load_bert_encoder(encoder_dir), 2, num_train_steps=1000)
        timed_steps(models[name], batches, 1)  # warm-up pass: every shape traced before timing
    # Repeats alternate between the two recipes so that machine noise hits both alike.
    results = {"buckets": [], "pad_256": []}
    for _ in range(repeats):
        results["buckets"] += timed_steps(models["buckets"], ours, 1)
        results["pad_256"] += timed_steps(models["pad_256"], textbook, 1)
    ratio = [a / b for a, b in zip(results["buckets"], results["pad_256"])]
    lengths = encoded.lengths
    return {
        "examples_per_second_buckets": [round(r, 1) for r in results["buckets"]],
        "examples_per_second_pad_256": [round(r, 1) for r in results["pad_256"]],
        "median_ratio": round(statistics.median(ratio), 2),
        "batch_size": batch_size, "batches": n_batches, "repeats": repeats,
        "mean_tokens_per_example": round(float(lengths.mean()), 1),
    }


def frozen_cached_vs_reencode(encoder_dir, data, *, n_examples: int, repeats: int) -> dict:
    """One head epoch on cached encoder outputs vs one epoch that runs the frozen encoder on every text."""
    import tensorflow as tf

    from tfxformers.models.encoders import bert
    from tfxformers.models.classification import transfer
    from tfxformers.models.tokenization import encode_texts, make_dataset

    encoder = bert.load_bert_encoder(encoder_dir)
    tokenizer = bert.load_bert_tokenizer(encoder_dir)
    texts = data.train.texts[:n_examples]
    labels = data.train.labels[:n_examples]
    features = transfer.encode_features(encoder, tokenizer, texts, progress=False)
    head = transfer.build_head(features.shape[-1], 2)
    head.fit(features[:64], labels[:64], epochs=1, verbose=0)  # trace
    frozen = bert.build_bert_classifier(encoder, 2, mode="frozen")
    dataset = make_dataset(encode_texts(tokenizer, texts, 128), labels, batch_size=32, shuffle=True)
    frozen.fit(dataset.take(3), epochs=1, verbose=0)  # trace
    cached_s, reencode_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        head.fit(features, labels, batch_size=32, epochs=1, verbose=0)
        cached_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        frozen.fit(dataset, epochs=1, verbose=0)
        reencode_s.append(time.perf_counter() - start)
    ratio = [b / a for a, b in zip(cached_s, reencode_s)]
    del tf
    return {"examples": n_examples, "cached_epoch_seconds": [round(s, 3) for s in cached_s],
            "reencode_epoch_seconds": [round(s, 2) for s in reencode_s], "median_speedup": round(statistics.median(ratio), 1),
            "repeats": repeats}


def train_run(mode: str, epochs: int, output: Path, limit_train: int | None, learning_rate: float | None = None) -> dict:
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier

    config = ClassifierTrainConfig(data="rotten_tomatoes", output=str(output), encoder="minilm", mode=mode,
                                   epochs=epochs, batch_size=32, max_length=128, verbose=2, patience=2,
                                   limit_train=limit_train, learning_rate=learning_rate)
    start = time.perf_counter()
    metrics = train_classifier(config, overwrite=True)  # a re-run of the benchmark replaces its own runs
    return {"test_accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4),
            "epochs": epochs, "train_examples": limit_train or "all", "wall_seconds": round(time.perf_counter() - start, 1),
            "output": str(output)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs-finetune", type=int, default=1)
    parser.add_argument("--epochs-frozen", type=int, default=20)
    parser.add_argument("--limit-finetune", type=int, default=None, help="train the fine-tuned model on N examples")
    parser.add_argument("--runs-dir", default="runs", help="where the trained models are kept")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script works")
    parser.add_argument("--skip-finetune", action="store_true")
    args = parser.parse_args(argv)

    from tfxformers.models.data.classification import load_classification
    from tfxformers.models.data.sources import minilm_dir

    data = load_classification("rotten_tomatoes")
    encoder_dir = minilm_dir()
    runs = Path(args.runs_dir)
    report = {"machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                          "cpus": __import__("os").cpu_count()},
              "command": "make bench  (or: .venv/bin/python bench/bench_classification.py)",
              "data": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)}}
    quick = args.quick
    print("TF-IDF + logistic regression ...", flush=True)
    report["tfidf_logreg"] = tfidf_baseline(data)
    print(report["tfidf_logreg"], flush=True)
    print("fine-tuning throughput: buckets vs pad-to-256 ...", flush=True)
    report["finetune_throughput"] = finetune_throughput(encoder_dir, data, batch_size=32, n_batches=3 if quick else 8,
                                                        repeats=2 if quick else 3)
    print(report["finetune_throughput"], flush=True)
    print("frozen epoch: cached encoder outputs vs re-encoding ...", flush=True)
    report["frozen_epoch_speed"] = frozen_cached_vs_reencode(encoder_dir, data, n_examples=256 if quick else 1024,
                                                             repeats=2 if quick else 3)
    print(report["frozen_epoch_speed"], flush=True)
    print("frozen MiniLM on the full training split ...", flush=True)
    report["frozen_minilm"] = train_run("frozen", 3 if quick else args.epochs_frozen, runs / "rt-frozen",
                                        500 if quick else None)
    print(report["frozen_minilm"], flush=True)
    if not args.skip_finetune:
        print("fine-tuned MiniLM ...", flush=True)
        report["finetuned_minilm"] = train_run("finetune", 1 if quick else args.epochs_finetune, runs / "rt-finetune",
                                               300 if quick else args.limit_finetune, learning_rate=8e-5)
        print(report["finetuned_minilm"], flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("classification-quick.json" if quick else "classification.json")
    out.write_text(json.dumps(report, indent=2))
    print(summary(report))
    print(f"wrote {out}")
    return 0


def summary(r: dict) -> str:
    lines = ["| approach | test accuracy |", "| --- | --- |",
             f"| TF-IDF word+bigram + logistic regression | {r['tfidf_logreg']['test_accuracy']:.4f} |",
             f"| frozen MiniLM + head ({r['frozen_minilm']['epochs']} head epochs, cached features) | "
             f"{r['frozen_minilm']['test_accuracy']:.4f} |"]
    if "finetuned_minilm" in r:
        lines.append(f"| fine-tuned MiniLM ({r['finetuned_minilm']['epochs']} epochs) | {r['finetuned_minilm']['test_accuracy']:.4f} |")
    t = r["finetune_throughput"]
    f = r["frozen_epoch_speed"]
    lines += ["", f"fine-tuning examples/s, buckets vs pad-256: {t['examples_per_second_buckets']} vs "
                  f"{t['examples_per_second_pad_256']} -> median ratio {t['median_ratio']}x",
              f"frozen epoch, cached vs re-encoding ({f['examples']} examples): {f['cached_epoch_seconds']} s vs "
              f"{f['reencode_epoch_seconds']} s -> median speed-up {f['median_speedup']}x"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
