"""The opt-in ``attention`` signature of a classifier export (``tfxformers export --with-attention``).

``attention``: ``input_ids``, ``attention_mask`` (int32 ``[batch, seq]``) -> ``attentions`` float32
``[batch, layers, heads, seq, seq]`` (row = attending token, column = attended token) and
``probabilities`` ``[batch, labels]``. It uses the same batching-safe mask as ``serving_default`` (the given
mask limited to each row's first [SEP] / ``</s>``), so padded positions get no attention even when TF
Serving's batcher pads with the first element. Default exports leave it out: it costs nothing in weights
but an answer is layers x heads x seq^2 values per text, which a classification client never wants.

``attention_signatures(keras_model, sep_id)`` is the ``extra_signatures`` hook of
``serving.export.trained.export_trained``; ``export_with_attention(model_dir, name, model_base, version)`` is the
whole export with it.
"""
from __future__ import annotations

import os
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.errors import UserError
from tfxformers.serving.export.signatures import assert_same_shape, mask_up_to_first_sep
from tfxformers.serving.export.trained import export_trained

SIGNATURE = "attention"


def attention_signatures(keras_model, sep_id: int) -> dict:
    import tensorflow as tf

    from tfxformers.models.classification.attention import encoder_attentions, encoder_layer

    main_layer = encoder_layer(keras_model)
    uses_token_types = "token_type_ids" in [i.name.split(":")[0] for i in keras_model.inputs]

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="input_ids"),
                                  tf.TensorSpec((None, None), tf.int32, name="attention_mask")], autograph=False)
    def attention(input_ids, attention_mask):
        input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
        mask = mask_up_to_first_sep(tf, input_ids, attention_mask, sep_id)
        features = {"input_ids": input_ids, "attention_mask": mask}
        types = tf.zeros_like(input_ids) if uses_token_types else None
        if types is not None:
            features["token_type_ids"] = types
        logits = keras_model(features, training=False)
        return {"attentions": encoder_attentions(main_layer, input_ids, mask, types),
                "probabilities": tf.nn.softmax(logits, axis=-1)}

    return {SIGNATURE: attention}


def export_with_attention(model_dir: str | os.PathLike, name: str, model_base: str | os.PathLike,
                          version: int | None = None) -> Path:
    """``serving.export.trained.export_model`` for a classifier, plus the ``attention`` signature."""
    from tfxformers.models.artifacts import load_trained, read_info

    info = read_info(model_dir)
    if info["kind"] != "classifier":
        raise UserError(f"--with-attention is for classifiers; {model_dir} holds a {info['kind']} model")
    if info.get("mode") == "hub":
        raise UserError(f"--with-attention: {model_dir} is a hub-mode classifier, whose encoder SavedModel has "
                        "no attention outputs; export it without --with-attention")
    trained = load_trained(model_dir)
    sep_id = trained.tokenizer.sep_token_id
    if sep_id is None:
        raise UserError("the tokenizer has no [SEP] token; the batching-safe mask needs one")
    return export_trained(trained, name, model_base, version,
                         extra_signatures=lambda keras_model: attention_signatures(keras_model, sep_id))
