"""``tfxformers train qa`` and ``tfxformers answer``: thin wrappers over ``models.qa.train`` and ``inference``."""
from __future__ import annotations

import argparse
import json
import sys

from tfxformers.cli_types import (existing_file, int_range, nonnegative_int, output_dir, positive_float, positive_int,
                                  probability, seed)


def squad_argument(text: str) -> str:
    from tfxformers.models.qa.squad import argument

    return argument(text)


def register(commands, train_commands) -> None:
    train = train_commands.add_parser("qa", help="train an extractive question-answering model on a SQuAD file")
    train.add_argument("--data", required=True, type=squad_argument,
                       help="SQuAD v1.1 or v2.0 JSON file, or squad (SQuAD 1.1 train, `tfxformers data fetch squad`)")
    train.add_argument("--eval-data", default=None, type=squad_argument,
                       help="SQuAD file or squad-dev (all 10,570 SQuAD 1.1 dev questions) to validate on "
                            "(default: a seeded 10%% of --data's passages; a file of one passage needs it)")
    train.add_argument("--encoder", default="minilm", help="minilm, a local BERT, RoBERTa, DistilBERT or ELECTRA "
                       "checkpoint directory, or a *ForQuestionAnswering one (its span head is kept and fine-tuned)")
    train.add_argument("--output", required=True, type=output_dir,
                       help="directory for the trained model and metrics.json; an unfinished run with the same "
                            "options resumes, anything else there is kept unless --overwrite")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --output")
    train.add_argument("--epochs", type=positive_int, default=2)
    train.add_argument("--batch-size", type=positive_int, default=16)
    train.add_argument("--learning-rate", type=positive_float, default=5e-5)
    train.add_argument("--max-seq-len", type=int_range(32, 4096), default=384, help="tokens per window (default 384)")
    train.add_argument("--doc-stride", type=nonnegative_int, default=None,
                       help="context tokens neighbouring windows share, at most half a window's context (default "
                            "128, lowered with a note for a short --max-seq-len)")
    train.add_argument("--max-question-tokens", type=positive_int, default=64)
    train.add_argument("--max-answer-len", type=positive_int, default=30, help="longest answer in tokens, for metrics")
    train.add_argument("--patience", type=nonnegative_int, default=2, help="early-stopping patience in epochs")
    train.add_argument("--limit-train", type=positive_int, default=None, help="use only the first N training questions")
    train.add_argument("--checkpoint-every-steps", type=nonnegative_int, default=200, help="0: every epoch only")
    train.add_argument("--warmup-ratio", type=probability(one=False), default=0.1,
                       help="share of the training (of the CPU budget, with --budget-cpu-minutes) the learning rate "
                            "warms up over before decaying linearly to 0 (default 0.1)")
    train.add_argument("--budget-cpu-minutes", type=positive_float, default=None,
                       help="stop after this much training CPU time (this process, all threads; validation excluded), "
                            "the learning-rate schedule fitted to it; the epochs still bound it (default: no budget)")
    train.add_argument("--buckets", type=positive_int, nargs="+", default=None,
                       help="padded lengths of training batches, increasing and ending at --max-seq-len "
                            "(default: 16 32 64 128 256 up to --max-seq-len)")
    train.add_argument("--seed", type=seed, default=42)
    train.set_defaults(func=run_train)

    answer = commands.add_parser("answer", help="answer a question from a context with a question-answering model")
    answer.add_argument("--model", required=True, help="a `tfxformers train qa` directory, or a Hugging Face "
                        "*ForQuestionAnswering checkpoint directory (config.json + model.safetensors + tokenizer)")
    answer.add_argument("--question", required=True)
    source = answer.add_mutually_exclusive_group(required=True)
    source.add_argument("--context-file", type=existing_file, help="UTF-8 text file holding the context")
    source.add_argument("--context", help="the context itself")
    answer.add_argument("--top-k", type=positive_int, default=1, help="answers to return, best first")
    answer.add_argument("--max-answer-len", type=positive_int, default=15, help="longest answer in tokens")
    answer.add_argument("--doc-stride", type=nonnegative_int, default=None,
                        help="context tokens neighbouring windows share (default: the model's)")
    answer.add_argument("--handle-impossible-answer", action="store_true",
                        help="allow the empty answer when the model prefers it")
    answer.add_argument("--json", action="store_true", help="print JSON")
    answer.set_defaults(func=run_answer)


def run_train(args: argparse.Namespace) -> int:
    from tfxformers.models.qa.train import QATrainConfig, train_qa

    config = QATrainConfig(data=args.data, output=args.output, eval_data=args.eval_data, encoder=args.encoder,
                           epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           max_seq_len=args.max_seq_len, doc_stride=args.doc_stride,
                           max_question_tokens=args.max_question_tokens, max_answer_len=args.max_answer_len,
                           patience=args.patience, limit_train=args.limit_train,
                           checkpoint_every_steps=args.checkpoint_every_steps, seed=args.seed,
                           warmup_ratio=args.warmup_ratio, budget_cpu_minutes=args.budget_cpu_minutes,
                           buckets=args.buckets)
    scores = train_qa(config, overwrite=args.overwrite)
    print(f"validation exact match {scores['exact_match']:.1f}, F1 {scores['f1']:.1f} ({scores['total']} questions) "
          f"after {scores['train_cpu_minutes']:.1f} training CPU minutes, {scores['examples_seen']:,} windows seen; "
          f"model and metrics.json in {args.output}")
    return 0


def read_context(path: str) -> str:
    from tfxformers.errors import UserError

    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise UserError(f"--context-file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def run_answer(args: argparse.Namespace) -> int:
    from tfxformers.errors import UserError
    from tfxformers.models.texts import BLANK, is_blank

    context = read_context(args.context_file) if args.context_file else args.context
    if is_blank(args.question):
        raise UserError(f"--question is empty: it {BLANK}")
    if is_blank(context):
        raise UserError("the context is empty" + (f" (--context-file {args.context_file})" if args.context_file else "")
                        + f": it {BLANK}")
    from tfxformers.models.qa import inference, model

    trained = model.load_qa(args.model)
    result = inference.answer_question(trained, args.question, context, top_k=args.top_k,
                                       max_answer_len=args.max_answer_len, doc_stride=args.doc_stride,
                                       handle_impossible_answer=args.handle_impossible_answer)
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    for a in result["answers"]:
        shown = a["answer"] if a["answer"] else "(no answer)"
        print(f"{a['score']:.3f}  [{a['start']}:{a['end']}]  {shown}")
    print(f"({result['context_tokens']} context tokens in {result['windows']} window"
          f"{'s' if result['windows'] != 1 else ''})", file=sys.stderr)
    return 0
