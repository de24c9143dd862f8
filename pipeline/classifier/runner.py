"""Run the classifier's pipeline on this machine and say what happened: ``run_local(...)``, ``report(...)``,
and compile it for Kubeflow Pipelines v2 / Vertex AI: ``compile_for_vertex(...)``.

``run_local`` checks the options, prepares the split CSVs, works out the Evaluator's threshold, builds the
pipeline with ``create_pipeline`` and runs it through the shared ``pipeline.runner.run_with_progress``
(LocalDagRunner, SQLite ML Metadata, one terminal line per component), then reads back from ML Metadata
which components ran or came from the cache, the test metrics, and the pushed version or why nothing was
pushed.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.models.buckets import MAX_LENGTH_RANGE
from tfxformers.pipeline.mlmd import PipelineRunSummary, summarize_run
from tfxformers.pipeline.runner import (SCHEMA_DIR, anomaly_lines, beam_args_with_defaults, report_pushed,
                                        report_states, run_with_progress)
from tfxformers.serving.layout import check_model_name

TASKS = {
    "sentiment": "sentiment.pbtxt",          # binary labels (0/1), e.g. rotten_tomatoes
    "classification": "classification.pbtxt",  # any number of classes, e.g. bbc_news, tweets
}


def schema_path(task: str, root: Path = SCHEMA_DIR) -> Path:
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return root / TASKS[task]


@dataclass
class RunSummary(PipelineRunSummary):
    baseline_accuracy: float | None = None   # TF-IDF + LR on the eval split (the sentiment task's threshold)
    min_accuracy: float | None = None        # the Evaluator's absolute threshold this run used
    test_metrics: dict | None = None
    validation_failures: list[str] = field(default_factory=list)


def summarize(metadata_path: Path, pipeline_name: str, summary: RunSummary) -> RunSummary:
    record = summarize_run(metadata_path, pipeline_name, summary, "Evaluator")
    if record.has_trainer_run:
        summary.test_metrics = record.trainer_metrics
    if record.evaluator_outputs.get("evaluation") and summary.blessed is False:
        summary.validation_failures = validation_failures(record.evaluator_outputs["evaluation"][0].uri)
    return summary


def validation_failures(evaluation_uri: str) -> list[str]:
    """Readable lines for the Evaluator's failed thresholds."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            name = failure.metric_key.name
            value = failure.metric_value
            number = value.double_value.value if value.HasField("double_value") else value
            lines.append(f"{name} = {number:.4f} fails {failure.message or 'its threshold'}"
                         if isinstance(number, float) else f"{name}: {failure.message}")
    return lines


def _anomalies_message(metadata_path: Path, pipeline_name: str) -> str | None:
    problems = anomaly_lines(metadata_path, pipeline_name)
    if not problems:
        return None
    return ("the data does not match the curated schema, so the pipeline stopped before training "
            "(nothing was pushed):\n  " + "\n  ".join(problems))


@dataclass
class RunOptions:
    task: str = "sentiment"
    data: str = "rotten_tomatoes"
    mode: str = "partial"
    encoder: str = "minilm"
    name: str | None = None
    model_base: str = "serving_models"
    pipeline_root: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    epochs: int | None = None
    batch_size: int = 32
    max_length: int = 128
    learning_rate: float | None = None
    trainable_layers: int | None = None   # partial mode: top encoder layers that train (None: the library default)
    # distill mode (models.classification.distill): None = not given (the library's defaults T 2, alpha 0.5)
    teacher: str | None = None
    unlabeled: str | None = None
    temperature: float | None = None
    alpha: float | None = None
    student_layers: list[int] | None = None
    distribute: str = "none"
    # None: the TF-IDF baseline's accuracy on the eval split for the sentiment task, 0.7 for other tasks.
    min_accuracy: float | None = None
    max_accuracy_drop: float = 0.0
    beam_args: list[str] = field(default_factory=list)
    enable_cache: bool = True


# Frozen mode trains only a head on cached encoder outputs: epochs cost seconds. Partial mode's count is the
# one bench/bench_partial.py measured (docs/benchmarks.md).
DEFAULT_EPOCHS = {"frozen": 15, "partial": 1}
DEFAULT_MIN_ACCURACY = 0.7


def default_epochs(mode: str) -> int:
    return DEFAULT_EPOCHS.get(mode, 3)


def evaluator_threshold(options: RunOptions, data_root: str | os.PathLike) -> tuple[float, float | None]:
    """(absolute accuracy threshold, TF-IDF baseline accuracy or None) for the Evaluator.

    For the sentiment task, unless ``--min-accuracy`` is given, the threshold is the accuracy of TF-IDF +
    logistic regression fitted on the train split and scored on the same eval split the Evaluator uses
    (read back from the split CSVs the pipeline ingests): a transformer that does not beat a bag of words
    is not blessed. TFMA fixes thresholds when the pipeline is built, so this runs (a few seconds) before.
    """
    if options.min_accuracy is not None:
        return options.min_accuracy, None
    if options.task != "sentiment":
        return DEFAULT_MIN_ACCURACY, None
    from tfxformers.models.classification.baseline import fit_tfidf_baseline
    from tfxformers.pipeline.classifier.data import read_split_csv

    train_texts, train_labels = read_split_csv(data_root, "train")
    val_texts, val_labels = read_split_csv(data_root, "validation")
    try:
        baseline = fit_tfidf_baseline(train_texts, train_labels, val_texts, val_labels)
    except ValueError:  # no word occurs twice, or a single class: there is no baseline to beat
        return DEFAULT_MIN_ACCURACY, None
    return baseline.validation_accuracy, baseline.validation_accuracy


def _check_options(options: RunOptions) -> None:
    from tfxformers.models.classification.train import MODES

    if options.mode not in MODES:
        raise UserError(f"unknown mode {options.mode!r}; choose one of {', '.join(MODES)}")
    if options.trainable_layers is not None and options.mode != "partial":
        raise UserError("--trainable-layers applies to --mode partial only")
    _check_distill_options(options)
    if options.trainable_layers is not None and options.trainable_layers < 1:
        raise UserError(f"--trainable-layers must be at least 1, got {options.trainable_layers}")
    schema_path(options.task)
    if options.min_accuracy is not None and not 0.0 <= options.min_accuracy <= 1.0:
        raise UserError("--min-accuracy must be between 0 and 1")
    if options.max_accuracy_drop < 0:
        raise UserError("--max-accuracy-drop must be zero or positive")
    # The same limits as `train classifier`, checked here so that a typo fails now, not in the Trainer.
    if (options.epochs is not None and options.epochs < 1) or options.batch_size < 1:
        raise UserError("--epochs and --batch-size must be at least 1")
    low, high = MAX_LENGTH_RANGE
    if not low <= options.max_length <= high:
        raise UserError(f"--max-length must be between {low} and {high}")
    check_model_name(options.name or options.task)


DISTILL_FIELDS = ("teacher", "unlabeled", "temperature", "alpha", "student_layers")


def _check_distill_options(options: RunOptions) -> None:
    """The rules of `train classifier --mode distill` (one function checks both), before any component runs."""
    from tfxformers.models.classification import distill
    from tfxformers.models.classification.train import ClassifierTrainConfig

    distill.check_options(ClassifierTrainConfig(data=options.data, output="", mode=options.mode,
                                                **_distill_settings(options)))
    if options.teacher and "://" not in options.teacher:  # gs:// is read by the Trainer's container
        from tfxformers.models.artifacts import read_info

        try:  # a teacher the Trainer could not read is refused now, not minutes into the run
            read_info(options.teacher, "classifier")
        except UserError as exc:
            raise UserError(f"--teacher {options.teacher}: {exc}") from None


def _distill_settings(options: RunOptions) -> dict:
    """The distill options given, paths made absolute (the Trainer may run elsewhere than this directory)."""
    settings = {k: getattr(options, k) for k in DISTILL_FIELDS if getattr(options, k) is not None}
    for key in ("teacher", "unlabeled"):
        if key in settings and "://" not in settings[key]:
            settings[key] = str(Path(settings[key]).expanduser().resolve())
    return settings


def build_local_pipeline(options: RunOptions):
    """(pipeline, pipeline_name, paths) for a local run: data prepared, nothing run yet."""
    from tfxformers.models.classification.train import resolve_encoder_dir
    from tfxformers.pipeline.classifier.data import write_split_csvs

    _check_options(options)
    if options.distribute == "multi-worker":
        # LocalDagRunner runs the Trainer once, here: its MultiWorkerMirroredStrategy would wait forever
        # for workers nobody starts (docs/scale_out.md).
        raise UserError("pipeline run --distribute multi-worker: a local run has one Trainer process, and "
                        "multi-worker needs every worker to run it; use `pipeline compile` for Vertex AI / "
                        "Kubeflow, or `tfxformers train classifier --distribute multi-worker` on each worker")
    name = options.name or options.task
    pipeline_name = f"tfxformers-{name}"
    root = Path(options.pipeline_root or Path("pipelines") / name).expanduser().resolve()
    # Fails now, not in the Trainer, if the weights are missing (or the encoder is a Hub id, unreachable here).
    encoder_dir = resolve_encoder_dir(options.encoder)
    encoder = options.encoder if options.encoder == "minilm" else str(encoder_dir.expanduser().resolve())
    if options.mode == "partial" and options.trainable_layers is not None:
        from tfxformers.models import encoders
        from tfxformers.models.classification.partial import check_trainable_layers

        check_trainable_layers(options.trainable_layers, encoders.num_layers(encoders.read_config(encoder_dir)))
    prepared = write_split_csvs(options.data, root / "data", options.text_column, options.label_column)
    min_accuracy, baseline = evaluator_threshold(options, prepared.directory)
    metadata_path = root / "metadata.sqlite"
    from tfxformers.pipeline.classifier.pipeline import create_pipeline

    pipeline = create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=str(root / "artifacts"),
        data_root=str(prepared.directory),
        schema_path=str(schema_path(options.task)),
        push_directory=str(Path(options.model_base).expanduser().resolve() / name),
        label_names=prepared.label_names,
        trainer_config=trainer_config(options, encoder, name),
        metadata_path=str(metadata_path),
        min_accuracy=min_accuracy,
        max_accuracy_drop=options.max_accuracy_drop,
        beam_pipeline_args=beam_args_with_defaults(options.beam_args),
        enable_cache=options.enable_cache,
    )
    return pipeline, pipeline_name, root, metadata_path, prepared, min_accuracy, baseline


def trainer_config(options: RunOptions, encoder: str, name: str) -> dict:
    return {"mode": options.mode, "encoder": encoder, "model_name": name,
            "epochs": options.epochs or default_epochs(options.mode), "batch_size": options.batch_size,
            "max_length": options.max_length, "learning_rate": options.learning_rate,
            "distribute": options.distribute, "trainable_layers": options.trainable_layers,
            **_distill_settings(options)}


def run_local(options: RunOptions, out=None) -> RunSummary:
    """Run the pipeline with LocalDagRunner; raises UserError for bad data (before training)."""
    out = out or sys.stdout
    started = time.perf_counter()
    pipeline, pipeline_name, root, metadata_path, prepared, min_accuracy, baseline = build_local_pipeline(options)
    print(f"pipeline {pipeline_name}: {prepared.name} ({prepared.counts['train']} train / "
          f"{prepared.counts['validation']} eval / {prepared.counts['test']} test, labels {prepared.label_names}), "
          f"mode {options.mode}; root {root}", file=out, flush=True)
    print(f"Evaluator threshold: eval accuracy >= {min_accuracy:.4f}"
          + (" (TF-IDF + logistic regression's eval accuracy: the model must beat a bag of words)"
             if baseline is not None else ""), file=out, flush=True)
    log_file = run_with_progress(pipeline, root, out, lambda exc: _anomalies_message(metadata_path, pipeline_name))
    summary = RunSummary(root, metadata_path, log_file, time.perf_counter() - started,
                         baseline_accuracy=baseline, min_accuracy=min_accuracy)
    return summarize(metadata_path, pipeline_name, summary)


def report(summary: RunSummary, out=None) -> int:
    """Print what the run did; 0 when a blessed model is (or already was) pushed, 1 when nothing was."""
    out = out or sys.stdout
    report_states(summary, out)
    if summary.baseline_accuracy is not None:
        print(f"Evaluator threshold {summary.min_accuracy:.4f} = TF-IDF + logistic regression's eval accuracy",
              file=out)
    if summary.test_metrics:
        m = summary.test_metrics
        print(f"trained model: test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} on "
              f"{m['examples']} examples ({summary.trained_dir})", file=out)
    if report_pushed(summary, out):
        return 0
    reasons = "; ".join(summary.validation_failures) or "the Evaluator did not bless it"
    print(f"NOT pushed: the model did not pass the Evaluator's thresholds: {reasons}", file=out)
    return 1


def compile_for_vertex(options: RunOptions, output: str, *, image: str, pipeline_root: str, data_root: str,
                       model_base: str, source_root: str = "/opt/tfxformers") -> Path:
    """Compile the same pipeline for Kubeflow Pipelines v2 / Vertex AI into a JSON pipeline spec.

    Paths are those the containers see: ``pipeline_root``, ``data_root`` (the split CSVs, written by
    ``tfxformers pipeline run`` or ``pipeline.classifier.data.write_split_csvs``) and ``model_base`` are usually
    ``gs://`` URIs; the curated schema is read from ``source_root`` inside the image (Dockerfile.pipeline).
    """
    import tempfile

    from tfx import v1 as tfx

    from tfxformers.pipeline.classifier.data import read_label_names
    from tfxformers.pipeline.classifier.pipeline import create_pipeline

    _check_options(options)
    name = options.name or options.task
    label_names = options_label_names(options, data_root, read_label_names)
    in_image_schema = f"{source_root.rstrip('/')}/pipeline/schema/{TASKS[options.task]}"
    pipeline = create_pipeline(
        pipeline_name=f"tfxformers-{name}",
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=in_image_schema,
        push_directory=f"{model_base.rstrip('/')}/{name}",
        label_names=label_names,
        trainer_config=trainer_config(options, options.encoder, name),
        metadata_path=None,
        min_accuracy=options.min_accuracy if options.min_accuracy is not None else _compiled_threshold(options, data_root),
        max_accuracy_drop=options.max_accuracy_drop,
        beam_pipeline_args=list(options.beam_args),
        enable_cache=options.enable_cache,
    )
    output_path = Path(output).expanduser().resolve()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(output_path.parent), output_filename=output_path.name)
    with tempfile.TemporaryDirectory():
        runner.run(pipeline, write_out=True)
    return output_path


def options_label_names(options: RunOptions, data_root: str, read_label_names) -> list[str]:
    """Label names for a compiled pipeline: from a local data root's labels.json, else from the data set."""
    if os.path.isdir(data_root):
        return read_label_names(data_root)
    from tfxformers.models.data.classification import load_classification

    return load_classification(options.data, options.text_column, options.label_column).label_names


def _compiled_threshold(options: RunOptions, data_root: str) -> float:
    """The threshold for a compiled pipeline: the baseline from a local data root, else from the data set."""
    if os.path.isdir(data_root):
        return evaluator_threshold(options, data_root)[0]
    if options.task != "sentiment":
        return DEFAULT_MIN_ACCURACY
    from tfxformers.models.classification.baseline import tfidf_baseline_for
    from tfxformers.models.data.classification import load_classification

    return tfidf_baseline_for(load_classification(options.data, options.text_column, options.label_column)
                              ).validation_accuracy
