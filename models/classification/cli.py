"""``tfxformers train classifier``, ``tfxformers evaluate`` and ``tfxformers predict``."""
from __future__ import annotations

import argparse
import json
import sys

from tfxformers.cli_types import (int_range, nonnegative_int, output_dir, positive_float, positive_int,
                                  probability, seed)
from tfxformers.errors import UserError


def register(commands, train_commands) -> None:
    from tfxformers.models.buckets import MAX_LENGTH_RANGE  # pure Python, like the next one
    from tfxformers.models.multiworker import DISTRIBUTE_CHOICES

    train = train_commands.add_parser("classifier", help="fine-tune or transfer-learn a BERT text classifier")
    train.add_argument("--data", required=True,
                       help="rotten_tomatoes | bbc_news | tweets | a CSV/TSV/JSONL file")
    train.add_argument("--text-column", default="text")
    train.add_argument("--label-column", default="label")
    train.add_argument("--encoder", default="minilm", help="'minilm' or a local BERT / RoBERTa / DistilBERT / ELECTRA checkpoint directory (safetensors or tf_model.h5, base or task-head; Hub ids must be downloaded first)")
    train.add_argument("--mode", default="finetune", choices=["finetune", "partial", "frozen", "hub", "distill"],
                       help="finetune: train everything; partial: train the top --trainable-layers layers and "
                            "the head on cached outputs of the frozen lower layers; frozen: train the head only; "
                            "hub: frozen encoder loaded with tensorflow_hub.KerasLayer; distill: fine-tune "
                            "--encoder on the soft labels of --teacher and the hard labels")
    train.add_argument("--trainable-layers", type=positive_int, default=None,
                       help="partial mode: how many of the encoder's top layers train (1..depth; default: the top half, 3 of MiniLM's 6)")
    distill = train.add_argument_group("distill mode (Hinton et al. 2015; DistilBERT)")
    distill.add_argument("--teacher", default=None, metavar="RUN_DIR",
                         help="a trained classifier run directory (any encoder) whose logits the student learns; "
                              "they are computed once and cached in RUN_DIR/soft_labels/")
    distill.add_argument("--unlabeled", default=None, metavar="FILE",
                         help="in-domain texts without labels, one a line (UTF-8): the student learns the "
                              "teacher's soft labels on them too")
    distill.add_argument("--temperature", type=positive_float, default=None,
                         help="softmax temperature T of the soft labels (default 2)")
    distill.add_argument("--alpha", type=probability(), default=None,
                         help="weight of the soft term alpha*T^2*KL against (1-alpha)*cross-entropy, in [0, 1] "
                              "(default 0.5)")
    distill.add_argument("--student-layers", type=student_layers, default=None, metavar="I,J,...",
                         help="the encoder blocks the student keeps, in this order, e.g. 0,2,4 of MiniLM's 6 "
                              "(default: all); the saved model is an ordinary encoder of that depth")
    train.add_argument("--output", required=True, type=output_dir,
                       help="directory for the trained model, metrics and plots; an existing run there is kept "
                            "unless --overwrite (an unfinished run with the same options resumes)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a run already in --output (swapped in only after the new run succeeds)")
    train.add_argument("--epochs", type=positive_int, default=3)
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--learning-rate", type=positive_float, default=None,
                       help="peak learning rate (default 5e-5 finetune, 5e-4 partial, 1e-3 frozen/hub)")
    train.add_argument("--max-length", type=int_range(*MAX_LENGTH_RANGE), default=128)
    train.add_argument("--pooling", default="mean", choices=["mean", "cls", "pooled"])
    train.add_argument("--dropout", type=probability(one=False), default=0.1, help="in [0, 1)")
    train.add_argument("--patience", type=nonnegative_int, default=2, help="early-stopping patience in epochs")
    train.add_argument("--no-cache-features", action="store_true",
                       help="frozen mode: run the encoder every epoch instead of caching its outputs once")
    train.add_argument("--limit-train", type=positive_int, default=None, help="use only the first N training examples")
    train.add_argument("--limit-eval", type=positive_int, default=None, help="use only N validation and N test examples")
    train.add_argument("--checkpoint-every-steps", type=nonnegative_int, default=200, help="0: every epoch only")
    train.add_argument("--seed", type=seed, default=42)
    train.add_argument("--distribute", default="none", choices=DISTRIBUTE_CHOICES,
                       help="tf.distribute strategy: mirrored = every GPU of this machine, multi-worker = the "
                            "workers named in TF_CONFIG (default: TensorFlow's default device placement)")
    train.set_defaults(func=run_train)

    evaluate = commands.add_parser("evaluate", help="metrics of a trained classifier on a test split")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--data", default=None, help="default: the data set the model was trained on")
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--limit", type=positive_int, default=None)
    evaluate.set_defaults(func=run_evaluate)

    predict = commands.add_parser("predict", help="classify texts with a trained classifier")
    predict.add_argument("--model", required=True)
    predict.add_argument("texts", nargs="*", help="texts to classify (and/or --file)")
    predict.add_argument("--file", default=None,
                         help="read texts from this file, one per line (blank lines skipped); - reads stdin")
    predict.add_argument("--window-overlap", type=nonnegative_int, default=None,
                         help="texts longer than the model's max length are scored in windows sharing this many "
                              "tokens (at most half a window; default 32, or half a window if less), combined as a "
                              "token-weighted mean, as the proxy does")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.set_defaults(func=run_predict)


def student_layers(text: str) -> list[int]:
    """argparse type of --student-layers: ``0,2,4`` -> [0, 2, 4] (the range is checked against the encoder later)."""
    from tfxformers.models.classification.layer_subset import parse_student_layers

    try:
        return parse_student_layers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_train(args: argparse.Namespace) -> int:
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.models.classification import distill

    config = ClassifierTrainConfig(
        data=args.data, output=args.output, encoder=args.encoder, mode=args.mode,
        text_column=args.text_column, label_column=args.label_column, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, max_length=args.max_length,
        pooling=args.pooling, dropout=args.dropout, patience=args.patience,
        cache_features=not args.no_cache_features, limit_train=args.limit_train, limit_eval=args.limit_eval,
        checkpoint_every_steps=args.checkpoint_every_steps, seed=args.seed, distribute=args.distribute,
        trainable_layers=args.trainable_layers, teacher=args.teacher, unlabeled=args.unlabeled,
        student_layers=args.student_layers,
        temperature=distill.DEFAULT_TEMPERATURE if args.temperature is None else args.temperature,
        alpha=distill.DEFAULT_ALPHA if args.alpha is None else args.alpha,
    )
    if args.mode != "distill":  # explicit defaults count as given: they are distill options all the same
        given = [name for name in ("--temperature", "--alpha") if getattr(args, name[2:]) is not None]
        if given:
            raise UserError(f"{given[0]} applies to --mode distill only (this run is --mode {args.mode})")
    metrics = train_classifier(config, overwrite=args.overwrite)
    print(f"test accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
          f"({metrics['examples']} examples); model, metrics.json and plots/ in {args.output}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from tfxformers.models.classification.trained import evaluate_model

    metrics = evaluate_model(args.model, args.data, args.split, args.text_column, args.label_column, args.limit)
    print(json.dumps(metrics, indent=2))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from tfxformers.models.classification.trained import predict_texts

    results = predict_texts(args.model, list(args.texts) + read_texts(args.file), window_overlap=args.window_overlap)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            windows = f"  ({r['windows']} windows of {r['tokens']} tokens)" if r["windows"] > 1 else ""
            print(f"{r['label']:>12}  {r['probability']:.3f}  {r['text']}{windows}")
    return 0


def read_texts(source: str | None) -> list[str]:
    """Texts from ``--file`` (one per line, blank lines skipped; ``-`` = stdin); none without it."""
    from tfxformers.errors import UserError

    if source is None:
        return []
    try:
        if source == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(source, encoding="utf-8") as f:
                lines = f.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"--file {source}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"--file {source} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"--file {source} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise UserError(f"--file {source} holds no text (one text per line)")
    return texts
