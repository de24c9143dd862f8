"""The question-answering model: an encoder with a span head, as a functional Keras model.

``build_qa_model(encoder)`` returns a Keras model whose inputs are named as the tokenizer names them
(``input_ids``, ``attention_mask``, ``token_type_ids``; int32, dynamic batch and length) and whose
outputs are ``{"start_logits": [batch, seq], "end_logits": [batch, seq]}``: a ``Dense(2)`` named
``qa_outputs`` over every token's last hidden state, exactly as ``BertForQuestionAnswering`` computes them,
so a checkpoint saved from that class (SQuAD-trained BERTs on the Hugging Face Hub) loads into it without
torch: ``load_qa_checkpoint(dir)`` fills the encoder (any family of ``models.encoders``: BERT, RoBERTa,
DistilBERT, ELECTRA) from its base-model weights and the head from ``qa_outputs.*``.
A plain encoder checkpoint (MiniLM) loads too, with a freshly initialised head, to be trained.

Trained QA directories (``tfxformers train qa``) are written by ``models.artifacts.save_qa`` (kind ``qa``:
``weights/``, ``tokenizer/``, the info file); ``load_qa`` reads them, or a Hugging Face QA checkpoint, as a
``models.artifacts.TrainedModel``, rebuilding the model from the recorded encoder config before loading its
weights (``load_trained_qa``, the loader ``artifacts.KINDS`` names for kind ``qa``).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError
from tfxformers.models.artifacts import INFO_FILE, TrainedModel, load_weights_and_tokenizer, read_info

KIND = "qa"
HEAD = "qa_outputs"


def safetensors_keys(path: str | os.PathLike) -> list[str]:
    """Tensor names of a safetensors file, from its JSON header alone (no numpy, nothing else read)."""
    with open(path, "rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        if size > 100 * 1024 * 1024:
            raise UserError(f"{path} is not a safetensors file (header of {size} bytes)")
        header = json.loads(handle.read(size))
    return [k for k in header if k != "__metadata__"]


def is_qa_checkpoint(directory: str | os.PathLike) -> bool:
    """A Hugging Face checkpoint directory with a span head (saved from ``*ForQuestionAnswering``)."""
    path = Path(directory)
    if not (path / "config.json").is_file() or (path / INFO_FILE).is_file():
        return False
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if any("QuestionAnswering" in a for a in config.get("architectures") or []):
        return True
    weights = path / "model.safetensors"
    try:
        return weights.is_file() and f"{HEAD}.weight" in safetensors_keys(weights)
    except (OSError, ValueError, struct.error):
        return False


def build_qa_model(encoder, *, name: str = "qa_model"):
    """The span model around ``encoder``: any registered family's TF model (``models.encoders``), or its
    config / config dict for random weights. ``token_type_ids`` is an input for families that take it."""
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base

    tf = base._tf()
    if not hasattr(encoder, "layers") and not hasattr(encoder, "call"):  # a config or a config dict
        encoder = base.model_from_config(encoder)
    main_layer = base.main_layer(encoder)
    if getattr(main_layer, "pooler", None) is not None:
        main_layer.pooler.trainable = False  # the span head never reads it: no gradient would reach it
    # As for classifiers: building the graph would otherwise AutoGraph-convert all of the encoder's Python.
    if not getattr(main_layer, "_tfxformers_no_autograph", False):
        main_layer.call = tf.autograph.experimental.do_not_convert(main_layer.call)
        main_layer._tfxformers_no_autograph = True
    inputs = {n: tf.keras.Input(shape=(None,), dtype=tf.int32, name=n)
              for n in encoders.input_names(main_layer, use_token_type_ids=True)}
    hidden = base.call_main_layer(main_layer, inputs["input_ids"], inputs["attention_mask"],
                                  inputs.get("token_type_ids")).last_hidden_state
    initializer = tf.keras.initializers.TruncatedNormal(stddev=main_layer.config.initializer_range)
    logits = tf.keras.layers.Dense(2, kernel_initializer=initializer, name=HEAD)(hidden)
    start = tf.keras.layers.Lambda(lambda t: t[..., 0], name="start_logits")(logits)
    end = tf.keras.layers.Lambda(lambda t: t[..., 1], name="end_logits")(logits)
    model = tf.keras.Model(inputs=inputs, outputs={"start_logits": start, "end_logits": end}, name=name)
    model.encoder_config = main_layer.config
    return base.skip_autograph(model)


def compile_qa_model(model, *, learning_rate: float = 5e-5, num_train_steps: int = 1000, warmup_ratio: float = 0.1,
                     weight_decay: float = 0.01, optimizer=None):
    """AdamW with warm-up and decay over ``num_train_steps`` (or ``optimizer``, e.g. on a CPU-budget schedule:
    ``models.qa.budget``); the loss is the mean of the start and end cross-entropies."""
    import tensorflow as tf

    from tfxformers.models.encoders.base import create_adamw

    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = optimizer or create_adamw(learning_rate, num_train_steps, warmup_ratio, weight_decay)
    model.compile(optimizer=optimizer,
                  loss={"start_logits": loss, "end_logits": loss}, loss_weights={"start_logits": 0.5, "end_logits": 0.5},
                  metrics={"start_logits": [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                           "end_logits": [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")]})
    return model


def missing_head(checkpoint_dir: str | os.PathLike) -> str | None:
    """What is wrong with a checkpoint whose ``config.json`` names a ``*ForQuestionAnswering`` class but whose
    ``model.safetensors`` (the only file the span head is read from) has no ``qa_outputs`` weights; None when
    it has them or names no such class. Such a checkpoint answers with a random head: ``load_qa`` refuses it,
    training starts from it with a new head and says so."""
    path = Path(checkpoint_dir)
    try:
        architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    declared = next((a for a in architectures if isinstance(a, str) and "QuestionAnswering" in a), None)
    weights = path / "model.safetensors"
    if declared is None or (weights.is_file() and f"{HEAD}.weight" in safetensors_keys(weights)):
        return None
    where = weights if weights.is_file() else f"{path} (no model.safetensors, the file a span head is read from)"
    return f"{path / 'config.json'} names {declared}, but {where} has no {HEAD} weights"


def load_qa_checkpoint(checkpoint_dir: str | os.PathLike):
    """``(model, has_head)``: a checkpoint's encoder (any registered family) and its ``qa_outputs`` head, if
    it has one, loaded without torch. ``has_head`` False: the head is freshly initialised, to be trained."""
    import safetensors.numpy

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base

    encoder = base.load_encoder(checkpoint_dir)
    model = build_qa_model(encoder)
    weights = Path(checkpoint_dir) / "model.safetensors"
    keys = safetensors_keys(weights) if weights.is_file() else []
    if f"{HEAD}.weight" not in keys:
        return model, False
    state = safetensors.numpy.load_file(str(weights))
    kernel, bias = state[f"{HEAD}.weight"], state.get(f"{HEAD}.bias")
    hidden = model.get_layer(HEAD).kernel.shape[0]
    if kernel.shape != (2, hidden) or (bias is not None and bias.shape != (2,)):
        raise UserError(f"{weights}: {HEAD}.weight is {tuple(kernel.shape)}, expected (2, {hidden}) for a span head")
    head = model.get_layer(HEAD)
    head.set_weights([kernel.T, bias if bias is not None else head.get_weights()[1] * 0])
    return model, True


def load_trained_qa(path: Path, info: dict) -> TrainedModel:
    """The trained QA model in ``path`` (whose checked info file is ``info``) with its tokenizer."""
    model, tokenizer = load_weights_and_tokenizer(path, lambda: build_qa_model(info["encoder_config"]))
    return TrainedModel(path, info, model, tokenizer)


def load_qa(directory: str | os.PathLike) -> TrainedModel:
    """A trained QA directory, or a Hugging Face QA checkpoint directory (its head loaded as is)."""
    path = Path(directory)
    if is_qa_checkpoint(path):
        from tfxformers.models import encoders

        problem = missing_head(path)
        if problem:
            raise UserError(f"{problem}: a broken checkpoint, whose answers would come from a random span head; "
                            f"copy it again, or fine-tune it first with `tfxformers train qa --encoder {path}`")

        tokenizer = encoders.load_tokenizer(path)
        model, _ = load_qa_checkpoint(path)
        from tfxformers.models.qa import features

        max_seq_len = min(features.MAX_SEQ_LEN, encoders.max_input_tokens(model.encoder_config))
        # Both derived from the checkpoint: 384 / 128, or what its positions allow.
        info = {"kind": KIND, "max_seq_len": max_seq_len, "doc_stride": features.default_doc_stride(max_seq_len)[0],
                "input_names": list(model.input_names), "source": str(path.resolve())}
        return TrainedModel(path, info, model, tokenizer)
    return load_trained_qa(path, read_info(path, KIND))
