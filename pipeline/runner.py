"""Running a pipeline on this machine and saying what happened, for every task's runner.

``run_with_progress`` runs a built pipeline with ``LocalDagRunner`` (ML Metadata in SQLite under the
pipeline root, Beam's DirectRunner in multi-processing mode unless ``beam_args_with_defaults``' caller
chose another runner). TFX's own INFO logging goes to ``<pipeline root>/logs/run-<time>.log``; the terminal
shows one line when each component starts and one when it finishes (with its time, or "cached").
``report_states`` / ``report_pushed`` print the lines every run's report starts and ends with. The tasks'
runners (``classifier.runner``, ``lm.runner``) build their pipeline, call these and add their evaluator's
results.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.pipeline.mlmd import PipelineRunSummary

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
DEFAULT_BEAM_ARGS = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def beam_args_with_defaults(extra: list[str] | None) -> list[str]:
    """DirectRunner in multi-processing mode unless the user picked a runner; the user's flags win."""
    extra = list(extra or [])
    runner = "DirectRunner"
    for i, arg in enumerate(extra):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(extra):
            runner = extra[i + 1]
    defaults = list(DEFAULT_BEAM_ARGS) if runner in ("DirectRunner", "direct") else []
    return defaults + extra



class _ProgressHandler(logging.Handler):
    """Turns TFX's "Component X is running / finished" log records into short timed lines."""

    def __init__(self, out):
        super().__init__(logging.INFO)
        self.out = out
        self.started: dict[str, float] = {}
        self.cached: set[str] = set()
        self.current: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        stamp = time.strftime("%H:%M:%S")
        if message.startswith("Component ") and message.endswith(" is running."):
            self.current = message[len("Component "):-len(" is running.")]
            self.started[self.current] = time.perf_counter()
            print(f"[{stamp}] {self.current} ...", file=self.out, flush=True)
        elif message.startswith("Component ") and message.endswith(" is finished."):
            node = message[len("Component "):-len(" is finished.")]
            took = time.perf_counter() - self.started.get(node, time.perf_counter())
            how = "cached" if node in self.cached else f"done in {took:.1f} s"
            print(f"[{stamp}] {node} {how}", file=self.out, flush=True)
        elif message.startswith("A cached execution") and self.current:
            self.cached.add(self.current)


@contextlib.contextmanager
def _stderr_to(log_file: Path):
    """File descriptor 2 appended to ``log_file`` while the run lasts (not under ``--verbose``).

    Beam's DirectRunner starts its worker processes with this process's descriptors, and each of them
    imports TensorFlow without ``tfxformers``' quiet import: TensorFlow 2.21 writes its start-up lines
    through absl before any log level is read (tensorflow issue 100442), so no environment variable keeps
    them off the terminal. In the log they stay available; a failing worker still fails the run with its
    Python exception, raised after the descriptor is back.
    """
    import tfxformers

    if tfxformers.verbose_requested():
        yield
        return
    sys.stderr.flush()
    target = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    saved = os.dup(2)
    os.dup2(target, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


@contextlib.contextmanager
def _quiet_tfx_logging(log_file: Path, out):
    """Every log record, and whatever Beam's workers write to stderr, to ``log_file``; only component
    progress to ``out``."""
    from absl import logging as absl_logging

    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    tf_logger = logging.getLogger("tensorflow")
    saved_env = {k: os.environ.get(k) for k in ("PYTHONWARNINGS", "TF_CPP_MIN_LOG_LEVEL")}
    saved = (root.handlers[:], root.level, absl_logging.get_verbosity(), tf_logger.handlers[:],
             tf_logger.propagate)
    # Beam's worker processes inherit these: their Python-version and deprecation warnings, and the
    # "Unable to register cuDNN factory" lines each TensorFlow import prints, say nothing a user can act
    # on (a failing worker still fails the run with its Python exception).
    os.environ["PYTHONWARNINGS"] = "ignore"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    tf_logger.handlers = []
    tf_logger.propagate = True
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    progress = _ProgressHandler(out)
    root.handlers = [file_handler, progress]
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.captureWarnings(True)
    try:
        with _stderr_to(log_file):
            yield progress
    finally:
        logging.captureWarnings(False)
        root.setLevel(saved[1])
        root.handlers = saved[0]
        absl_logging.set_verbosity(saved[2])
        tf_logger.handlers, tf_logger.propagate = saved[3], saved[4]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        file_handler.close()


def run_with_progress(pipeline, root: Path, out, stopped_message) -> Path:
    """Run ``pipeline`` with LocalDagRunner, TFX's log in ``root/logs/``; returns that log file.

    ``stopped_message(exc)`` is the readable reason a failed run stopped on its data (raised as a
    UserError), or None when it failed for another reason.
    """
    from tfx import v1 as tfx

    log_file = root / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with _quiet_tfx_logging(log_file, out):
        try:
            tfx.orchestration.LocalDagRunner().run(pipeline)
        except Exception as exc:
            message = stopped_message(exc)
            if message:
                raise UserError(message) from None
            if isinstance(exc, UserError):
                raise
            raise RuntimeError(f"the pipeline failed: {exc} (full log: {log_file})") from exc
    return log_file


def report_states(summary: PipelineRunSummary, out) -> None:
    """The first line of every run's report: how long it took, which components ran or came from the cache."""
    # The resolver is a metadata lookup that runs every time; it is not counted as a component.
    states = {n: s for n, s in summary.states.items() if n != "latest_blessed_model_resolver"}
    ran = sorted(n for n, s in states.items() if s == "COMPLETE")
    cached = sorted(n for n, s in states.items() if s == "CACHED")
    print(f"pipeline finished in {summary.seconds:.1f} s: {len(ran)} components ran, {len(cached)} came from "
          f"the cache{' (' + ', '.join(cached) + ')' if cached else ''}", file=out)


def report_pushed(summary: PipelineRunSummary, out) -> bool:
    """Print the pushed version, if the run pushed one (or found it pushed before); True if so."""
    if not summary.pushed:
        return False
    again = (" (this model was pushed by an earlier run; no new version)"
             if summary.already_pushed or summary.states.get("Pusher") == "CACHED" else "")
    print(f"pushed version {summary.pushed_version} to {summary.pushed_path}{again}", file=out)
    return True


def report_push_or_reasons(summary: PipelineRunSummary, evaluation: dict | None, out) -> int:
    """The closing line of a run whose evaluator is one of ours: 0 when a blessed model is (or already was)
    pushed, else "NOT pushed" with the evaluator's reasons and 1."""
    if report_pushed(summary, out):
        return 0
    reasons = "; ".join((evaluation or {}).get("reasons") or []) or "the evaluator did not bless it"
    print(f"NOT pushed: {reasons}", file=out)
    return 1


def summarize_evaluated_run(metadata_path: Path, pipeline_name: str, summary, evaluator_id: str,
                            evaluation_file: str):
    """``summarize_run`` plus what a run with one of our evaluator components adds: the Trainer's
    ``metrics.json`` into ``summary.training_metrics`` and the evaluator's record into ``summary.evaluation``."""
    import json

    from tfxformers.pipeline.mlmd import summarize_run

    record = summarize_run(metadata_path, pipeline_name, summary, evaluator_id)
    if record.has_trainer_run:
        summary.training_metrics = record.trainer_metrics
    if record.evaluator_outputs.get("evaluation"):
        path = Path(record.evaluator_outputs["evaluation"][0].uri) / evaluation_file
        summary.evaluation = json.loads(path.read_text()) if path.is_file() else None
    return summary


def anomaly_lines(metadata_path: Path, pipeline_name: str) -> list[str]:
    """The latest run's ExampleValidator anomalies, one readable line each (none if it found none or never ran)."""
    from tfxformers.pipeline.components import describe_anomalies
    from tfxformers.pipeline.mlmd import latest_run_executions, output_artifacts

    validator = latest_run_executions(metadata_path, pipeline_name).get("ExampleValidator")
    anomalies = output_artifacts(metadata_path, validator).get("anomalies") if validator else None
    return describe_anomalies(anomalies[0].uri) if anomalies else []
