"""Run the question-answering pipeline on this machine and say what happened: ``run_qa_local(...)``, ``report_qa(...)``.

The shared ``pipeline.runner`` machinery (LocalDagRunner, ML Metadata in SQLite under the pipeline root,
Beam's DirectRunner, here in memory: ``QA_BEAM_DEFAULTS``, unless ``beam_args`` choose otherwise; TFX's log in
``<root>/logs/``, one line per component on the terminal), around ``create_qa_pipeline``. A run stopped by
its data (malformed questions, anomalies against the curated schema) is a ``UserError`` naming the
questions at fault and saying that nothing was trained or pushed. ``tfxformers demo --task qa`` calls
these two functions too::

    summary = run_qa_local(QaRunOptions(data="squad", limit_train=5000, budget_cpu_minutes=6), out)
    summary.evaluation["f1"], summary.evaluation["baseline_f1"], summary.pushed_path
    report_qa(summary, out)      # 0 when a blessed model is (or already was) pushed, 1 otherwise
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError, check_rules
from tfxformers.pipeline.mlmd import PipelineRunSummary
from tfxformers.pipeline.runner import (SCHEMA_DIR, beam_args_with_defaults, report_push_or_reasons, report_states,
                                        run_with_progress, summarize_evaluated_run)
from tfxformers.serving.layout import check_model_name

QA_SCHEMA = SCHEMA_DIR / "qa.pbtxt"
# Beam's DirectRunner in one process: measured here (2 cores, load 5) on SQuAD, ExampleGen + StatisticsGen
# took 31 s in memory against 107 s with two worker processes for 5,000 + 1,057 questions, and 56 s against
# 134 s for all 87,599 + 1,057 (each worker imports TensorFlow and the records cross processes). A user's
# --beam-args come after it, so theirs win.
QA_BEAM_DEFAULTS = ("--direct_running_mode=in_memory",)
DEFAULT_EPOCHS = 2


@dataclass
class QaRunOptions:
    data: str = "squad"
    eval_data: str | None = None          # None: squad-dev for squad, else held-out passages of data
    limit_train: int | None = None        # a seeded sample of N training questions
    eval_stride: int = 10                 # every K-th eval question (squad-dev: 1,057, bench_squad's subset)
    budget_cpu_minutes: float | None = None
    # The Trainer scores its Keras model on the first N eval questions (metrics.json); None: all of them.
    # QAEvaluator always scores every eval question; on the 1,057-question dev subset each pass is about
    # 80 s with MiniLM here, which a demo with 10 minutes can save.
    trainer_eval_questions: int | None = None
    encoder: str = "minilm"
    max_seq_len: int = 384
    doc_stride: int = 128
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-4
    name: str | None = None
    model_base: str = "serving_models"
    pipeline_root: str | None = None
    seed: int = 42
    beam_args: list[str] = field(default_factory=list)
    enable_cache: bool = True


@dataclass
class QaRunSummary(PipelineRunSummary):
    evaluation: dict | None = None        # QAEvaluator's record: exact_match, f1, baseline_f1, questions, reasons
    training_metrics: dict | None = None  # the Trainer's metrics.json
    questions: dict | None = None         # what was written for ExampleGen: sources, counts, seconds


def _source_exists(source: str, option: str) -> None:
    from tfxformers.models.qa import squad

    if source in squad.NAMES:
        return
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"{option} {source}: not a built-in SQuAD split ({', '.join(squad.NAMES)}) and no such file")


def _train_config(options: QaRunOptions):
    from tfxformers.models.qa.train import QATrainConfig

    return QATrainConfig(data=options.data, eval_data=options.eval_data, output="", encoder=options.encoder,
                         epochs=DEFAULT_EPOCHS if options.epochs is None else options.epochs, batch_size=options.batch_size,
                         learning_rate=options.learning_rate, max_seq_len=options.max_seq_len,
                         doc_stride=options.doc_stride, seed=options.seed,
                         budget_cpu_minutes=options.budget_cpu_minutes, limit_train=options.limit_train)


def check_options(options: QaRunOptions) -> str:
    """Every setting in its range (``train qa``'s rules) and the data found, before TFX starts; returns the
    model name."""
    from tfxformers.models.qa.train import check_config, resolve_encoder_dir

    name = check_model_name(options.name or "qa")
    check_rules((("--eval-stride", options.eval_stride, isinstance(options.eval_stride, int) and options.eval_stride >= 1,
                  "at least 1"),
                 ("trainer_eval_questions", options.trainer_eval_questions,
                  options.trainer_eval_questions is None or options.trainer_eval_questions >= 1, "at least 1")))
    check_config(_train_config(options))
    _source_exists(options.data, "--data")
    if options.eval_data is not None:
        _source_exists(options.eval_data, "--eval-data")
    resolve_encoder_dir(options.encoder)
    return name


def trainer_config(options: QaRunOptions, name: str, records) -> dict:
    train = _train_config(options)
    sample = f" (seeded sample of {records.counts['train']:,})" if records.counts["train"] < records.available["train"] else ""
    stride = f" (every {options.eval_stride}th question)" if options.eval_stride > 1 else ""
    return {"encoder": train.encoder, "epochs": train.epochs, "batch_size": train.batch_size,
            "learning_rate": train.learning_rate, "max_seq_len": train.max_seq_len, "doc_stride": train.doc_stride,
            "budget_cpu_minutes": train.budget_cpu_minutes, "seed": train.seed, "model_name": name,
            "trainer_eval_questions": options.trainer_eval_questions,
            # What the trained model records as its data (the Trainer gets the questions themselves).
            "data": records.data + sample, "eval_data": records.eval_data + stride}


def build_qa_local_pipeline(options: QaRunOptions):
    """(pipeline, pipeline_name, root, metadata_path, records) for a local run: data written, nothing run."""
    from tfxformers.pipeline.qa.data import write_squad_records

    name = check_options(options)
    root = Path(options.pipeline_root or Path("pipelines") / name).expanduser().resolve()
    records = write_squad_records(options.data, root / "data", eval_data=options.eval_data,
                                  limit_train=options.limit_train, eval_stride=options.eval_stride, seed=options.seed)
    # TFX (tens of seconds to import) only once the options and the data have passed their checks.
    from tfxformers.pipeline.qa.pipeline import create_qa_pipeline

    metadata_path = root / "metadata.sqlite"
    pipeline = create_qa_pipeline(
        pipeline_name=f"tfxformers-{name}", pipeline_root=str(root / "artifacts"), data_root=str(records.directory),
        schema_path=str(QA_SCHEMA), push_directory=str(Path(options.model_base).expanduser().resolve() / name),
        trainer_config=trainer_config(options, name, records), metadata_path=str(metadata_path),
        beam_pipeline_args=beam_args_with_defaults([*QA_BEAM_DEFAULTS, *options.beam_args]), enable_cache=options.enable_cache)
    return pipeline, f"tfxformers-{name}", root, metadata_path, records


def _stopped_message(exc: BaseException, records) -> str | None:
    """The readable reason a run stopped on its data, or None if it failed for another reason."""
    from tfxformers.pipeline.qa.components import MalformedQuestionsError

    if not isinstance(exc, MalformedQuestionsError):
        return None
    return (f"the questions of {records.data} / {records.eval_data} cannot be used, so the pipeline stopped "
            f"before training (nothing was trained or pushed):\n  {exc}\n  fix or remove these questions in the file")


def run_qa_local(options: QaRunOptions, out=None) -> QaRunSummary:
    """Run the QA pipeline with LocalDagRunner; raises UserError for bad options or data (before training)."""
    out = out or sys.stdout
    started = time.perf_counter()
    pipeline, pipeline_name, root, metadata_path, records = build_qa_local_pipeline(options)
    c, a = records.counts, records.available
    print(f"pipeline {pipeline_name}: {c['train']:,} of {a['train']:,} training questions from {records.data}, "
          f"{c['eval']:,} of {a['eval']:,} eval questions from {records.eval_data} (written in {records.seconds:.1f} s); "
          f"encoder {options.encoder}; root {root}", file=out, flush=True)
    print("QAEvaluator: blesses a model whose eval F1 is above the lexical baseline's and no worse than the latest "
          "blessed model's", file=out, flush=True)
    log_file = run_with_progress(pipeline, root, out, lambda exc: _stopped_message(exc, records))
    summary = QaRunSummary(root, metadata_path, log_file, time.perf_counter() - started)
    summary.questions = {**records.info, "seconds": round(records.seconds, 2)}
    return summarize_qa(metadata_path, pipeline_name, summary)


def summarize_qa(metadata_path: Path, pipeline_name: str, summary: QaRunSummary) -> QaRunSummary:
    from tfxformers.pipeline.qa.components import EVALUATION_FILE

    return summarize_evaluated_run(metadata_path, pipeline_name, summary, "QAEvaluator", EVALUATION_FILE)


def report_qa(summary: QaRunSummary, out=None) -> int:
    """Print what the run did; 0 when a blessed model is (or already was) pushed, 1 when nothing was."""
    out = out or sys.stdout
    report_states(summary, out)
    e = summary.evaluation
    if e:
        line = (f"eval EM {e['exact_match']:.1f} / F1 {e['f1']:.1f} on {e['questions']:,} questions (SQuAD v1.1 "
                f"metric) vs the lexical baseline's EM {e['baseline_exact_match']:.1f} / F1 {e['baseline_f1']:.1f}")
        if e.get("baseline_model_f1") is not None:
            line += f"; the latest blessed model's F1 {e['baseline_model_f1']:.1f}"
        print(line, file=out)
    m = summary.training_metrics
    if m:
        print(f"trained model: {m.get('train_questions', 0):,} questions, {m.get('train_steps', 0):,} steps, "
              f"{m.get('train_cpu_minutes', 0):.1f} training CPU minutes (stopped by {m.get('stopped_by', '?')}) "
              f"({summary.trained_dir})", file=out)
    return report_push_or_reasons(summary, e, out)
