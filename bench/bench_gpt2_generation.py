"""Generation speed: the in-graph decoding loop (the exported ``generate``: tf.function + key/value cache)
vs transformers' ``model.generate``, eager and inside ``tf.function`` with XLA (``jit_compile=True``) off
and on.

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_gpt2_generation.py [--preset mini]
      [--new-tokens 64] [--batch 1] [--repeats 5]
Same randomly initialised GPT-2 (speed does not depend on the weights), same prompt(s), greedy decoding,
no early stop; every side is warmed up once (XLA compiles then), then the sides run alternately in each
repeat; medians of tokens/s and of the per-repeat ratios to the in-graph loop are reported. The in-graph
loop under XLA is tried too: its key/value cache grows by one position per step (dynamic shapes), which
XLA cannot compile; the result says so if it fails. Writes bench/results/gpt2_generation.json.
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
PROMPT = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home"


def model_and_prompt(preset: str):
    """(tokenizer, random GPT-2 of ``preset`` seeded 0, the 16-token prompt [1, 16], a function with the
    old call shape ``f(ids, n, strategy, temperature, top_k, top_p, seed)`` over the batched in-graph
    generate); also used by bench_stacks.py."""
    import tensorflow as tf

    from tfxformers.models.data.sources import gpt2_bpe_dir
    from tfxformers.models.lm.generate import make_generate_fn
    from tfxformers.models.lm.gpt2 import build_lm, make_config
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast(vocab_file=str(gpt2_bpe_dir() / "vocab.json"),
                                  merges_file=str(gpt2_bpe_dir() / "merges.txt"), pad_token="<|endoftext|>")
    tf.keras.utils.set_random_seed(0)
    hf = build_lm(make_config(tokenizer, preset, 256), compile=False).hf_model
    ids = tf.constant([tokenizer(PROMPT)["input_ids"]], dtype=tf.int32)
    generate = make_generate_fn(hf, eos_id=-1, pad_id=tokenizer.pad_token_id)

    def compiled(ids, n, strategy, temperature, top_k, top_p, seed):
        return _call(generate, ids, n, strategy=strategy, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)

    return tokenizer, hf, ids, compiled


def _call(generate, ids, n, **options):
    """The batched signature on equal-length prompts ``ids`` [rows, seq]; output_ids [rows, n]."""
    import tensorflow as tf

    from tfxformers.models.lm.generate import as_arrays, request_inputs

    inputs = as_arrays(request_inputs(ids.numpy().tolist(), 0, max_new_tokens=n, **options))
    out = generate(**{k: tf.constant(v) for k, v in inputs.items()})
    return {"output_ids": out["output_ids"][:, 0], "num_generated": out["num_generated"][:, 0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="rows per call (the same prompt repeated)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import tensorflow as tf

    from tfxformers.models.lm.generate import make_generate_fn

    tokenizer, hf, ids, _ = model_and_prompt(args.preset)
    ids = tf.repeat(ids, args.batch, axis=0)
    n, pad = args.new_tokens, tokenizer.pad_token_id
    in_graph = make_generate_fn(hf, eos_id=-1, pad_id=pad)
    options = dict(max_new_tokens=n, do_sample=False, pad_token_id=pad, eos_token_id=None, use_cache=True)

    def hf_graph(jit: bool):
        function = tf.function(lambda x: hf.generate(x, attention_mask=tf.ones_like(x), **options), jit_compile=jit)
        return lambda: function(ids).numpy()[:, ids.shape[1]:]

    sides = {
        "in_graph": lambda: _call(in_graph, ids, n)["output_ids"].numpy(),
        "hf_eager": lambda: hf.generate(ids, attention_mask=tf.ones_like(ids), **options).numpy()[:, ids.shape[1]:],
        "hf_tf_function": hf_graph(False),
        "hf_xla": hf_graph(True),
    }
    xla_in_graph = tf.function(lambda **kw: in_graph(**kw), jit_compile=True)
    try:
        _call(xla_in_graph, ids, n)
        sides["in_graph_xla"] = lambda: _call(xla_in_graph, ids, n)["output_ids"].numpy()
        in_graph_xla_note = "compiled"
    except Exception as exc:  # XLA refuses the growing cache: record why instead of a number
        in_graph_xla_note = f"not compilable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    warm = {}
    for name, fn in sides.items():
        start = time.perf_counter()
        warm[name] = fn()
        warm[name + "_first_call_seconds"] = round(time.perf_counter() - start, 2)
    reference = warm["in_graph"]
    same = {name: bool((warm[name] == reference).all()) for name in sides}
    rates = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            rates[name].append(n * args.batch / (time.perf_counter() - start))
    report = {"preset": args.preset, "parameters": int(hf.num_parameters()), "new_tokens": n, "batch": args.batch,
              "prompt_tokens": int(ids.shape[1]), "repeats": args.repeats, "same_tokens_as_in_graph": same,
              "in_graph_xla": in_graph_xla_note,
              "first_call_seconds": {name: warm[name + "_first_call_seconds"] for name in sides},
              "tokens_per_second_median": {name: round(statistics.median(r), 1) for name, r in rates.items()},
              "tokens_per_second": {name: [round(x, 1) for x in r] for name, r in rates.items()},
              "median_ratio_in_graph_to": {name: round(statistics.median(
                  [a / b for a, b in zip(rates["in_graph"], r)]), 2) for name, r in rates.items() if name != "in_graph"},
              "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_gpt2_generation.py "
                         + " ".join(argv if argv is not None else sys.argv[1:])}
    report["xla_speedup_hf"] = round(statistics.median([a / b for a, b in zip(rates["hf_xla"], rates["hf_tf_function"])]),
                                     2)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.batch == 1 else f"_batch{args.batch}"
    (RESULTS / f"gpt2_generation{suffix}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
