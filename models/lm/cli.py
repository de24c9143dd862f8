"""``tfxformers train gpt2`` and ``tfxformers generate``."""
from __future__ import annotations

import argparse
import json

from tfxformers.cli_types import (int_range, nonnegative_float, nonnegative_int, output_dir, positive_float,
                                  positive_int, probability, seed)


class _OnePrompt(argparse.Action):
    """``--prompt`` given twice is refused: argparse's default keeps the last one and drops the others silently."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"argument {option_string}: given more than once; generate continues one prompt per call "
                         "(run it once per prompt, or send several prompts in one request to the proxy's :generate)")
        setattr(namespace, self.dest, values)


def register(commands, train_commands) -> None:
    from tfxformers.models.lm.generate import MAX_BEAMS  # no TensorFlow there
    from tfxformers.models.lm.gpt2 import MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, MIN_VOCAB_SIZE, PRESETS
    from tfxformers.models.multiworker import DISTRIBUTE_CHOICES

    train = train_commands.add_parser("gpt2", help="train a byte-level BPE tokenizer and a GPT-2 from scratch")
    train.add_argument("--corpus", required=True, help="emma (or another Austen novel, austen), a .txt file or a directory")
    train.add_argument("--output", required=True, type=output_dir,
                       help="directory for the trained model; an existing run there is kept unless --overwrite")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a run already in --output (swapped in only after the new run succeeds)")
    train.add_argument("--preset", default="mini", help=f"model size: {', '.join(PRESETS)}")
    train.add_argument("--vocab-size", type=int_range(MIN_VOCAB_SIZE), default=8000)
    train.add_argument("--block-size", type=int_range(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE), default=128,
                       help="tokens per training window; the model's context is max(block size, 64)")
    train.add_argument("--epochs", type=positive_int, default=3)
    train.add_argument("--batch-size", type=positive_int, default=16)
    train.add_argument("--learning-rate", type=positive_float, default=1e-3)
    train.add_argument("--lowercase", action="store_true")
    train.add_argument("--limit-chars", type=positive_int, default=None, help="train on the first N characters only")
    train.add_argument("--seed", type=seed, default=42)
    train.add_argument("--distribute", default="none", choices=DISTRIBUTE_CHOICES,
                       help="tf.distribute strategy: mirrored = every GPU of this machine, multi-worker = the "
                            "workers named in TF_CONFIG (docs/scale_out.md)")
    train.set_defaults(func=run_train)

    generate = commands.add_parser("generate", help="continue a prompt with a trained GPT-2")
    generate.add_argument("--model", required=True)
    generate.add_argument("--prompt", required=True, action=_OnePrompt,
                          help="the text to continue; one per call (given twice: refused)")
    generate.add_argument("--max-new-tokens", type=positive_int, default=60,
                          help="at most the model's context minus the prompt's tokens")
    generate.add_argument("--strategy", default="greedy", choices=["greedy", "beam", "sample"])
    generate.add_argument("--num-beams", type=int_range(1, MAX_BEAMS), default=4,
                          help=f"beam search width, 1 to {MAX_BEAMS} (the exported model's limit too)")
    generate.add_argument("--temperature", type=nonnegative_float, default=1.0, help="> 0 with --strategy sample")
    generate.add_argument("--top-k", type=nonnegative_int, default=50, help="0: off")
    generate.add_argument("--top-p", type=probability(zero=False), default=1.0, help="in (0, 1]; 1: off")
    generate.add_argument("--no-repeat-ngram-size", type=nonnegative_int, default=0)
    generate.add_argument("--seed", type=seed, default=None)
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, train_gpt2

    metrics = train_gpt2(Gpt2TrainConfig(
        corpus=args.corpus, output=args.output, preset=args.preset, vocab_size=args.vocab_size,
        block_size=args.block_size, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        lowercase=args.lowercase, limit_chars=args.limit_chars, seed=args.seed, distribute=args.distribute),
        overwrite=args.overwrite)
    print(f"validation perplexity {metrics['validation_perplexity']:.2f} (unigram {metrics['validation_unigram_perplexity']:.2f}, "
          f"bigram {metrics['validation_bigram_perplexity']:.2f}), test {metrics['test_perplexity']:.2f}; model in {args.output}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from tfxformers.models.lm.text_generation import generate_text

    result = generate_text(args.model, args.prompt, max_new_tokens=args.max_new_tokens, strategy=args.strategy,
                           num_beams=args.num_beams, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                           no_repeat_ngram_size=args.no_repeat_ngram_size, seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else args.prompt + result["continuation"])
    return 0
