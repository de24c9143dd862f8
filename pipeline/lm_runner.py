"""Run the language-model pipeline on this machine and say what happened: ``run_lm_local(...)``, ``report_lm(...)``.

The same machinery as the classifier's ``pipeline.runner`` (LocalDagRunner, ML Metadata in SQLite under
the pipeline root, Beam's DirectRunner in multi-processing mode unless ``beam_args`` choose another
runner, TFX's log in ``<root>/logs/``, one line per component on the terminal), around
``create_lm_pipeline``. A run stopped by the data (anomalies, a corpus too small for one block) is a
``UserError`` saying which documents are at fault and that nothing was trained or pushed.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.pipeline.runner import (SCHEMA_DIR, STATE_NAMES, _custom, _quiet_tfx_logging, beam_args_with_defaults,
                                        latest_run_executions, output_artifacts)

LM_SCHEMA = SCHEMA_DIR / "lm.pbtxt"
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 16
DEFAULT_LEARNING_RATE = 1e-3


@dataclass
class LmRunOptions:
    corpus: str = "emma"
    name: str | None = None
    model_base: str = "serving_models"
    pipeline_root: str | None = None
    preset: str = "mini"
    vocab_size: int = 8000
    block_size: int = 128
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    lowercase: bool = False
    limit_chars: int | None = None
    seed: int = 42
    beam_args: list[str] = field(default_factory=list)
    enable_cache: bool = True


@dataclass
class LmRunSummary:
    pipeline_root: Path
    metadata_path: Path
    log_file: Path
    seconds: float
    states: dict[str, str] = field(default_factory=dict)
    evaluation: dict | None = None        # PerplexityEvaluator's record (perplexities, baselines, reasons)
    training_metrics: dict | None = None  # the Trainer's metrics.json
    trained_dir: Path | None = None
    model_uri: str | None = None
    blessed: bool | None = None
    pushed: bool | None = None
    pushed_version: int | None = None
    pushed_path: str | None = None
    already_pushed: bool = False


def check_options(options: LmRunOptions) -> str:
    """Every setting in its range (``train gpt2``'s rules) before TFX starts; returns the model name."""
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, check_config

    check_config(Gpt2TrainConfig(corpus=options.corpus, output="", preset=options.preset,
                                 vocab_size=options.vocab_size, block_size=options.block_size,
                                 epochs=options.epochs or DEFAULT_EPOCHS,
                                 batch_size=options.batch_size or DEFAULT_BATCH_SIZE,
                                 learning_rate=options.learning_rate or DEFAULT_LEARNING_RATE,
                                 limit_chars=options.limit_chars, seed=options.seed))
    name = options.name or "lm"
    if not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"model name {name!r} must be letters, digits, '-' or '_'")
    return name


def trainer_config(options: LmRunOptions, name: str) -> dict:
    return {"preset": options.preset, "block_size": options.block_size, "epochs": options.epochs or DEFAULT_EPOCHS,
            "batch_size": options.batch_size or DEFAULT_BATCH_SIZE,
            "learning_rate": options.learning_rate or DEFAULT_LEARNING_RATE, "seed": options.seed,
            "model_name": name, "corpus": options.corpus}


def build_lm_local_pipeline(options: LmRunOptions):
    """(pipeline, pipeline_name, root, metadata_path, records) for a local run: data written, nothing run."""
    from tfxformers.pipeline.lm_data import write_corpus_records
    from tfxformers.pipeline.lm_pipeline import create_lm_pipeline

    name = check_options(options)
    root = Path(options.pipeline_root or Path("pipelines") / name).expanduser().resolve()
    records = write_corpus_records(options.corpus, root / "data", options.limit_chars)
    metadata_path = root / "metadata.sqlite"
    pipeline = create_lm_pipeline(
        pipeline_name=f"tfxformers-{name}", pipeline_root=str(root / "artifacts"), data_root=str(records.directory),
        schema_path=str(LM_SCHEMA), push_directory=str(Path(options.model_base).expanduser().resolve() / name),
        trainer_config=trainer_config(options, name), vocab_size=options.vocab_size, lowercase=options.lowercase,
        metadata_path=str(metadata_path), beam_pipeline_args=beam_args_with_defaults(options.beam_args),
        enable_cache=options.enable_cache)
    return pipeline, f"tfxformers-{name}", root, metadata_path, records


def _stopped_message(exc: BaseException, metadata_path: Path, pipeline_name: str, records) -> str | None:
    """The readable reason a run stopped on its data, or None if it failed for another reason."""
    from tfxformers.pipeline.components import describe_anomalies
    from tfxformers.pipeline.lm_components import CorpusTooSmallError

    if isinstance(exc, CorpusTooSmallError):
        return f"{exc} (the pipeline stopped before training; nothing was pushed)"
    validator = latest_run_executions(metadata_path, pipeline_name).get("ExampleValidator")
    anomalies = output_artifacts(metadata_path, validator).get("anomalies") if validator else None
    problems = describe_anomalies(anomalies[0].uri) if anomalies else []
    if not problems:
        return None
    meaning = {"'characters'": " (an empty document)", "'invalid_utf8'": " (text that is not UTF-8)"}
    problems = [p + next((m for f, m in meaning.items() if f"feature {f}" in p), "") for p in problems]
    lines = ["the corpus does not match the curated schema (pipeline/schema/lm.pbtxt), so the pipeline stopped "
             "before training (nothing was pushed):"] + problems
    if records.problems:
        lines.append("documents at fault:")
        lines += records.problems
    return "\n  ".join(lines)


def run_lm_local(options: LmRunOptions, out=None) -> LmRunSummary:
    """Run the LM pipeline with LocalDagRunner; raises UserError for bad data (before training)."""
    out = out or sys.stdout
    started = time.perf_counter()
    pipeline, pipeline_name, root, metadata_path, records = build_lm_local_pipeline(options)
    print(f"pipeline {pipeline_name}: corpus {records.name} ({records.counts['train']} train / "
          f"{records.counts['eval']} eval / {records.counts['test']} test documents, "
          f"{records.characters['train']:,} train characters), preset {options.preset}; root {root}",
          file=out, flush=True)
    print("PerplexityEvaluator: blesses a model below the bigram baseline's eval perplexity and no worse than "
          "the latest blessed model", file=out, flush=True)
    from tfx import v1 as tfx

    log_file = root / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with _quiet_tfx_logging(log_file, out):
        try:
            tfx.orchestration.LocalDagRunner().run(pipeline)
        except Exception as exc:
            message = _stopped_message(exc, metadata_path, pipeline_name, records)
            if message:
                raise UserError(message) from None
            if isinstance(exc, UserError):
                raise
            raise RuntimeError(f"the pipeline failed: {exc} (full log: {log_file})") from exc
    summary = LmRunSummary(root, metadata_path, log_file, time.perf_counter() - started)
    return summarize_lm(metadata_path, pipeline_name, summary)


def summarize_lm(metadata_path: Path, pipeline_name: str, summary: LmRunSummary) -> LmRunSummary:
    from tfxformers.pipeline.lm_components import EVALUATION_FILE

    executions = latest_run_executions(metadata_path, pipeline_name)
    summary.states = {node: STATE_NAMES.get(e.last_known_state, str(e.last_known_state))
                      for node, e in executions.items()}
    if "Trainer" in executions:
        outputs = output_artifacts(metadata_path, executions["Trainer"])
        if outputs.get("model"):
            summary.model_uri = outputs["model"][0].uri
        if outputs.get("model_run"):
            summary.trained_dir = Path(outputs["model_run"][0].uri) / "model"
            metrics = summary.trained_dir / "metrics.json"
            summary.training_metrics = json.loads(metrics.read_text()) if metrics.is_file() else None
    if "PerplexityEvaluator" in executions:
        outputs = output_artifacts(metadata_path, executions["PerplexityEvaluator"])
        if outputs.get("blessing"):
            summary.blessed = bool(_custom(outputs["blessing"][0], "blessed"))
        if outputs.get("evaluation"):
            path = Path(outputs["evaluation"][0].uri) / EVALUATION_FILE
            summary.evaluation = json.loads(path.read_text()) if path.is_file() else None
    if "Pusher" in executions:
        pushed = output_artifacts(metadata_path, executions["Pusher"]).get("pushed_model")
        if pushed:
            summary.pushed = bool(_custom(pushed[0], "pushed"))
            version = _custom(pushed[0], "pushed_version")
            summary.pushed_version = int(version) if version and str(version).isdigit() else None
            summary.pushed_path = _custom(pushed[0], "pushed_destination")
            summary.already_pushed = bool(_custom(pushed[0], "tfxformers_already_pushed"))
    return summary


def report_lm(summary: LmRunSummary, out=None) -> int:
    """Print what the run did; 0 when a blessed model is (or already was) pushed, 1 when nothing was."""
    out = out or sys.stdout
    states = {n: s for n, s in summary.states.items() if n != "latest_blessed_model_resolver"}
    ran = sorted(n for n, s in states.items() if s == "COMPLETE")
    cached = sorted(n for n, s in states.items() if s == "CACHED")
    print(f"pipeline finished in {summary.seconds:.1f} s: {len(ran)} components ran, {len(cached)} came from "
          f"the cache{' (' + ', '.join(cached) + ')' if cached else ''}", file=out)
    e = summary.evaluation
    if e:
        line = (f"eval perplexity {e['eval_perplexity']:.2f} vs unigram {e['unigram_perplexity']:.2f} and bigram "
                f"{e['bigram_perplexity']:.2f} baselines ({e['eval_tokens']:,} held-out tokens)")
        if e.get("baseline_nats_per_byte") is not None:
            line += (f"; {e['eval_nats_per_byte']:.4f} nats/byte vs the latest blessed model's "
                     f"{e['baseline_nats_per_byte']:.4f}")
        print(line, file=out)
    if summary.training_metrics and summary.training_metrics.get("test_perplexity"):
        print(f"trained model: test perplexity {summary.training_metrics['test_perplexity']:.2f} "
              f"({summary.trained_dir})", file=out)
    if summary.pushed:
        again = (" (this model was pushed by an earlier run; no new version)"
                 if summary.already_pushed or summary.states.get("Pusher") == "CACHED" else "")
        print(f"pushed version {summary.pushed_version} to {summary.pushed_path}{again}", file=out)
        return 0
    reasons = "; ".join((e or {}).get("reasons") or []) or "the evaluator did not bless it"
    print(f"NOT pushed: {reasons}", file=out)
    return 1
