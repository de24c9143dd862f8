"""Export question-answering models: ``answer`` signature (start/end logits per token) plus metadata.

``export_qa(model_dir, name, model_base)`` writes ``model_base/name/<version>/`` like every tfxformers export
(atomic rename, ``assets.extra/tfxformers.json``, ``tokenizer/``, warm-up records, the
``tfxformers_metadata`` signature the proxy reads its tokenizer from), with:

* ``answer`` (also ``serving_default``): ``input_ids``, ``attention_mask``, ``token_type_ids`` int32
  ``[batch, seq]`` -> ``start_logits``, ``end_logits`` float32 ``[batch, seq]``. Rows are windows
  ``[CLS] question [SEP] context [SEP]`` planned by ``models.qa.features``; span decoding happens in the
  client (``models.qa.decode``, shared by the proxy and ``tfxformers answer``), because it needs the
  character offsets that only the tokenizer knows.
* Batching-safe mask: TF Serving's batcher pads with each tensor's first element ([CLS], mask 1), so the
  graph keeps only positions up to the [SEP] that closes each row's context (``mask_up_to_last_sep``).

``model_dir`` is a ``tfxformers train qa`` directory or a Hugging Face ``BertForQuestionAnswering``
checkpoint directory (SQuAD-trained BERTs): ``serving.export.trained.export_model`` sends both here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.serving import layout
from tfxformers.serving.export.signatures import assert_same_shape, metadata_function
from tfxformers.serving.export.writer import BATCHING_PRESET_ENV, LARGEST_REQUEST_ROWS, warmup_log, write_version

SIGNATURE = "answer"
# Tokens of one Predict call that a CPU model server runs fastest per window (bench/bench_qa.py, MiniLM on
# 2 cores: calls of 4 x 384 tokens beat one call per window and one call of every window of a long context;
# 16 windows per call were already as slow as one big call); written into the metadata as
# preferred_windows_per_call, which the proxy's :answer uses unless --answer-batch-windows says otherwise.
CPU_TOKENS_PER_CALL = 1536
WARMUP_QUESTIONS = (("When is the cake done?", "Bake for 30 to 40 minutes. The cake is done when it springs back "
                     "to the touch."),
                    ("Who does space belong to?", "He hopes the data will be shared, because space belongs to everyone. "
                     * 12))


def mask_up_to_last_sep(tf, input_ids, attention_mask, sep_id: int, seps: int):
    """The given mask, limited to positions up to and including each row's ``seps``-th [SEP] (the one closing
    the context: the 2nd for ``[CLS] q [SEP] c [SEP]``, the 3rd for RoBERTa's ``<s> q </s></s> c </s>``;
    rows with fewer keep their whole mask)."""
    is_sep = tf.cast(tf.equal(input_ids, sep_id), tf.int32)
    seps_before = tf.cumsum(is_sep, axis=1, exclusive=True)
    return attention_mask * tf.cast(seps_before < seps, attention_mask.dtype)


class _QAModule:
    """Builds the tf.Module whose functions become the QA signatures."""

    def __init__(self, tf, keras_model, input_names, sep_id: int, seps: int, metadata_json: str, tokenizer_json: str):
        module = tf.Module(name="tfxformers_qa")
        # Only the variables are tracked (see serving.export.classifier): serialising the Keras model itself would
        # trace Hugging Face layers' Keras call functions, which fails.
        module.model_variables = list(keras_model.variables)
        module.metadata_json, module.tokenizer_json = tf.constant(metadata_json), tf.constant(tokenizer_json)
        specs = [tf.TensorSpec((None, None), tf.int32, name=n) for n in ("input_ids", "attention_mask", "token_type_ids")]

        @tf.function(input_signature=specs, autograph=False)
        def answer(input_ids, attention_mask, token_type_ids):
            input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
            token_type_ids, _ = assert_same_shape(tf, token_type_ids, attention_mask)
            mask = mask_up_to_last_sep(tf, input_ids, attention_mask, sep_id, seps)
            features = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in input_names:
                features["token_type_ids"] = token_type_ids
            out = keras_model(features, training=False)
            return {"start_logits": tf.identity(out["start_logits"], name="start_logits"),
                    "end_logits": tf.identity(out["end_logits"], name="end_logits")}

        module.answer = answer
        module.metadata = metadata_function(tf, module)
        self.module = module
        self.signatures = {SIGNATURE: answer, layout.DEFAULT_SIGNATURE: answer,
                           layout.METADATA_SIGNATURE: module.metadata}


def preferred_windows_per_call(max_seq_len: int, preset: str | None = None) -> int:
    """Windows of ``max_seq_len`` tokens per Predict call: ``CPU_TOKENS_PER_CALL`` worth on a CPU server; with
    the GPU batching preset (``TFXFORMERS_BATCHING_PRESET=gpu`` at export, as for ``batching_params.pbtxt``)
    as many as a request may hold, since a GPU wants large batches (not measured here: no GPU)."""
    preset = preset or os.environ.get(BATCHING_PRESET_ENV, "cpu").strip().lower()
    if preset == "gpu":
        return LARGEST_REQUEST_ROWS
    return max(1, CPU_TOKENS_PER_CALL // max_seq_len)


def qa_metadata(trained, name: str, version: int | None) -> dict:
    from tfxformers.models.encoders import max_input_tokens
    from tfxformers.models.qa.features import Specials, fast_tokenizer, window_buckets

    tokenizer = trained.tokenizer
    specials = Specials.of(fast_tokenizer(tokenizer))
    config = trained.keras_model.encoder_config
    return {
        "kind": "qa", "name": name, "version": version, "format_version": 1, "label_names": [],
        "input_names": ["input_ids", "attention_mask", "token_type_ids"],
        "max_length": trained.max_seq_len, "doc_stride": trained.doc_stride,
        "max_positions": int(max_input_tokens(config)),
        "buckets": list(window_buckets(trained.max_seq_len)),
        "pad_id": specials.pad_id, "cls_id": specials.cls_id, "sep_id": specials.sep_id,
        "pair_seps": specials.pair_seps, "model_type": getattr(config, "model_type", "bert"),
        "max_answer_len": int(trained.info.get("max_answer_len", 15)),
        "preferred_windows_per_call": preferred_windows_per_call(trained.max_seq_len),
        "signatures": {SIGNATURE: {"inputs": ["input_ids", "attention_mask", "token_type_ids"],
                                   "outputs": ["start_logits", "end_logits"]},
                       layout.METADATA_SIGNATURE: {"inputs": ["probe"],
                                                   "outputs": ["metadata_json", "tokenizer_json"]}},
        "mask": "attention_mask limited to positions up to the [SEP] closing the context, in the graph",
    }


def _warmup_records(tf, trained, info: dict, name: str, path: Path) -> int:
    import numpy as np

    from tfxformers.models.qa import features
    from tfxformers.models.qa.features import pad_windows

    fast = features.fast_tokenizer(trained.tokenizer)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for question, context in WARMUP_QUESTIONS:
            windows = features.plan_windows(fast, question, context, max_seq_len=trained.max_seq_len,
                                            doc_stride=trained.doc_stride)
            rows = pad_windows(windows, info["pad_id"], trained.max_seq_len)
            writer.write(warmup_log(tf, name, SIGNATURE, {k: np.asarray(v, dtype=np.int32) for k, v in rows.items()}))
            count += 1
    return count


def write_qa(trained, directory: str | os.PathLike, *, name: str, version: int | None = None) -> Path:
    """Write an in-memory QA ``models.artifacts.TrainedModel`` as a SavedModel at exactly ``directory``, atomically."""
    import tensorflow as tf

    final = Path(directory)
    layout.check_version_is_new(final)
    info = qa_metadata(trained, name, version)
    final.parent.mkdir(parents=True, exist_ok=True)
    return write_version(tf, info, trained.tokenizer, final, name,
                         lambda meta, tok_json: _QAModule(tf, trained.keras_model, trained.input_names, info["sep_id"],
                                                          1 + info["pair_seps"], meta, tok_json),
                         warmup=lambda tf, path: _warmup_records(tf, trained, info, name, path))


def export_qa(model_dir: str | os.PathLike, name: str, model_base: str | os.PathLike, version: int | None = None) -> Path:
    """Export a QA directory or checkpoint as ``model_base/name/<version>/`` (the next version by default)."""
    from tfxformers.models.qa.model import load_qa

    trained = load_qa(model_dir)
    final, _, version = layout.new_version_path(model_base, name, version)
    return write_qa(trained, final, name=name, version=version)


def is_qa_source(model_dir: str | os.PathLike) -> bool:
    """Whether ``export_model`` should send ``model_dir`` here (cheap: reads JSON and a safetensors header)."""
    from tfxformers.models.artifacts import INFO_FILE
    from tfxformers.models.qa.model import is_qa_checkpoint

    path = Path(model_dir)
    info_file = path / INFO_FILE
    if info_file.is_file():
        try:
            return json.loads(info_file.read_text()).get("kind") == "qa"
        except (OSError, ValueError, AttributeError):
            return False
    return is_qa_checkpoint(path)
