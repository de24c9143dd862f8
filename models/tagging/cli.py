"""``tfxformers train tagger`` and ``tfxformers tag``: thin wrappers over ``models.tagging.train`` / ``inference``."""
from __future__ import annotations

import argparse
import json

from tfxformers.cli_types import (int_range, nonnegative_int, output_dir, positive_float, positive_int,
                                  probability, seed)


def register(commands, train_commands) -> None:
    train = train_commands.add_parser("tagger", help="train a token classifier (named entities or part-of-speech tags)")
    train.add_argument("--data", required=True,
                       help="ner-tweets, pos-oanc (`tfxformers data fetch ner-tweets pos-oanc`), or a file: CoNLL "
                            "(token<TAB>tag lines, a blank line between sentences) or word/TAG lines")
    train.add_argument("--encoder", default="minilm", help="minilm, mpnet, or a local BERT, RoBERTa, DistilBERT, "
                       "ELECTRA or MPNet checkpoint directory")
    train.add_argument("--mode", choices=("finetune", "frozen"), default="finetune",
                       help="finetune: encoder and head train; frozen: only the head")
    train.add_argument("--output", required=True, type=output_dir,
                       help="directory for the trained model and metrics.json; an unfinished run with the same "
                            "options resumes, anything else there is kept unless --overwrite")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --output")
    train.add_argument("--epochs", type=positive_int, default=3)
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--learning-rate", type=positive_float, default=None,
                       help="default 5e-5 (finetune), 1e-3 (frozen)")
    train.add_argument("--max-length", type=int_range(8, 4096), default=128,
                       help="pieces per window, special tokens included (longer sentences are windowed)")
    train.add_argument("--overlap", type=nonnegative_int, default=None,
                       help="pieces consecutive windows share (default 32, or a quarter of a short window)")
    train.add_argument("--dropout", type=probability(one=False), default=0.1)
    train.add_argument("--word-shape", action="store_true",
                       help="also give the model each word's letter case (lower, Title, UPPER), which an uncased "
                            "tokenizer (MiniLM's, MPNet's) drops; helps proper nouns (POS NNP, NER)")
    train.add_argument("--patience", type=nonnegative_int, default=2, help="early-stopping patience in epochs")
    train.add_argument("--limit-train", type=positive_int, default=None, help="use only the first N training sentences")
    train.add_argument("--limit-eval", type=positive_int, default=None,
                       help="use only the first N validation and test sentences")
    train.add_argument("--checkpoint-every-steps", type=nonnegative_int, default=200, help="0: every epoch only")
    train.add_argument("--seed", type=seed, default=42)
    train.set_defaults(func=run_train)

    tag = commands.add_parser("tag", help="tag texts with a trained tagger: entities or part-of-speech tags "
                              "with character offsets")
    tag.add_argument("--model", required=True, help="a `tfxformers train tagger` directory")
    source = tag.add_mutually_exclusive_group(required=True)
    source.add_argument("text", nargs="?", help="the text to tag")
    source.add_argument("--file", help="UTF-8 file, one text per line (- for stdin)")
    tag.add_argument("--overlap", type=nonnegative_int, default=None,
                     help="pieces windows of a long text share (default: the model's)")
    tag.add_argument("--aggregation", choices=("first", "average", "max"), default="first",
                     help="how a word's pieces give its tag: first (the piece the model was trained on), average "
                          "(the mean of the pieces' probabilities), max (the most confident piece)")
    tag.add_argument("--json", action="store_true", help="print one JSON object per text")
    tag.set_defaults(func=run_tag)


def run_train(args: argparse.Namespace) -> int:
    from tfxformers.models.tagging.train import TaggerTrainConfig, train_tagger

    config = TaggerTrainConfig(data=args.data, output=args.output, encoder=args.encoder, mode=args.mode,
                               epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                               max_length=args.max_length, overlap=args.overlap, dropout=args.dropout,
                               word_shape=args.word_shape,
                               patience=args.patience, limit_train=args.limit_train, limit_eval=args.limit_eval,
                               checkpoint_every_steps=args.checkpoint_every_steps, seed=args.seed)
    scores = train_tagger(config, overwrite=args.overwrite)
    print(f"test {scores['score_name']} {scores['score']:.4f} (baseline {scores['baseline']['score']:.4f}) on "
          f"{scores['sentences']} sentences; model and metrics.json in {args.output}")
    return 0


def run_tag(args: argparse.Namespace) -> int:
    from tfxformers.models.classification.cli import read_texts  # the same --file rules as `predict`

    texts = read_texts(args.file) if args.file else [args.text]
    from tfxformers.models.tagging import inference
    from tfxformers.models.tagging.model import load_tagger

    trained = load_tagger(args.model)
    for result in inference.tag_texts(trained, texts, overlap=args.overlap, aggregation=args.aggregation):
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        elif result["task"] == "ner":
            shown = [f"[{e['start']}:{e['end']}] {e['entity']}: {e['text']} ({e['score']:.2f})" for e in result["entities"]]
            print("; ".join(shown) if shown else "(no entities)")
        else:
            print(" ".join(f"{t['text']}/{t['tag']}" for t in result["tokens"]))
    return 0
