"""``tfxformers compare`` (side-by-side report of trained classifiers) and ``tfxformers attention`` (heat maps)."""
from __future__ import annotations

import argparse

from tfxformers.cli_types import nonnegative_int, output_dir, positive_int, seed


def register(commands, train_commands) -> None:
    compare = commands.add_parser(
        "compare", help="evaluate trained classifiers on one test split and write a side-by-side report")
    compare.add_argument("runs", nargs="*", metavar="RUN_DIR", help="directories written by `tfxformers train classifier`")
    compare.add_argument("--data", default=None, help="default: the data set the runs were trained on")
    compare.add_argument("--text-column", default=None)
    compare.add_argument("--label-column", default=None)
    compare.add_argument("--baseline", choices=["tfidf"], default=None,
                         help="also fit and compare TF-IDF + logistic regression (on the same train split)")
    compare.add_argument("--output", required=True, type=output_dir, help="directory for report.md/.json and PNGs")
    compare.add_argument("--bootstrap", type=nonnegative_int, default=1000, help="resamples for the intervals (0: none)")
    compare.add_argument("--latency-texts", type=nonnegative_int, default=50,
                         help="test texts timed one by one for the batch-1 latency (0: skip)")
    compare.add_argument("--examples", type=nonnegative_int, default=6, help="disagreement examples to show")
    compare.add_argument("--limit", type=positive_int, default=None, help="use only the first N test texts")
    compare.add_argument("--seed", type=seed, default=0)
    compare.set_defaults(func=run_compare)

    attention = commands.add_parser("attention", help="attention heat maps of a trained classifier for one text")
    attention.add_argument("--model", required=True, help="a directory written by `tfxformers train classifier`")
    attention.add_argument("text", help="the text to look at")
    attention.add_argument("--layer", type=nonnegative_int, default=None, help="layer of the single-head map (0 = lowest; default: the last)")
    attention.add_argument("--head", type=nonnegative_int, default=None, help="head of the single-head map (default 0)")
    attention.add_argument("--merge-words", action="store_true", help="merge word pieces back into words")
    attention.add_argument("--output", default="attention", type=output_dir,
                           help="directory for head.png, grid.png, rollout.png and attention.json")
    attention.set_defaults(func=run_attention)


def run_compare(args: argparse.Namespace) -> int:
    from tfxformers.models.classification.compare import compare_runs

    report = compare_runs(args.runs, output=args.output, data=args.data, text_column=args.text_column,
                          label_column=args.label_column, baseline=args.baseline, bootstrap=args.bootstrap,
                          seed=args.seed, limit=args.limit, latency_samples=args.latency_texts, examples=args.examples)
    for name, m in report["models"].items():
        print(f"{name:>24}  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    print(f"report: {args.output}/report.md (+ report.json, confusion_matrices.png, scores.png)")
    return 0


def run_attention(args: argparse.Namespace) -> int:
    from tfxformers.errors import UserError
    from tfxformers.models.classification import attention

    if not args.text.strip():
        raise UserError("give a non-empty text to look at")
    result = attention.attention_for_model(args.model, args.text)
    result.check_layer_head(args.layer, args.head)  # before anything is drawn
    if args.merge_words:
        result = attention.merge_words(result)
    paths = attention.write_attention_plots(result, args.output, layer=args.layer, head=args.head)
    note = " (cut at the model's max length)" if result.truncated else ""
    print(f"{len(result.tokens)} {'words' if result.merged else 'tokens'}{note}, {result.layers} layers x "
          f"{result.heads} heads; predicted {result.label}")
    for view, path in paths.items():
        print(f"  {view}: {path}")
    return 0
