"""``tfxformers pipeline run`` and ``tfxformers pipeline compile``: the TFX pipeline from the command line.

    tfxformers pipeline run --task sentiment --data rotten_tomatoes --mode partial
    tfxformers pipeline run --task lm --corpus emma --preset mini --name emma     # GPT-2 pretraining
    tfxformers pipeline run --task qa --data squad --limit-train 5000 --budget-cpu-minutes 6   # a SQuAD reader
    tfxformers pipeline run ... --beam-args="--direct_num_workers=1"        # passed to Beam as they are
    tfxformers pipeline compile --runner vertex --output pipeline.json --image IMAGE \\
        --pipeline-root gs://BUCKET/root --data-root gs://BUCKET/data --model-base gs://BUCKET/serving_models

TFX is imported only inside the handlers, so ``tfxformers --help`` stays fast. An option given on the
command line that the chosen ``--task`` does not read (``--mode`` with ``--task lm``, ``--corpus`` with a
classifier) is refused before anything runs (``check_task_options``): it would otherwise be ignored without
a word. Defaults never count, only what was typed.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from tfxformers.cli_types import output_dir, positive_float, positive_int, probability, seed
from tfxformers.models.classification.cli import student_layers
from tfxformers.models.multiworker import DISTRIBUTE_CHOICES
from tfxformers.pipeline.qa.options import add_qa_options, qa_options


CLASSIFIER_TASKS = ("sentiment", "classification")
# Options only some tasks read; every other option applies to every task. A task not named here (a typo) is
# the classifier runner's to refuse, so it gets the classifier tasks' rules.
TASK_OPTIONS = {
    **{o: CLASSIFIER_TASKS for o in ("--text-column", "--label-column", "--mode", "--trainable-layers", "--max-length",
                                     "--distribute", "--min-accuracy", "--max-accuracy-drop", "--teacher",
                                     "--unlabeled", "--temperature", "--alpha", "--student-layers")},
    "--data": (*CLASSIFIER_TASKS, "qa"), "--encoder": (*CLASSIFIER_TASKS, "qa"), "--seed": ("lm", "qa"),
    **{o: ("lm",) for o in ("--corpus", "--preset", "--vocab-size", "--block-size", "--lowercase", "--limit-chars")},
    **{o: ("qa",) for o in ("--eval-data", "--limit-train", "--eval-stride", "--budget-cpu-minutes", "--max-seq-len",
                            "--doc-stride")},
}
GIVEN = "given_options"  # the options typed on the command line (absent: none), set by _GivenAction


class _GivenAction:
    """Mixed into each option's argparse action: records the option in ``args.given_options`` when it is on
    the command line. argparse's defaults never call an action, so a default is never recorded."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        setattr(namespace, GIVEN, {*getattr(namespace, GIVEN, ()), max(self.option_strings, key=len)})


def _record_given(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # argparse has no public hook for "was this given"
        if action.option_strings and not isinstance(action, (_GivenAction, argparse._HelpAction)):
            action.__class__ = type(f"Given{type(action).__name__}", (_GivenAction, type(action)), {})


def check_task_options(args) -> None:
    """``UserError`` naming every option given that ``args.task`` would ignore."""
    task = args.task if args.task in ("lm", "qa") else args.task if args.task in CLASSIFIER_TASKS else "sentiment"
    ignored = sorted(o for o in getattr(args, GIVEN, ()) if task not in TASK_OPTIONS.get(o, (task,)))
    if ignored:
        from tfxformers.errors import UserError

        uses = {o: ", ".join(f"--task {t}" for t in TASK_OPTIONS[o]) for o in ignored}
        raise UserError(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to --task {args.task} "
                        f"(only to {'; '.join(f'{o}: {uses[o]}' for o in ignored)}); leave "
                        f"{'it' if len(ignored) == 1 else 'them'} out")


def register(commands, train_commands) -> None:
    pipeline = commands.add_parser("pipeline", help="the TFX pipeline: data -> validated -> trained -> evaluated -> pushed")
    sub = pipeline.add_subparsers(dest="pipeline_command", metavar="ACTION")
    pipeline.set_defaults(func=lambda args: (pipeline.print_help(), 2)[1])

    run = sub.add_parser("run", help="run the pipeline here (LocalDagRunner, SQLite ML Metadata, Beam DirectRunner)")
    _common_options(run)
    add_qa_options(run)
    run.add_argument("--model-base", default="serving_models", type=output_dir,
                     help="serving model base; a blessed model is pushed to MODEL_BASE/NAME/<next version>")
    run.add_argument("--pipeline-root", default=None, type=output_dir, help="artifacts, ML Metadata and logs (default: pipelines/NAME)")
    run.add_argument("--no-cache", action="store_true", help="run every component even if a cached result exists")
    run.set_defaults(func=_run)
    _record_given(run)

    comp = sub.add_parser("compile", help="compile the pipeline for another orchestrator (Kubeflow Pipelines v2 / Vertex AI)")
    _common_options(comp)
    comp.add_argument("--runner", choices=["vertex", "kubeflow-v2"], default="vertex")
    comp.add_argument("--output", default="pipeline.json", type=_output_file, help="the pipeline spec to write")
    comp.add_argument("--image", default="tfxformers-pipeline:latest", help="the image built from Dockerfile.pipeline")
    comp.add_argument("--pipeline-root", default="gs://YOUR_BUCKET/tfxformers/pipeline_root")
    comp.add_argument("--data-root", default=None,
                      help="the split CSVs as the containers see them (default: pipelines/NAME/data, for a local try)")
    comp.add_argument("--model-base", default="gs://YOUR_BUCKET/tfxformers/serving_models")
    comp.add_argument("--source-root", default="/opt/tfxformers", help="where Dockerfile.pipeline puts the repository")
    comp.set_defaults(func=_compile)
    _record_given(comp)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="sentiment",
                        help="sentiment (binary, curated schema), classification, lm (GPT-2 pretraining on --corpus) "
                             "or qa (question answering, `pipeline run` only)")
    parser.add_argument("--data", default=None, help="a built-in data set or a CSV / JSONL file (default rotten_tomatoes; "
                                                     "--task qa: squad or a SQuAD-format JSON file)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--mode", default="partial",
                        help="partial (default: the top --trainable-layers layers train on cached outputs of the "
                             "lower ones), finetune, frozen (head only on cached encoder outputs; fastest, but "
                             "below the TF-IDF baseline on Rotten Tomatoes), hub, or distill (--encoder learns "
                             "the soft labels of --teacher; the options of `train classifier --mode distill`)")
    parser.add_argument("--trainable-layers", type=int, default=None,
                        help="partial mode: how many top encoder layers train (default: the top half, 3 of MiniLM's 6)")
    distill = parser.add_argument_group("--mode distill (as `tfxformers train classifier --mode distill`)")
    distill.add_argument("--teacher", default=None, metavar="RUN_DIR", help="a trained classifier run directory")
    distill.add_argument("--unlabeled", default=None, metavar="FILE", help="in-domain texts without labels, one a line")
    distill.add_argument("--temperature", type=positive_float, default=None, help="default 2")
    distill.add_argument("--alpha", type=probability(), default=None, help="weight of the soft term, default 0.5")
    distill.add_argument("--student-layers", type=student_layers, default=None, metavar="I,J,...",
                         help="the encoder blocks the student keeps, e.g. 0,2,4 (default: all)")
    parser.add_argument("--encoder", default="minilm", help="'minilm' or a local BERT / RoBERTa / DistilBERT / ELECTRA checkpoint directory (safetensors or tf_model.h5, base or task-head; Hub ids must be downloaded first)")
    parser.add_argument("--name", default=None, help="the served model's name (default: the task)")
    parser.add_argument("--epochs", type=int, default=None, help="default 15 for frozen, 1 for partial, 2 for --task qa, 3 otherwise")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (16 for --task lm)")
    parser.add_argument("--max-length", type=int, default=128)
    # Checked here: otherwise a bad rate is only refused by the Trainer, minutes into the run.
    parser.add_argument("--learning-rate", type=positive_float, default=None)
    parser.add_argument("--distribute", default="none", choices=DISTRIBUTE_CHOICES,
                        help="tf.distribute strategy inside the Trainer's run_fn: mirrored = every GPU of the "
                             "Trainer's machine, multi-worker = the workers in TF_CONFIG (set by the runner)")
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help="the Evaluator's absolute threshold (default: for --task sentiment, the eval accuracy "
                             "of TF-IDF + logistic regression fitted on the train split; 0.7 otherwise)")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.0,
                        help="how much accuracy may fall against the latest blessed model (no-regression threshold)")
    lm = parser.add_argument_group("--task lm (GPT-2 pretraining; the recipe of `tfxformers train gpt2`)")
    lm.add_argument("--corpus", default="emma", help="emma (or another Austen novel, austen), a .txt file or a directory")
    lm.add_argument("--preset", default="mini", help="model size: tiny, mini, small-6, small")
    lm.add_argument("--vocab-size", type=positive_int, default=8000, help="byte-level BPE vocabulary (trained on the train split)")
    lm.add_argument("--block-size", type=positive_int, default=128, help="tokens per training window")
    lm.add_argument("--lowercase", action="store_true")
    lm.add_argument("--limit-chars", type=positive_int, default=None, help="train on the first N characters only")
    lm.add_argument("--seed", type=seed, default=42)
    parser.add_argument("--beam-args", default="", help='Beam pipeline options, passed through; write them after "=": --beam-args="--runner=FlinkRunner --flink_master=HOST:8081"')


def _output_file(text: str) -> str:
    """A file to write: not a directory, and not under an existing file (checked before minutes of compiling)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give the file to write")
    output_dir(str(path.parent))  # its ArgumentTypeError names the file in the way
    return text


def _lm_options(args):
    from tfxformers.pipeline.lm.runner import LmRunOptions

    return LmRunOptions(
        corpus=args.corpus, name=args.name, model_base=args.model_base, pipeline_root=getattr(args, "pipeline_root", None),
        preset=args.preset, vocab_size=args.vocab_size, block_size=args.block_size, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, lowercase=args.lowercase,
        limit_chars=args.limit_chars, seed=args.seed, beam_args=shlex.split(args.beam_args or ""),
        enable_cache=not getattr(args, "no_cache", False))


def _options(args):
    from tfxformers.pipeline.classifier.runner import RunOptions

    return RunOptions(
        task=args.task, data=args.data or "rotten_tomatoes", mode=args.mode, encoder=args.encoder, name=args.name,
        model_base=args.model_base, pipeline_root=getattr(args, "pipeline_root", None),
        text_column=args.text_column, label_column=args.label_column, epochs=args.epochs,
        batch_size=args.batch_size or 32, max_length=args.max_length, learning_rate=args.learning_rate,
        trainable_layers=args.trainable_layers, distribute=args.distribute, min_accuracy=args.min_accuracy,
        teacher=args.teacher, unlabeled=args.unlabeled, temperature=args.temperature, alpha=args.alpha,
        student_layers=args.student_layers,
        max_accuracy_drop=args.max_accuracy_drop,
        beam_args=shlex.split(args.beam_args or ""), enable_cache=not getattr(args, "no_cache", False),
    )


def _run(args) -> int:
    check_task_options(args)
    if args.task == "qa":
        from tfxformers.pipeline.qa.runner import report_qa, run_qa_local

        return report_qa(run_qa_local(qa_options(args)))
    if args.task == "lm":
        from tfxformers.pipeline.lm.runner import report_lm, run_lm_local

        return report_lm(run_lm_local(_lm_options(args)))
    from tfxformers.pipeline.classifier.runner import report, run_local

    return report(run_local(_options(args)))


def _compile(args) -> int:
    from pathlib import Path

    from tfxformers.pipeline.classifier.runner import compile_for_vertex

    check_task_options(args)
    if args.task in ("lm", "qa"):
        from tfxformers.errors import UserError

        raise UserError(f"pipeline compile supports the classification tasks only; run --task {args.task} with "
                        "`pipeline run`")
    options = _options(args)
    name = options.name or options.task
    data_root = args.data_root
    if data_root is None:
        from tfxformers.pipeline.classifier.data import write_split_csvs

        data_root = str(write_split_csvs(options.data, Path("pipelines") / name / "data",
                                         options.text_column, options.label_column).directory.resolve())
    path = compile_for_vertex(options, args.output, image=args.image, pipeline_root=args.pipeline_root,
                              data_root=data_root, model_base=args.model_base, source_root=args.source_root)
    print(f"wrote {path} (image {args.image}); submit it with Vertex AI Pipelines or any Kubeflow Pipelines v2 backend")
    return 0
