"""Text from a trained GPT-2 directory: the work behind ``tfxformers generate``.

``generate_text(model_dir, prompt, strategy="greedy"|"beam"|"sample", ...)`` checks its settings and the
prompt's length against the model's context with the tokenizer alone (no TensorFlow), then loads the
model and continues the prompt with transformers' ``generate`` (greedy and beam search compiled by XLA).
The exported, batched in-graph generation is ``models.lm.generate``.
"""
from __future__ import annotations

import os
from pathlib import Path

from tfxformers.errors import UserError, check_rules
from tfxformers.models.lm.generate import MAX_BEAMS
from tfxformers.models.lm.gpt2 import MAX_SEED
from tfxformers.models.texts import BLANK, is_blank


STRATEGIES = ("greedy", "beam", "sample")


def check_generation(*, max_new_tokens: int, strategy: str, num_beams: int, temperature: float, top_k: int,
                     top_p: float, no_repeat_ngram_size: int, seed: int | None = None) -> None:
    """Generation settings in range (cheap; before any model is read)."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    rules = (("--max-new-tokens", max_new_tokens, max_new_tokens >= 1, "at least 1"),
             # Each beam is a row of the model's batch: 100,000 of them ran (slowly, in gigabytes) unbounded.
             ("--num-beams", num_beams, 1 <= num_beams <= MAX_BEAMS, f"between 1 and {MAX_BEAMS}"),
             ("--top-k", top_k, top_k >= 0, ">= 0 (0: off)"),
             ("--top-p", top_p, 0 < top_p <= 1, "in (0, 1]"),
             ("--no-repeat-ngram-size", no_repeat_ngram_size, no_repeat_ngram_size >= 0, ">= 0 (0: off)"),
             ("--seed", seed, seed is None or 0 <= seed <= MAX_SEED, f"between 0 and {MAX_SEED}"))
    check_rules(rules)
    if strategy == "sample" and not temperature > 0:
        raise UserError(f"--temperature must be > 0 with --strategy sample (got {temperature!r}); "
                        "use --strategy greedy for the most likely continuation")


def check_context(prompt_tokens: int, max_new_tokens: int, context: int) -> None:
    """The prompt and the new tokens must fit the model's context (its position embeddings)."""
    if prompt_tokens + max_new_tokens > context:
        room = context - prompt_tokens
        fix = (f"ask for at most {room} new tokens with --max-new-tokens" if room >= 1
               else "shorten the prompt")
        raise UserError(f"the prompt is {prompt_tokens} tokens and --max-new-tokens is {max_new_tokens}, but this "
                        f"model's context is {context} tokens; {fix}")


def _generate_xla(model, ids, num_beams: int, kwargs: dict) -> list[int]:
    """Greedy or beam search through transformers' generate compiled by XLA: on this project's CPU it is
    faster than the eager loop even counting the compile of a one-off call (bench/bench_gpt2_generation.py:
    mini preset, 64 tokens, 2.6 s for compile + run vs 3.4 s eager; 2.4x the tokens/s once compiled).
    Sampling stays eager (its unseeded path is not stateless), and so does no_repeat_ngram_size
    (transformers has no XLA version of it)."""
    import tensorflow as tf

    options = {k: v for k, v in kwargs.items() if k not in ("attention_mask", "no_repeat_ngram_size")}
    compiled = tf.function(lambda x, mask: model.generate(x, attention_mask=mask, do_sample=False, num_beams=num_beams,
                                                          **options), jit_compile=True)
    new_ids = compiled(ids, kwargs["attention_mask"]).numpy()[0, ids.shape[1]:].tolist()
    # Under XLA the output always has max_new_tokens positions, padded after </s>: keep up to </s>.
    eos = options.get("eos_token_id")
    return new_ids[:new_ids.index(eos) + 1] if eos is not None and eos in new_ids else new_ids


def generate_text(model_dir: str | os.PathLike, prompt: str, *, max_new_tokens: int = 60, strategy: str = "greedy",
                  num_beams: int = 4, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                  no_repeat_ngram_size: int = 0, seed: int | None = None, stop_at_eos: bool = True) -> dict:
    from tfxformers.models.artifacts import context_length, load_trained, read_info

    check_generation(max_new_tokens=max_new_tokens, strategy=strategy, num_beams=num_beams, temperature=temperature,
                     top_k=top_k, top_p=top_p, no_repeat_ngram_size=no_repeat_ngram_size, seed=seed)
    if is_blank(prompt or ""):
        raise UserError(f"give a non-empty --prompt (this one {BLANK})")
    info = read_info(model_dir)
    if info["kind"] != "gpt2":
        raise UserError(f"{model_dir} holds a {info['kind']} model; generate works on GPT-2 models")
    # Checked with the tokenizer alone (no TensorFlow): positions past the context crash inside the model.
    from tokenizers import Tokenizer

    fast = Tokenizer.from_file(str(Path(model_dir) / "tokenizer" / "tokenizer.json"))
    check_context(len(fast.encode(prompt).ids), max_new_tokens,
                  context_length(model_dir, info))

    import tensorflow as tf

    trained = load_trained(model_dir)
    tokenizer, model = trained.tokenizer, trained.keras_model
    ids = tokenizer(prompt, return_tensors="tf")["input_ids"]
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id if stop_at_eos else None,
                  no_repeat_ngram_size=no_repeat_ngram_size or None, use_cache=True,
                  attention_mask=tf.ones_like(ids))
    if strategy != "sample" and not no_repeat_ngram_size:
        new_ids = _generate_xla(model, ids, num_beams if strategy == "beam" else 1, kwargs)
    else:
        out = model.generate(ids, do_sample=strategy == "sample", num_beams=num_beams if strategy == "beam" else 1,
                             **(dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                     seed=None if seed is None else [seed, 0]) if strategy == "sample" else {}),
                             **kwargs)
        new_ids = out.numpy()[0, ids.shape[1]:].tolist()
    return {"prompt": prompt, "continuation": tokenizer.decode(new_ids, skip_special_tokens=True),
            "new_tokens": len(new_ids), "stopped_at_eos": bool(new_ids) and new_ids[-1] == tokenizer.eos_token_id}
