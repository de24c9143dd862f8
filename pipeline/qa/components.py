"""The question-answering pipeline's own components: the example gate and the EM/F1 evaluator.

* ``QAExampleGate``: stops the run, before the Trainer, on malformed questions, naming each one (its id,
  where it is in the file and what is wrong: ``pipeline.qa.checks``), together with ExampleValidator's
  anomalies against ``pipeline/schema/qa.pbtxt``. A content check is needed because a schema sees
  feature presence and counts, not whether ``context[answer_start:answer_start + len(text)]`` is the answer
  text, nor an empty string. It is a component rather than a check while the data is written because the
  examples it reads are the ones ExampleGen ingested and the Trainer trains on (a compiled pipeline, whose
  data is written by someone else, is checked the same way), its verdict is recorded and cached in ML
  Metadata like the validator's, and one error lists both kinds of fault.
* ``QAEvaluator``: scores the Trainer's ``Format-Serving`` SavedModel (what the Pusher would push: its
  ``serving_default`` start/end logits, with its own tokenizer and window settings from ``assets.extra``;
  windows from ``models.qa.features``, spans from ``models.qa.decode``) on the eval split with the official
  SQuAD v1.1 exact match and F1 (``models.qa.metrics.score_v1``), beside the lexical baseline
  (``models.qa.baseline``) on the same questions. It blesses a model only if its F1 is above the
  baseline's and, once a model has been blessed, no worse than the latest blessed model's F1 on the same
  questions (scored again here, so both figures come from one eval split). TFMA cannot express either bar
  (the baseline is computed on this run's questions; EM/F1 need span decoding across windows, not a
  per-example metric of a tf.Example signature). The blessing carries TFX's ``blessed`` /
  ``current_model_id`` properties, so the stock latest-blessed resolver and Pusher read it.
"""
# No `from __future__ import annotations`: TFX reads the component functions' type hints at run time.

import json
import os
import time

from tfx import v1 as tfx
from tfx.types import standard_artifacts

from tfxformers.pipeline.components import write_blessing
from tfxformers.pipeline.qa.checks import faulty_questions, problem_report
from tfxformers.pipeline.qa.data import read_split, to_qa_example
from tfxformers.serving import layout

EVALUATION_FILE = "qa_evaluation.json"
SPLITS = ("train", "eval")
# Re-scoring the same model must not count as a regression (another batch order, another float sum).
F1_TOLERANCE = 1e-6
PREDICT_BATCH = 32
SAMPLE_PREDICTIONS = 10


class MalformedQuestionsError(RuntimeError):
    """Questions the pipeline cannot train or evaluate on; the message names them."""


# TFX runs it after ExampleValidator; it fails the run, before the Trainer, on malformed questions.
@tfx.dsl.components.component
def QAExampleGate(examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
                  anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies]):
    from tfxformers.pipeline.components import describe_anomalies

    faulty = [line for split in SPLITS for line in faulty_questions(read_split(examples.uri, split), split)]
    schema = describe_anomalies(anomalies.uri)
    if faulty or schema:
        lines = []
        if faulty:
            lines += [f"{len(faulty)} malformed question{'s' if len(faulty) != 1 else ''}:"] + problem_report(faulty)
        if schema:
            lines += ["ExampleValidator's anomalies against pipeline/schema/qa.pbtxt:"] + schema
        raise MalformedQuestionsError("\n  ".join(lines))


def read_export_info(model_dir: str) -> dict:
    with open(os.path.join(model_dir, layout.ASSETS_EXTRA, layout.VERSION_INFO_FILE)) as f:
        return json.load(f)


def predict_serving_model(model_dir: str, examples: list, batch_size: int = PREDICT_BATCH) -> dict:
    """``id -> best answer`` of an exported QA model (``serving_default``) for ``QAExample``s, with the
    windows, padding buckets and answer length its ``assets.extra/tfxformers.json`` records."""
    import numpy as np
    import tensorflow as tf
    from tokenizers import Tokenizer

    from tfxformers.models.qa import decode, features

    info = read_export_info(model_dir)
    fast = features.fast_tokenizer(Tokenizer.from_file(
        os.path.join(model_dir, layout.ASSETS_EXTRA, layout.TOKENIZER_DIR, "tokenizer.json")))
    built = features.build_features(fast, examples, max_seq_len=int(info["max_length"]),
                                    doc_stride=int(info["doc_stride"]), labelled=False)
    serve = tf.saved_model.load(model_dir).signatures[layout.DEFAULT_SIGNATURE]
    windows = built.windows
    starts, ends = [None] * len(windows), [None] * len(windows)
    # Windows of similar length together: most batches then pad to a short bucket.
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        rows = features.pad_windows([windows[i] for i in chunk], int(info["pad_id"]), int(info["max_length"]),
                                    info.get("buckets"))
        out = serve(**{k: tf.constant(np.asarray(v, dtype=np.int32)) for k, v in rows.items()})
        for i, s, e in zip(chunk, out["start_logits"].numpy().tolist(), out["end_logits"].numpy().tolist()):
            starts[i], ends[i] = s, e
    grouped: dict = {}
    for i, window in enumerate(windows):
        grouped.setdefault(window.example_index, []).append(i)
    predictions = {}
    for index, example in enumerate(examples):
        rows = grouped.get(index, [])
        answers = decode.decode_answers(example.context, [windows[i] for i in rows], [starts[i] for i in rows],
                                        [ends[i] for i in rows], max_answer_len=int(info.get("max_answer_len", 15)))
        predictions[example.id] = decode.best_answer_text(answers)
    return predictions


def score_serving_model(model_dir: str, examples: list) -> dict:
    """The official SQuAD v1.1 exact match and F1 of an exported QA model on ``examples``, and its answers."""
    from tfxformers.models.qa.metrics import score_v1

    predictions = predict_serving_model(model_dir, examples)
    return {**score_v1(predictions, {e.id: [t for t, _ in e.answers] for e in examples}), "predictions": predictions}


def evaluate(model_dir: str, baseline_dir: "str | None", examples: list) -> dict:
    """The evaluation record: the model's EM/F1, the lexical baseline's and the latest blessed model's on
    the same questions, and the verdict with its reasons."""
    from tfxformers.models.qa import baseline

    started = time.perf_counter()
    scored = score_serving_model(model_dir, examples)
    predictions = scored.pop("predictions")
    lexical = baseline.evaluate(examples)
    result = {"exact_match": scored["exact_match"], "f1": scored["f1"], "questions": len(examples),
              "metric": scored["metric"], "baseline_exact_match": lexical["exact_match"],
              "baseline_f1": lexical["f1"], "baseline": lexical["baseline"], "baseline_model": baseline_dir,
              "baseline_model_exact_match": None, "baseline_model_f1": None, "reasons": []}
    if scored["f1"] <= lexical["f1"]:
        result["reasons"].append(f"F1 {scored['f1']:.2f} is not above the lexical baseline's {lexical['f1']:.2f}")
    if baseline_dir:
        blessed = score_serving_model(baseline_dir, examples)
        result["baseline_model_exact_match"], result["baseline_model_f1"] = blessed["exact_match"], blessed["f1"]
        if scored["f1"] < blessed["f1"] - F1_TOLERANCE:
            result["reasons"].append(f"F1 {scored['f1']:.2f} is worse than the latest blessed model's "
                                     f"{blessed['f1']:.2f} on the same {len(examples):,} questions")
    result["blessed"] = not result["reasons"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["sample"] = [{"id": e.id, "question": e.question, "prediction": predictions[e.id],
                         "gold": [t for t, _ in e.answers]} for e in examples[:SAMPLE_PREDICTIONS]]
    return result


# TFX runs it after the Trainer (and the latest-blessed-model resolver); the Pusher reads its blessing.
@tfx.dsl.components.component
def QAEvaluator(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    evaluation: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelBlessing],
    baseline_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model] = None,
):
    from tfx.utils import path_utils

    # The Trainer's Format-Serving export, where TFX's Trainer puts fn_args.serving_model_dir.
    baseline_dir = path_utils.serving_model_dir(baseline_model.uri) if baseline_model is not None else None
    questions = [to_qa_example(row) for row in read_split(examples.uri, "eval")]
    result = evaluate(path_utils.serving_model_dir(model.uri), baseline_dir, questions)
    os.makedirs(evaluation.uri, exist_ok=True)
    with open(os.path.join(evaluation.uri, EVALUATION_FILE), "w") as f:
        json.dump(result, f, indent=2)
    write_blessing(blessing, model, baseline_model, result["blessed"])
