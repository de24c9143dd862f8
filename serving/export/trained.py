"""Export entry points: a trained-model directory or an in-memory ``TrainedModel`` -> a version directory.

``export_model(model_dir, name, model_base)`` writes ``model_base/name/<version>/`` (the next version by
default) for whatever ``model_dir`` holds: a ``tfxformers train classifier|gpt2|tagger`` directory (the tagger: ``serving.export.tagger``), a ``train qa``
directory or ``*ForQuestionAnswering`` checkpoint (``serving.export.qa``), an encoder checkpoint or
``minilm`` (a sentence encoder, ``serving.export.encoder``). ``export_trained`` / ``write_trained`` take the
loaded model instead (the TFX Trainer's path).

Each version is a SavedModel (tag ``serve``) with explicit signatures, every input int32 with a dynamic
batch and a dynamic sequence length, named as the tokenizer names them, plus ``assets.extra/``:
``tfxformers.json`` (kind, labels, input names, buckets, special ids, ``max_positions``: the longest input
the model takes, which the server enforces), ``tokenizer/`` and ``tf_serving_warmup_requests``. A version
appears atomically (``serving.layout``): a polling server never sees half a model.
"""
from __future__ import annotations

import os
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.serving import layout
from tfxformers.serving.export import qa
from tfxformers.serving.export.classifier import write_classifier
from tfxformers.serving.export.encoder import export_encoder
from tfxformers.serving.export.gpt2 import write_gpt2
from tfxformers.serving.export.tagger import write_tagger

EXPORTABLE_KINDS = ("classifier", "gpt2", "tagger")


def export_trained(trained, name: str, model_base: str | os.PathLike, version: int | None = None,
                   extra_signatures=None) -> Path:
    """Export an in-memory ``TrainedModel`` (see ``models.artifacts``) as the next (or given) version."""
    if trained.kind not in EXPORTABLE_KINDS:
        raise UserError(f"exporting {trained.kind} models is not supported")
    final, _, version = layout.new_version_path(model_base, name, version)
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

    if trained.kind not in EXPORTABLE_KINDS:
        raise UserError(f"exporting {trained.kind} models is not supported")
    final = Path(directory)
    layout.check_version_is_new(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if trained.kind == "gpt2":
        return write_gpt2(tf, trained, final, name=name, version=version)
    if trained.kind == "tagger":
        return write_tagger(tf, trained, final, name=name, version=version)
    return write_classifier(tf, trained, final, name=name, version=version, extra_signatures=extra_signatures)


def export_model(model_dir: str | os.PathLike, name: str, model_base: str | os.PathLike,
                 version: int | None = None) -> Path:
    """Export a trained-model directory (``tfxformers train ...`` output), or a BERT checkpoint directory
    (or ``minilm``) as a sentence encoder, into ``model_base/name/``."""
    from tfxformers.models.artifacts import INFO_FILE, load_trained, read_info

    if str(model_dir) == "minilm":
        from tfxformers.models.data.sources import minilm_dir

        return export_encoder(minilm_dir(), name, model_base, version)
    if qa.is_qa_source(model_dir):  # `train qa` output or a *ForQuestionAnswering checkpoint
        return qa.export_qa(model_dir, name, model_base, version)
    if (Path(model_dir) / "config.json").is_file() and not (Path(model_dir) / INFO_FILE).is_file():
        return export_encoder(model_dir, name, model_base, version)
    read_info(model_dir)
    return export_trained(load_trained(model_dir), name, model_base, version)
