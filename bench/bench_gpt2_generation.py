"""Generation speed: the in-graph decoding loop (tf.function + key/value cache) vs eager ``model.generate``.

Run:  .venv/bin/python bench/bench_gpt2_generation.py [--preset mini] [--new-tokens 64] [--repeats 5]
Same randomly initialised GPT-2 (speed does not depend on the weights), same prompt, greedy decoding,
no early stop; both sides measured alternately in one run; the median of the per-run ratios is reported.
Writes bench/results/gpt2_generation.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import tfxformers  # noqa: F401

RESULTS = Path(__file__).resolve().parent / "results"


def model_and_prompt(preset: str):
    """(tokenizer, random GPT-2 of ``preset`` seeded 0, the 16-token prompt, its compiled generate function);
    also used by bench_stacks.py."""
    import tensorflow as tf

    from tfxformers.models.data.sources import gpt2_bpe_dir
    from tfxformers.models.lm.gpt2 import build_lm, make_config
    from tfxformers.models.lm.generate import make_generate_fn
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast(vocab_file=str(gpt2_bpe_dir() / "vocab.json"),
                                  merges_file=str(gpt2_bpe_dir() / "merges.txt"), pad_token="<|endoftext|>")
    tf.keras.utils.set_random_seed(0)
    hf = build_lm(make_config(tokenizer, preset, 256), compile=False).hf_model
    ids = tf.constant([tokenizer("Emma Woodhouse, handsome, clever, and rich, with a comfortable home")["input_ids"]],
                      dtype=tf.int32)
    return tokenizer, hf, ids, make_generate_fn(hf, eos_id=-1, pad_id=tokenizer.pad_token_id)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    tokenizer, hf, ids, compiled = model_and_prompt(args.preset)
    n = args.new_tokens

    def run_compiled():
        return compiled(ids, n, 0, 1.0, 0, 1.0, 0)["output_ids"].numpy()

    def run_eager():
        return hf.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=None).numpy()[:, ids.shape[1]:]

    assert (run_compiled() == run_eager()).all(), "the two paths must produce the same tokens"
    rates = {"compiled": [], "eager": []}
    for _ in range(args.repeats):
        for name, fn in (("compiled", run_compiled), ("eager", run_eager)):
            start = time.perf_counter()
            fn()
            rates[name].append(n / (time.perf_counter() - start))
    ratios = [c / e for c, e in zip(rates["compiled"], rates["eager"])]
    report = {"preset": args.preset, "parameters": int(hf.num_parameters()), "new_tokens": n,
              "prompt_tokens": int(ids.shape[1]), "tokens_per_second_compiled": [round(r, 1) for r in rates["compiled"]],
              "tokens_per_second_eager": [round(r, 1) for r in rates["eager"]], "median_ratio": round(statistics.median(ratios), 2),
              "command": "make bench  (or: .venv/bin/python bench/bench_gpt2_generation.py)"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpt2_generation.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
