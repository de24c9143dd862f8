"""Writing one version directory: SavedModel, ``assets.extra`` (info file, tokenizer, warm-up records),
staged under a hidden name and renamed into place (``serving.layout``), for every model kind's export.

Also the classifier and GPT-2 warm-up records (``tf_serving_warmup_requests``: PredictionLog records of
real tokenized examples, one per length bucket, replayed by TF Serving when the version loads).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tfxformers.serving import layout


WARMUP_TEXTS = (
    "a charming, funny and moving film",
    "the plot is a tedious mess and the acting is flat, which makes the whole thing feel far longer than it is",
    "an ambitious story about family, memory and loss that never quite comes together, despite strong "
    "performances from its cast and a beautiful score; still, there are moments of real grace here and "
    "there that make it worth seeing for anyone who loved the director's earlier work",
)


def text_warmup_records(tf, tokenizer, info: dict, name: str, path: Path) -> int:
    """Warm-up records for a classifier, encoder or GPT-2 version (GPT-2 also warms up ``generate``)."""
    import numpy as np
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from tfxformers.models.tokenization import tokenize_batch

    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for text in WARMUP_TEXTS:
            if info["kind"] == "gpt2":
                ids = tokenizer(text, truncation=True, max_length=info["max_length"])["input_ids"]
                features = {"input_ids": np.asarray([ids], dtype=np.int32),
                            "attention_mask": np.ones((1, len(ids)), dtype=np.int32)}
            else:
                features = tokenize_batch(tokenizer, [text], max_length=info["max_length"], buckets=info["buckets"])
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=layout.DEFAULT_SIGNATURE))
            for key in ("input_ids", "attention_mask"):
                request.inputs[key].CopyFrom(tf.make_tensor_proto(features[key]))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
            count += 1
        if info["kind"] == "gpt2":
            # One short generation, so the first client does not pay for the generate graph's first run.
            writer.write(_generate_warmup(tf, tokenizer, info, name).SerializeToString())
            count += 1
    return count


def _generate_warmup(tf, tokenizer, info: dict, name: str):
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from tfxformers.models.lm.generate import as_arrays, request_inputs

    ids = tokenizer(WARMUP_TEXTS[0], truncation=True, max_length=max(info["max_positions"] - 2, 1))["input_ids"]
    inputs = as_arrays(request_inputs([ids], info["pad_id"] or 0, max_new_tokens=2))
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name="generate"))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_version(tf, info: dict, tokenizer, final: Path, name: str, build, warmup=None) -> Path:
    """Write the SavedModel and its assets.extra under a temporary name, then rename it into place.

    ``build(metadata_json, tokenizer_json)`` returns an object with the ``module`` to save and its
    ``signatures``; ``warmup(tf, path)`` writes the warm-up records (default: ``text_warmup_records``)."""
    with layout.staging_directory(final.parent, info["version"]) as tmp:
        staging = tmp / "model"
        assets = staging / layout.ASSETS_EXTRA
        tokenizer.save_pretrained(str(tmp / layout.TOKENIZER_DIR))
        tokenizer_json = (tmp / layout.TOKENIZER_DIR / "tokenizer.json").read_text(encoding="utf-8")
        built = build(json.dumps(info), tokenizer_json)
        tf.saved_model.save(built.module, str(staging), signatures=built.signatures)
        shutil.copytree(tmp / layout.TOKENIZER_DIR, assets / layout.TOKENIZER_DIR)
        (assets / layout.VERSION_INFO_FILE).write_text(json.dumps(info, indent=2))
        if warmup is None:
            text_warmup_records(tf, tokenizer, info, name, assets / layout.WARMUP_FILE)
        else:
            warmup(tf, assets / layout.WARMUP_FILE)
        layout.publish(staging, final)
    return final
