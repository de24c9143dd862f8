"""``pipeline run --task qa``'s own options, kept beside the QA pipeline so ``pipeline_cli`` stays small.

``add_qa_options(parser)`` adds the ``--task qa`` argument group; ``qa_options(args)`` turns the parsed
arguments (these and the shared ``--data``, ``--encoder``, ``--epochs``, ``--batch-size``,
``--learning-rate``, ``--name``, ``--seed``, ``--model-base``, ``--pipeline-root``, ``--beam-args``) into a
``runner.QaRunOptions``. Ranges are checked by argparse types here (one ``error:`` line, exit 2) and again by
``runner.check_options`` for callers that build the options themselves.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from tfxformers.cli_types import int_range, nonnegative_int, positive_float, positive_int

DEFAULT_DATA = "squad"


def add_qa_options(parser: argparse.ArgumentParser) -> None:
    qa = parser.add_argument_group("--task qa (extractive question answering on SQuAD-format JSON; --data squad "
                                   "or a FILE.json, default squad)")
    qa.add_argument("--eval-data", default=None,
                    help="squad-dev or a SQuAD-format FILE.json (default: squad-dev for --data squad, else a seeded "
                         "tenth of --data's passages)")
    qa.add_argument("--limit-train", type=positive_int, default=None, help="train on a seeded sample of N questions")
    qa.add_argument("--eval-stride", type=positive_int, default=10,
                    help="evaluate every K-th eval question (squad-dev: 1,057 questions, bench_squad's subset)")
    qa.add_argument("--budget-cpu-minutes", type=positive_float, default=None,
                    help="stop training after this much CPU time, the learning rate warmed up and decayed over it")
    qa.add_argument("--max-seq-len", type=int_range(32, 4096), default=384, help="tokens per window")
    qa.add_argument("--doc-stride", type=nonnegative_int, default=None,
                    help="context tokens shared by neighbouring windows, at most half a window's context (default "
                         "128, lowered with a note for a short --max-seq-len)")


def doc_stride(args) -> int:
    """``--doc-stride`` if given (refused here, not minutes later in the Trainer, when windows of
    ``--max-seq-len`` can never share that much), else the default that fits, with a note when lowered."""
    from tfxformers.models.qa import features

    if args.doc_stride is not None:
        features.check_doc_stride(args.doc_stride, args.max_seq_len)
        return args.doc_stride
    stride, note = features.default_doc_stride(args.max_seq_len)
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    return stride


def qa_options(args):
    from tfxformers.pipeline.qa.runner import QaRunOptions

    return QaRunOptions(
        data=args.data or DEFAULT_DATA, eval_data=args.eval_data, limit_train=args.limit_train,
        eval_stride=args.eval_stride, budget_cpu_minutes=args.budget_cpu_minutes, encoder=args.encoder,
        max_seq_len=args.max_seq_len, doc_stride=doc_stride(args), epochs=args.epochs,
        batch_size=32 if args.batch_size is None else args.batch_size,
        learning_rate=1e-4 if args.learning_rate is None else args.learning_rate, name=args.name,
        model_base=args.model_base, pipeline_root=getattr(args, "pipeline_root", None), seed=args.seed,
        beam_args=shlex.split(args.beam_args or ""), enable_cache=not getattr(args, "no_cache", False))
