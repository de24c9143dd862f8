"""Export trained classifiers as versioned SavedModels that TensorFlow Serving loads as they are.

``export_model(model_dir, name, model_base)`` writes ``model_base/name/<version>/``:

* a SavedModel (tag ``serve``) with explicit signatures, every input int32 with a dynamic batch and a
  dynamic sequence length, named as the tokenizer names them:
  ``serving_default``: ``input_ids``, ``attention_mask`` -> ``probabilities [batch, labels]``,
  ``label_id [batch]``; ``tfxformers_metadata``: ``probe [batch]`` -> ``metadata_json [batch]``,
  ``tokenizer_json [batch]`` (how a client that only talks to TF Serving gets the version's tokenizer
  and label names; one copy per probe element so that server-side batching can split the answer);
* ``assets.extra/``: ``tfxformers.json`` (kind, labels, input names, buckets, special ids, ``max_positions``:
  the longest input the model takes, which the server enforces),
  ``tokenizer/`` (the tokenizer files) and ``tf_serving_warmup_requests`` (PredictionLog records of
  real tokenized examples, one per length bucket, replayed by TF Serving when the version loads).

Batching-safe attention mask: TF Serving's batcher pads variable-length inputs with the tensor's first
element ([CLS] and mask 1 for BERT), so the graph keeps only positions up to each row's first [SEP]
(``mask_up_to_first_sep``) on top of the mask it is given.

A version appears atomically: it is written under a hidden temporary directory beside the versions and
renamed into place, so a server polling the directory never sees half a model.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.errors import UserError

from tfxformers.models.lm.generate import INPUT_NAMES as GENERATE_INPUTS, OUTPUT_NAMES as GENERATE_OUTPUTS

WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_TEXTS = (
    "a charming, funny and moving film",
    "the plot is a tedious mess and the acting is flat, which makes the whole thing feel far longer than it is",
    "an ambitious story about family, memory and loss that never quite comes together, despite strong "
    "performances from its cast and a beautiful score; still, there are moments of real grace here and "
    "there that make it worth seeing for anyone who loved the director's earlier work",
)


def version_dirs(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_base: str | os.PathLike, name: str) -> int:
    versions = version_dirs(Path(model_base) / name)
    return (versions[-1] + 1) if versions else 1


def mask_up_to_first_sep(tf, input_ids, attention_mask, sep_id: int):
    """The given mask, limited to positions up to and including each row's first [SEP]."""
    is_sep = tf.cast(tf.equal(input_ids, sep_id), tf.int32)
    has_sep = tf.reduce_any(is_sep > 0, axis=1)
    first_sep = tf.argmax(is_sep, axis=1, output_type=tf.int32)
    length = tf.shape(input_ids)[1]
    last = tf.where(has_sep, first_sep, tf.fill(tf.shape(first_sep), length - 1))
    positions = tf.range(length)[tf.newaxis, :]
    return attention_mask * tf.cast(positions <= last[:, tf.newaxis], attention_mask.dtype)


def assert_same_shape(tf, input_ids, attention_mask):
    """An in-graph check that a mask matches its ids: ``ids * mask`` would otherwise broadcast a [1, n]
    mask over every row, or a [b, 1] mask over every position, and answer as if nothing were wrong."""
    ids_shape, mask_shape = tf.shape(input_ids), tf.shape(attention_mask)
    check = tf.Assert(tf.reduce_all(tf.equal(ids_shape, mask_shape)),
                      ["attention_mask must have the shape of input_ids: attention_mask", mask_shape,
                       "input_ids", ids_shape])
    with tf.control_dependencies([check]):
        return tf.identity(input_ids), tf.identity(attention_mask)


def _metadata_function(tf, module):
    """The ``tfxformers_metadata`` signature: the version's metadata and tokenizer, one copy per probe
    element so that server-side batching can split the answer like any other output."""

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32, name="probe")], autograph=False)
    def metadata(probe):
        n = tf.shape(probe)[:1]
        return {"metadata_json": tf.fill(n, module.metadata_json), "tokenizer_json": tf.fill(n, module.tokenizer_json)}

    return metadata


class _ClassifierModule:
    """Builds the tf.Module whose functions become the classifier signatures."""

    def __init__(self, tf, keras_model, sep_id: int, metadata_json: str, tokenizer_json: str, extra=None):
        spec_ids = tf.TensorSpec((None, None), tf.int32, name="input_ids")
        spec_mask = tf.TensorSpec((None, None), tf.int32, name="attention_mask")
        module = tf.Module(name="tfxformers_classifier")
        # Track only the variables: letting tf.saved_model serialise the Keras model itself would make it
        # trace every layer's Keras call functions, which fails for Hugging Face layers.
        module.model_variables = list(keras_model.variables)
        # hub.KerasLayer lists no variables for a SavedModel without a `variables` attribute (the hub-mode
        # encoder), so the loaded objects themselves are tracked too, or saving finds untracked variables.
        module.hub_objects = [layer.resolved_object for layer in keras_model.layers if hasattr(layer, "resolved_object")]
        module.metadata_json, module.tokenizer_json = tf.constant(metadata_json), tf.constant(tokenizer_json)

        @tf.function(input_signature=[spec_ids, spec_mask], autograph=False)
        def serve(input_ids, attention_mask):
            input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
            mask = mask_up_to_first_sep(tf, input_ids, attention_mask, sep_id)
            logits = keras_model({"input_ids": input_ids, "attention_mask": mask}, training=False)
            return {"probabilities": tf.nn.softmax(logits, axis=-1),
                    "label_id": tf.argmax(logits, axis=-1, output_type=tf.int32)}

        metadata = _metadata_function(tf, module)

        module.serve = serve
        module.metadata = metadata
        self.module = module
        self.signatures = {"serving_default": serve, "tfxformers_metadata": metadata}
        # Extra signatures (e.g. the TFX pipeline's tf.Example one) are tracked on the module so they are saved.
        for sig_name, function in (extra or {}).items():
            setattr(module, f"extra_{sig_name}", function)
            self.signatures[sig_name] = function


class _EncoderModule:
    """Builds the tf.Module whose functions become the sentence-encoder signatures."""

    def __init__(self, tf, encoder, sep_id: int, metadata_json: str, tokenizer_json: str):
        from tfxformers.models.encoders.base import call_main_layer, main_layer as get_main_layer, masked_mean

        main_layer = get_main_layer(encoder)
        module = tf.Module(name="tfxformers_encoder")
        module.model_variables = list(main_layer.variables)
        module.metadata_json, module.tokenizer_json = tf.constant(metadata_json), tf.constant(tokenizer_json)

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="input_ids"),
                                      tf.TensorSpec((None, None), tf.int32, name="attention_mask")], autograph=False)
        def embed(input_ids, attention_mask):
            input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
            mask = mask_up_to_first_sep(tf, input_ids, attention_mask, sep_id)
            hidden = call_main_layer(main_layer, input_ids, mask, training=False).last_hidden_state
            return {"embedding": masked_mean(tf, hidden, mask)}

        metadata = _metadata_function(tf, module)

        module.embed = embed
        module.metadata = metadata
        self.module = module
        # TF Serving's default signature name is serving_default; embed is the same function by name.
        self.signatures = {"embed": embed, "serving_default": embed, "tfxformers_metadata": metadata}


def export_encoder(checkpoint_dir: str | os.PathLike, name: str, model_base: str | os.PathLike,
                   version: int | None = None, max_length: int = 256) -> Path:
    """Export an encoder checkpoint of any registered family (e.g. MiniLM) as a sentence encoder: ``embed`` ->
    masked-mean ``embedding``."""
    import tensorflow as tf

    from tfxformers.models import encoders

    encoder = encoders.load_encoder(checkpoint_dir)
    tokenizer = encoders.load_tokenizer(checkpoint_dir)
    spec = encoders.spec_for(encoder)
    # A checkpoint with fewer positions than the default (e.g. a small test model) cannot take longer inputs.
    max_length = min(max_length, encoders.max_input_tokens(encoder))
    final, model_dir, version = _new_version_path(model_base, name, version)
    info = {
        "kind": "encoder", "name": name, "version": version, "format_version": 1, "label_names": [],
        "input_names": ["input_ids", "attention_mask"], "max_length": max_length,
        "buckets": [b for b in (16, 32, 64, 128) if b < max_length] + [max_length],
        "pad_id": int(tokenizer.pad_token_id or 0), "cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id,
        "hidden_size": encoder.config.hidden_size, "max_positions": encoders.max_input_tokens(encoder),
        "model_type": spec.model_type, "tokenizer_kind": spec.tokenizer_kind,
        "signatures": {"embed": {"inputs": ["input_ids", "attention_mask"], "outputs": ["embedding"]},
                       "tfxformers_metadata": {"inputs": ["probe"], "outputs": ["metadata_json", "tokenizer_json"]}},
    }
    return _write_version(tf, info, tokenizer, final, model_dir, version, name,
                          lambda meta, tok_json: _EncoderModule(tf, encoder, tokenizer.sep_token_id, meta, tok_json))


def _new_version_path(model_base, name: str, version: int | None):
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"model name {name!r} must be letters, digits, '-' or '_'")
    base = Path(model_base)
    model_dir = base / name
    version = next_version(base, name) if version is None else int(version)
    if version < 1:
        raise UserError("--version must be a positive integer")
    final = model_dir / str(version)
    if final.exists():
        raise UserError(f"{final} already exists; versions are immutable, choose another --version")
    model_dir.mkdir(parents=True, exist_ok=True)
    return final, model_dir, version


class _Gpt2Module:
    """Builds the tf.Module whose functions become the GPT-2 signatures."""

    def __init__(self, tf, hf_model, eos_id: int, pad_id: int, metadata_json: str, tokenizer_json: str,
                 context: int | None = None):
        from tfxformers.models.lm.generate import make_generate_fn

        module = tf.Module(name="tfxformers_gpt2")
        module.model_variables = list(hf_model.variables)
        module.metadata_json, module.tokenizer_json = tf.constant(metadata_json), tf.constant(tokenizer_json)

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="input_ids"),
                                      tf.TensorSpec((None, None), tf.int32, name="attention_mask")], autograph=False)
        def serve(input_ids, attention_mask):
            input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
            out = hf_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, training=False)
            return {"logits": out.logits}

        metadata = _metadata_function(tf, module)

        module.serve = serve
        module.generate = make_generate_fn(hf_model, eos_id, pad_id, context)
        module.metadata = metadata
        self.module = module
        self.signatures = {"serving_default": serve, "generate": module.generate, "tfxformers_metadata": metadata}


def _warmup_records(tf, tokenizer, info: dict, name: str, path: Path) -> int:
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
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name="serving_default"))
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


def export_trained(trained, name: str, model_base: str | os.PathLike, version: int | None = None,
                   extra_signatures=None) -> Path:
    """Export an in-memory ``TrainedModel`` (see ``models.artifacts``) as the next (or given) version."""
    if trained.kind not in ("classifier", "gpt2"):
        raise UserError(f"exporting {trained.kind} models is not supported")
    final, _, version = _new_version_path(model_base, name, version)
    return write_trained(trained, final, name=name, version=version, extra_signatures=extra_signatures)


def write_trained(trained, directory: str | os.PathLike, *, name: str, version: int | None = None,
                  extra_signatures=None) -> Path:
    """Write an in-memory ``TrainedModel`` as a SavedModel at exactly ``directory`` (which must not exist yet),
    atomically, with every signature, assets.extra and warm-up records of a versioned export.

    The TFX Trainer uses this to fill its ``serving_model_dir``; the Pusher picks the integer version later,
    so ``version`` may be None. ``extra_signatures`` (classifiers only) is a callable taking the Keras model
    and returning ``{signature_name: tf.function with an input_signature}`` to save beside the standard ones.
    """
    import tensorflow as tf

    if trained.kind not in ("classifier", "gpt2"):
        raise UserError(f"exporting {trained.kind} models is not supported")
    final = Path(directory)
    if final.exists():
        raise UserError(f"{final} already exists; versions are immutable, choose another --version")
    model_dir = final.parent
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = trained.tokenizer
    if trained.kind == "gpt2":
        info = {
            "kind": "gpt2", "name": name, "version": version, "format_version": 1, "label_names": [],
            "input_names": ["input_ids", "attention_mask"], "max_length": trained.max_length,
            # The context a request may fill (prompt + generated tokens): what the model was trained on.
            "max_positions": min(int(trained.max_length), int(trained.keras_model.config.n_positions)),
            "buckets": [b for b in (16, 32, 64, 128, 256, 512, 1024) if b < trained.max_length] + [trained.max_length],
            "pad_id": tokenizer.pad_token_id, "eos_id": tokenizer.eos_token_id, "bos_id": tokenizer.bos_token_id,
            "signatures": {"serving_default": {"inputs": ["input_ids", "attention_mask"], "outputs": ["logits"]},
                           # Every input [batch]-shaped (input_ids [batch, seq]): models/lm/generate.py.
                           "generate": {"inputs": list(GENERATE_INPUTS), "outputs": list(GENERATE_OUTPUTS)},
                           "tfxformers_metadata": {"inputs": ["probe"], "outputs": ["metadata_json", "tokenizer_json"]}},
        }
        return _write_version(tf, info, tokenizer, final, model_dir, version, name,
                              lambda meta, tok_json: _Gpt2Module(tf, trained.keras_model, tokenizer.eos_token_id,
                                                                 tokenizer.pad_token_id, meta, tok_json,
                                                                 info["max_positions"]))
    sep_id = tokenizer.sep_token_id
    if sep_id is None:
        raise UserError("the tokenizer has no [SEP] token; the batching-safe mask needs one")
    from tfxformers.models import encoders

    encoder_config = trained.info.get("encoder_config") or {}
    spec = encoders.spec_for(encoder_config) if encoder_config.get("model_type") else None
    info = {
        "kind": "classifier", "name": name, "version": version, "format_version": 1,
        "label_names": trained.label_names, "input_names": ["input_ids", "attention_mask"],
        "max_length": trained.max_length, "buckets": list(trained.info.get("buckets", [16, 32, 64, 128])),
        # The longest input the encoder's position embeddings take (the server's sequence limit; RoBERTa
        # reserves two positions).
        "max_positions": encoders.max_input_tokens(encoder_config) if spec else int(trained.max_length),
        "model_type": spec.model_type if spec else None, "tokenizer_kind": spec.tokenizer_kind if spec else None,
        "pad_id": int(tokenizer.pad_token_id or 0), "cls_id": tokenizer.cls_token_id, "sep_id": sep_id,
        "signatures": {"serving_default": {"inputs": ["input_ids", "attention_mask"],
                                           "outputs": ["probabilities", "label_id"]},
                       "tfxformers_metadata": {"inputs": ["probe"], "outputs": ["metadata_json", "tokenizer_json"]}},
        "mask": spec.mask_rule if spec else "attention_mask limited to positions up to the first [SEP] in the graph",
    }
    extras = extra_signatures(trained.keras_model) if extra_signatures else {}
    for sig_name, function in extras.items():
        outputs = function.get_concrete_function().structured_outputs
        info["signatures"][sig_name] = {"inputs": [spec.name for spec in function.input_signature],
                                        "outputs": sorted(outputs)}
    return _write_version(tf, info, tokenizer, final, model_dir, version, name,
                          lambda meta, tok_json: _ClassifierModule(tf, trained.keras_model, sep_id, meta, tok_json,
                                                                   extras))


def _write_version(tf, info, tokenizer, final: Path, model_dir: Path, version: int, name: str, build) -> Path:
    """Write the SavedModel and its assets.extra under a temporary name, then rename it into place."""
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".export-{version}-") as tmp:
        staging = Path(tmp) / "model"
        tokenizer_dir = staging / "assets.extra" / "tokenizer"
        tokenizer.save_pretrained(str(Path(tmp) / "tokenizer"))
        tokenizer_json = (Path(tmp) / "tokenizer" / "tokenizer.json").read_text(encoding="utf-8")
        built = build(json.dumps(info), tokenizer_json)
        tf.saved_model.save(built.module, str(staging), signatures=built.signatures)
        shutil.copytree(Path(tmp) / "tokenizer", tokenizer_dir)
        (staging / "assets.extra" / "tfxformers.json").write_text(json.dumps(info, indent=2))
        _warmup_records(tf, tokenizer, info, name, staging / "assets.extra" / WARMUP_FILE)
        os.rename(staging, final)
    return final


def export_model(model_dir: str | os.PathLike, name: str, model_base: str | os.PathLike,
                 version: int | None = None) -> Path:
    """Export a trained-model directory (``tfxformers train ...`` output), or a BERT checkpoint directory
    (or ``minilm``) as a sentence encoder, into ``model_base/name/``."""
    from tfxformers.models.artifacts import INFO_FILE, load_trained, read_info

    if str(model_dir) == "minilm":
        from tfxformers.models.data.sources import minilm_dir

        return export_encoder(minilm_dir(), name, model_base, version)
    from tfxformers.serving import export_qa

    if export_qa.is_qa_source(model_dir):  # `train qa` output or a *ForQuestionAnswering checkpoint
        return export_qa.export_qa(model_dir, name, model_base, version)
    if (Path(model_dir) / "config.json").is_file() and not (Path(model_dir) / INFO_FILE).is_file():
        return export_encoder(model_dir, name, model_base, version)
    read_info(model_dir)
    return export_trained(load_trained(model_dir), name, model_base, version)
