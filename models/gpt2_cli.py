"""``tfxformers train gpt2`` and ``tfxformers generate``."""
from __future__ import annotations

import argparse
import json


def register(commands, train_commands) -> None:
    from tfxformers.models.gpt2 import PRESETS  # no TensorFlow import at module level there

    train = train_commands.add_parser("gpt2", help="train a byte-level BPE tokenizer and a GPT-2 from scratch")
    train.add_argument("--corpus", required=True, help="emma (or another Austen novel, austen), a .txt file or a directory")
    train.add_argument("--output", required=True)
    train.add_argument("--preset", default="mini", help=f"model size: {', '.join(PRESETS)}")
    train.add_argument("--vocab-size", type=int, default=8000)
    train.add_argument("--block-size", type=int, default=128)
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--lowercase", action="store_true")
    train.add_argument("--limit-chars", type=int, default=None, help="train on the first N characters only")
    train.add_argument("--seed", type=int, default=42)
    train.set_defaults(func=run_train)

    generate = commands.add_parser("generate", help="continue a prompt with a trained GPT-2")
    generate.add_argument("--model", required=True)
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--max-new-tokens", type=int, default=60)
    generate.add_argument("--strategy", default="greedy", choices=["greedy", "beam", "sample"])
    generate.add_argument("--num-beams", type=int, default=4)
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=50)
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--no-repeat-ngram-size", type=int, default=0)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    from tfxformers.models.gpt2 import Gpt2TrainConfig, train_gpt2

    metrics = train_gpt2(Gpt2TrainConfig(
        corpus=args.corpus, output=args.output, preset=args.preset, vocab_size=args.vocab_size,
        block_size=args.block_size, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        lowercase=args.lowercase, limit_chars=args.limit_chars, seed=args.seed))
    print(f"validation perplexity {metrics['validation_perplexity']:.2f} (unigram {metrics['validation_unigram_perplexity']:.2f}, "
          f"bigram {metrics['validation_bigram_perplexity']:.2f}), test {metrics['test_perplexity']:.2f}; model in {args.output}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from tfxformers.models.gpt2 import generate_text

    result = generate_text(args.model, args.prompt, max_new_tokens=args.max_new_tokens, strategy=args.strategy,
                           num_beams=args.num_beams, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                           no_repeat_ngram_size=args.no_repeat_ngram_size, seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else args.prompt + result["continuation"])
    return 0
