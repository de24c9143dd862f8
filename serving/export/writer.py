"""Writing one version directory: SavedModel, ``assets.extra`` (info file, tokenizer, warm-up records),
staged under a hidden name and renamed into place (``serving.layout``), for every model kind's export.

Also the classifier and GPT-2 warm-up records (``tf_serving_warmup_requests``: PredictionLog records of
real tokenized examples, one per length bucket, replayed by TF Serving when the version loads), and the
version's own batching parameters (``batching_params.pbtxt``, read by TF Serving under
``--enable_per_model_batching_parameters`` and by ``tfxformers serve --enable-batching``): the CPU preset of
TF Serving's batching guide by default, the GPU one with ``TFXFORMERS_BATCHING_PRESET=gpu`` at export time.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.serving import layout


WARMUP_TEXTS = (
    "a charming, funny and moving film",
    "the plot is a tedious mess and the acting is flat, which makes the whole thing feel far longer than it is",
    "an ambitious story about family, memory and loss that never quite comes together, despite strong "
    "performances from its cast and a beautiful score; still, there are moments of real grace here and "
    "there that make it worth seeing for anyone who loved the director's earlier work",
)


def warmup_log(tf, name: str, signature: str, inputs: dict) -> bytes:
    """One serialized ``PredictionLog`` record of ``tf_serving_warmup_requests``: a Predict call of ``signature``
    on ``inputs`` (name -> array), which the server replays when it loads the version."""
    import numpy as np
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString()


def text_warmup_records(tf, tokenizer, info: dict, name: str, path: Path) -> int:
    """Warm-up records for a classifier, encoder or GPT-2 version (GPT-2 also warms up ``generate``)."""
    import numpy as np

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
            writer.write(warmup_log(tf, name, layout.DEFAULT_SIGNATURE,
                                    {key: features[key] for key in ("input_ids", "attention_mask")}))
            count += 1
        if info["kind"] == "gpt2":
            # One short generation, so the first client does not pay for the generate graph's first run.
            writer.write(_generate_warmup(tf, tokenizer, info, name))
            count += 1
    return count


def _generate_warmup(tf, tokenizer, info: dict, name: str) -> bytes:
    from tfxformers.models.lm.generate import as_arrays, request_inputs

    ids = tokenizer(WARMUP_TEXTS[0], truncation=True, max_length=max(info["max_positions"] - 2, 1))["input_ids"]
    inputs = as_arrays(request_inputs([ids], info["pad_id"] or 0, max_new_tokens=2))
    return warmup_log(tf, name, "generate", inputs)


BATCHING_PRESET_ENV = "TFXFORMERS_BATCHING_PRESET"
BATCHING_PRESETS = ("cpu", "gpu")
# The embedded server's default --max-rows: a batch must take any request the server accepts, or the
# batcher refuses it ("Task size N is larger than maximum input batch size").
LARGEST_REQUEST_ROWS = 128


def batching_parameters(kind: str, preset: str = "cpu", cores: int | None = None) -> dict:
    """BatchingParameters for a model kind, after TF Serving's batching guide (``batching/README.md``).

    CPU: one batch thread per core and no timeout (a batch runs as soon as a thread is free, so batches
    form only under load and a lone request never waits, serving#1529); allowed sizes at every power of
    two, so a batch is padded by less than half of itself. GPU: bigger batches with a few milliseconds to
    fill them; GPT-2's longer timeout because each of its rows runs a whole generation. Both pad
    variable-length inputs: off (TF Serving's default), requests of different lengths fail the batch
    (serving#535, #1934); the exports' graphs are safe with the first-element padding (their masks stop
    at the first [SEP], and GPT-2 reads each row's prompt_length)."""
    if preset not in BATCHING_PRESETS:
        raise UserError(f"{BATCHING_PRESET_ENV}={preset!r}: choose one of {', '.join(BATCHING_PRESETS)}")
    cores = cores or os.cpu_count() or 1
    if preset == "cpu":
        largest, timeout, smallest = LARGEST_REQUEST_ROWS, 0, 1
    elif kind == "gpt2":
        largest, timeout, smallest = LARGEST_REQUEST_ROWS, 5000, 8
    else:
        largest, timeout, smallest = 2 * LARGEST_REQUEST_ROWS, 2000, 16
    sizes, size = [], smallest
    while size < largest:
        sizes.append(size)
        size *= 2
    return {"max_batch_size": largest, "batch_timeout_micros": timeout, "num_batch_threads": cores,
            # Deeper than the guide's online setting (= threads): a full queue answers 503, and the
            # embedded server's in-flight budget (429) is what should shed load first.
            "max_enqueued_batches": max(cores, 64), "allowed_batch_sizes": sizes + [largest],
            "pad_variable_length_inputs": True}


def batching_parameters_text(kind: str, preset: str = "cpu", cores: int | None = None) -> str:
    """``batching_params.pbtxt``: BatchingParameters in protobuf text format."""
    params = batching_parameters(kind, preset, cores)
    lines = [f"# BatchingParameters for this {kind} version ({preset} preset of TF Serving's batching guide)."]
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        lines.append(f"{name} {{ value: {params[name]} }}")
    lines += [f"allowed_batch_sizes: {size}" for size in params["allowed_batch_sizes"]]
    lines.append("pad_variable_length_inputs: true")
    return "\n".join(lines) + "\n"


def write_version(tf, info: dict, tokenizer, final: Path, name: str, build, warmup=None) -> Path:
    """Write the SavedModel and its assets.extra under a temporary name, then rename it into place.

    ``build(metadata_json, tokenizer_json)`` returns an object with the ``module`` to save and its
    ``signatures``; ``warmup(tf, path)`` writes the warm-up records (default: ``text_warmup_records``)."""
    batching_text = batching_parameters_text(info["kind"], os.environ.get(BATCHING_PRESET_ENV, "cpu").strip().lower())
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
        (staging / layout.BATCHING_PARAMS_FILE).write_text(batching_text)
        layout.publish(staging, final)
    return final
