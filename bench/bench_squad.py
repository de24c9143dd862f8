"""A resumable SQuAD 1.1 training run that logs dev exact match / F1 against training CPU minutes, and plots it.

    flock /tmp/tfxformers-heavy.lock nice -n 5 .venv/bin/python bench/bench_squad.py --output runs/squad-curve \
        [--budget-cpu-minutes 330] [--eval-every-cpu-minutes 20] [--max-seq-len 384] [--batch-size 32] ...

MiniLM (``--encoder``, or any checkpoint ``train qa`` takes) with a span head is fine-tuned on SQuAD 1.1 train
windows (``features.build_features``), batches of similar length padded to ``--buckets``. Every
``--eval-every-cpu-minutes`` of training CPU time (this process's, evaluation excluded) the model answers a
fixed dev subset (every ``--eval-stride``-th question; 1,057 by default) and a row goes to ``OUTPUT/curve.csv``
(cpu_minutes, wall_minutes, steps, examples_seen, dev_exact_match, dev_f1; the official v1.1 metric) and
``OUTPUT/curve.png`` is redrawn. Training stops at ``--budget-cpu-minutes`` or after ``--epochs`` (which
also sets the learning-rate schedule's length); then the full dev set (10,570 questions) is scored into
``OUTPUT/metrics.json`` and the weights are kept in ``OUTPUT/weights/``.

Killed and started again with the same ``--output``, it resumes: Keras' ``BackupAndRestore`` every
``--checkpoint-every-steps``, the data of the resumed epoch and step (``tokenization.epoch_plans`` with
``multiworker.resume_start``), and the CPU minutes and curve rows recorded so far (``OUTPUT/progress.json``).
The lexical baseline's full-dev score (``qa.baseline``) is written beside the curve as its floor.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

FIELDS = ("cpu_minutes", "wall_minutes", "steps", "examples_seen", "dev_exact_match", "dev_f1")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--buckets", type=int, nargs="+", default=[64, 128, 192, 256, 384],
                        help="padded lengths (the largest must be --max-seq-len)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--budget-cpu-minutes", type=float, default=330.0)
    parser.add_argument("--schedule", choices=("budget", "epochs"), default="budget",
                        help="budget: warm-up and linear decay to 0 over --budget-cpu-minutes of training CPU time "
                             "(models.qa.budget, what `train qa --budget-cpu-minutes` does); epochs: over --epochs "
                             "epochs' steps, cut where the budget ends")
    parser.add_argument("--eval-every-cpu-minutes", type=float, default=20.0)
    parser.add_argument("--eval-stride", type=int, default=10, help="the dev subset: every N-th question")
    parser.add_argument("--checkpoint-every-steps", type=int, default=100)
    parser.add_argument("--limit-train", type=int, default=None, help="only the first N training questions (smoke runs)")
    parser.add_argument("--skip-full-dev", action="store_true", help="no full-dev evaluation at the end (smoke runs)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.buckets[-1] != args.max_seq_len or sorted(args.buckets) != args.buckets:
        parser.error("--buckets must be increasing and end with --max-seq-len")
    return args


def padded(windows, pad_id: int, buckets, input_names):
    import numpy as np

    from tfxformers.models.buckets import bucket_length

    width = bucket_length(max(len(w) for w in windows), buckets)
    rows = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
    for w in windows:
        pad = width - len(w)
        rows["input_ids"].append(w.input_ids + [pad_id] * pad)
        rows["attention_mask"].append([1] * len(w) + [0] * pad)
        rows["token_type_ids"].append(w.token_type_ids + [0] * pad)
    inputs = {k: np.asarray(v, np.int32) for k, v in rows.items() if k in input_names}
    labels = {"start_logits": np.asarray([w.start_position for w in windows], np.int32),
              "end_logits": np.asarray([w.end_position for w in windows], np.int32)}
    return inputs, labels


def score(trained, examples) -> dict:
    from tfxformers.models.qa import inference, metrics

    predictions = inference.predict_examples(trained, examples, max_answer_len=30)
    return metrics.score_v1(predictions, {e.id: [t for t, _ in e.answers] for e in examples})


def plot(rows, baseline: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    minutes = [float(r["cpu_minutes"]) for r in rows]
    ax.plot(minutes, [float(r["dev_f1"]) for r in rows], "o-", label="dev F1 (subset)")
    ax.plot(minutes, [float(r["dev_exact_match"]) for r in rows], "s--", label="dev exact match (subset)")
    if baseline:
        ax.axhline(baseline["f1"], color="grey", lw=1, ls=":", label=f"lexical baseline F1 {baseline['f1']:.1f}")
    ax.set_xlabel("training CPU minutes")
    ax.set_ylabel("SQuAD 1.1 dev (v1.1 metric)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import tensorflow as tf

    from tfxformers.models import encoders, multiworker, tokenization
    from tfxformers.models.qa import baseline, features, squad
    from tfxformers.models.qa.model import compile_qa_model, load_qa_checkpoint

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    progress_file, curve_file, backup = output / "progress.json", output / "curve.csv", output / "backup"
    # The budget is a setting of the run when the schedule follows it; with --schedule epochs it only cuts.
    ignored = ("output", "skip_full_dev") + (("budget_cpu_minutes",) if args.schedule == "epochs" else ())
    settings = {k: v for k, v in vars(args).items() if k not in ignored}
    if (output / "metrics.json").exists():
        sys.exit(f"{output} holds a finished run (metrics.json); choose another --output")
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else {"settings": settings, "rows": []}
    if progress["settings"] != settings:
        sys.exit(f"error: {output} holds a run with other settings: {progress['settings']}")

    train, _ = squad.load("squad")
    dev, _ = squad.load("squad-dev")
    train = train[:args.limit_train] if args.limit_train else train
    subset = dev[::args.eval_stride]
    if "baseline" not in progress:
        progress["baseline"] = baseline.evaluate(dev)
    encoder_dir = encoders.resolve_checkpoint(args.encoder)
    tokenizer = encoders.load_tokenizer(encoder_dir)
    fast = features.fast_tokenizer(tokenizer)
    pad_id = features.Specials.of(fast).pad_id
    windows = features.build_features(fast, train, max_seq_len=args.max_seq_len, doc_stride=args.doc_stride).windows
    steps_per_epoch = -(-len(windows) // args.batch_size)
    print(f"{len(train)} training questions -> {len(windows)} windows, {steps_per_epoch} steps per epoch; "
          f"dev subset {len(subset)} questions", flush=True)

    tf.keras.utils.set_random_seed(args.seed)
    model, _ = load_qa_checkpoint(encoder_dir)
    budget_progress = None
    if args.schedule == "budget":
        from tfxformers.models.qa import budget

        budget_progress = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="budget_progress")
        optimizer = budget.budget_optimizer(args.learning_rate, budget_progress, args.warmup_ratio, 0.01)
    else:
        optimizer = None
    compile_qa_model(model, learning_rate=args.learning_rate, num_train_steps=steps_per_epoch * args.epochs,
                     warmup_ratio=args.warmup_ratio, optimizer=optimizer)
    input_names = list(model.input_names)
    trained = SimpleNamespace(keras_model=model, tokenizer=tokenizer, max_seq_len=args.max_seq_len,
                              doc_stride=args.doc_stride, input_names=input_names)
    start = multiworker.resume_start(backup, steps_per_epoch)
    resumed_steps = start[0] * steps_per_epoch + start[1]
    checkpoint = progress.get("checkpoint") or {"steps": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0}
    if checkpoint["steps"] != resumed_steps:
        # The clocks were last written at another step than Keras resumes at (a kill between the two writes).
        print(f"note: clocks recorded at step {checkpoint['steps']}, resuming at step {resumed_steps}", flush=True)
    if start != (0, 0):
        print(f"resuming at epoch {start[0] + 1}, step {start[1]} {multiworker.resume_note(backup)}", flush=True)
    else:
        checkpoint = {"steps": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0}
    # Rows measured after the backup were of steps that are trained again.
    progress["rows"] = [r for r in progress["rows"] if r["steps"] <= resumed_steps]
    plan = tokenization.epoch_plans(np.asarray([len(w) for w in windows]), args.batch_size, True, args.seed, start)

    def one_epoch():
        for batch in plan():
            yield padded([windows[i] for i in batch], pad_id, args.buckets, input_names)

    spec = tf.TensorSpec((None, None), tf.int32)
    dataset = tf.data.Dataset.from_generator(one_epoch, output_signature=(
        {name: spec for name in input_names},
        {"start_logits": tf.TensorSpec((None,), tf.int32), "end_logits": tf.TensorSpec((None,), tf.int32)})).repeat()

    class Curve(tf.keras.callbacks.Callback):
        """CPU minutes of training (evaluation excluded), the dev-subset rows, the stop at the budget."""

        def on_train_begin(self, logs=None):
            self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
            self.base_cpu, self.base_wall = checkpoint["cpu_seconds"], checkpoint["wall_seconds"]
            self.steps = resumed_steps
            self.next_eval = (len(progress["rows"]) + 1) * args.eval_every_cpu_minutes * 60
            self.advance()

        def advance(self):
            """The budget schedule's position: the share of the budget's training CPU time spent."""
            if budget_progress is not None:
                budget_progress.assign(min(self.cpu() / (args.budget_cpu_minutes * 60), 1.0))

        def cpu(self) -> float:
            return self.base_cpu + time.process_time() - self.cpu0

        def wall(self) -> float:
            return self.base_wall + time.perf_counter() - self.wall0

        def record(self, checkpoint: bool = False):
            if checkpoint:
                progress["checkpoint"] = {"steps": self.steps, "cpu_seconds": self.cpu(), "wall_seconds": self.wall()}
            progress_file.write_text(json.dumps(progress, indent=1))

        def evaluate(self):
            before = time.process_time(), time.perf_counter()
            scores = score(trained, subset)
            row = {"cpu_minutes": round(self.cpu() / 60, 2), "wall_minutes": round(self.wall() / 60, 2),
                   "steps": self.steps, "examples_seen": self.steps * args.batch_size,
                   "dev_exact_match": round(scores["exact_match"], 2), "dev_f1": round(scores["f1"], 2)}
            # Evaluation is not training: its CPU and wall time are taken off the clocks.
            self.base_cpu -= time.process_time() - before[0]
            self.base_wall -= time.perf_counter() - before[1]
            progress["rows"].append(row)
            self.record()
            with open(curve_file, "w", newline="") as f:
                writer = csv.DictWriter(f, FIELDS)
                writer.writeheader()
                writer.writerows(progress["rows"])
            plot(progress["rows"], progress["baseline"], output / "curve.png")
            print(f"\n{row}", flush=True)

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.advance()
            if self.steps % args.checkpoint_every_steps == 0:
                self.record(checkpoint=True)  # alongside BackupAndRestore's backup (it runs first)
            if self.cpu() >= self.next_eval:
                self.evaluate()
                self.next_eval += args.eval_every_cpu_minutes * 60
            if self.cpu() >= args.budget_cpu_minutes * 60:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.record(checkpoint=True)

    curve = Curve()
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=2 if not sys.stdout.isatty() else 1,
              callbacks=[tf.keras.callbacks.BackupAndRestore(str(backup), save_freq=args.checkpoint_every_steps), curve])
    if not progress["rows"] or progress["rows"][-1]["steps"] != curve.steps:
        curve.evaluate()
    model.save_weights(str(output / "weights" / "model"))
    clocks = progress["checkpoint"]
    result = {"budget_cpu_minutes": args.budget_cpu_minutes, "cpu_minutes": round(clocks["cpu_seconds"] / 60, 1),
              "wall_minutes": round(clocks["wall_seconds"] / 60, 1), "steps": curve.steps,
              "settings": settings, "baseline": progress["baseline"], "curve": progress["rows"]}
    if not args.skip_full_dev:
        started = time.perf_counter()
        result["full_dev"] = {**score(trained, dev), "seconds": round(time.perf_counter() - started, 1)}
        print(f"full dev: {result['full_dev']}", flush=True)
    (output / "metrics.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
