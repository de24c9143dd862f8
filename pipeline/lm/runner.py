"""Run the language-model pipeline on this machine and say what happened: ``run_lm_local(...)``, ``report_lm(...)``.

The shared ``pipeline.runner`` machinery (LocalDagRunner, ML Metadata in SQLite under
the pipeline root, Beam's DirectRunner in multi-processing mode unless ``beam_args`` choose another
runner, TFX's log in ``<root>/logs/``, one line per component on the terminal), around
``create_lm_pipeline``. A run stopped by the data (anomalies, a corpus too small for one block) is a
``UserError`` saying which documents are at fault and that nothing was trained or pushed.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.pipeline.mlmd import PipelineRunSummary
from tfxformers.pipeline.runner import (SCHEMA_DIR, anomaly_lines, beam_args_with_defaults, report_push_or_reasons,
                                        report_states, run_with_progress, summarize_evaluated_run)
from tfxformers.serving.layout import check_model_name

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
class LmRunSummary(PipelineRunSummary):
    evaluation: dict | None = None        # PerplexityEvaluator's record (perplexities, baselines, reasons)
    training_metrics: dict | None = None  # the Trainer's metrics.json


def check_options(options: LmRunOptions) -> str:
    """Every setting in its range (``train gpt2``'s rules) before TFX starts; returns the model name."""
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, check_config

    check_config(Gpt2TrainConfig(corpus=options.corpus, output="", preset=options.preset,
                                 vocab_size=options.vocab_size, block_size=options.block_size,
                                 epochs=options.epochs or DEFAULT_EPOCHS,
                                 batch_size=options.batch_size or DEFAULT_BATCH_SIZE,
                                 learning_rate=options.learning_rate or DEFAULT_LEARNING_RATE,
                                 limit_chars=options.limit_chars, seed=options.seed))
    return check_model_name(options.name or "lm")


def trainer_config(options: LmRunOptions, name: str) -> dict:
    return {"preset": options.preset, "block_size": options.block_size, "epochs": options.epochs or DEFAULT_EPOCHS,
            "batch_size": options.batch_size or DEFAULT_BATCH_SIZE,
            "learning_rate": options.learning_rate or DEFAULT_LEARNING_RATE, "seed": options.seed,
            "model_name": name, "corpus": options.corpus,
            # What `train gpt2` records about the tokenizer; BpeTokenizer gets them as its own parameters.
            "vocab_size": options.vocab_size, "lowercase": options.lowercase}


def build_lm_local_pipeline(options: LmRunOptions):
    """(pipeline, pipeline_name, root, metadata_path, records) for a local run: data written, nothing run."""
    from tfxformers.pipeline.lm.data import write_corpus_records
    from tfxformers.pipeline.lm.pipeline import create_lm_pipeline

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
    from tfxformers.pipeline.lm.components import CorpusTooSmallError

    if isinstance(exc, CorpusTooSmallError):
        return f"{exc} (the pipeline stopped before training; nothing was pushed)"
    problems = anomaly_lines(metadata_path, pipeline_name)
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
    log_file = run_with_progress(pipeline, root, out,
                                 lambda exc: _stopped_message(exc, metadata_path, pipeline_name, records))
    summary = LmRunSummary(root, metadata_path, log_file, time.perf_counter() - started)
    return summarize_lm(metadata_path, pipeline_name, summary)


def summarize_lm(metadata_path: Path, pipeline_name: str, summary: LmRunSummary) -> LmRunSummary:
    from tfxformers.pipeline.lm.components import EVALUATION_FILE

    return summarize_evaluated_run(metadata_path, pipeline_name, summary, "PerplexityEvaluator", EVALUATION_FILE)


def report_lm(summary: LmRunSummary, out=None) -> int:
    """Print what the run did; 0 when a blessed model is (or already was) pushed, 1 when nothing was."""
    out = out or sys.stdout
    report_states(summary, out)
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
    return report_push_or_reasons(summary, e, out)
