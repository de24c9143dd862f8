"""Classifier exports: ``serving_default`` (``input_ids``, ``attention_mask`` -> ``probabilities [batch, labels]``,
``label_id [batch]``) and ``tfxformers_metadata``, plus any extra signatures a caller adds (the TFX
pipeline's tf.Example one, ``--with-attention``'s ``attention``).

``write_classifier(trained, directory, name=..., version=...)`` writes an in-memory ``TrainedModel`` of
kind ``classifier`` at exactly ``directory``; ``serving.export.trained`` chooses it by kind.
"""
from __future__ import annotations

from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.serving import layout
from tfxformers.serving.export.signatures import assert_same_shape, mask_up_to_first_sep, metadata_function
from tfxformers.serving.export.writer import write_version


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

        metadata = metadata_function(tf, module)

        module.serve = serve
        module.metadata = metadata
        self.module = module
        self.signatures = {layout.DEFAULT_SIGNATURE: serve, layout.METADATA_SIGNATURE: metadata}
        # Extra signatures (e.g. the TFX pipeline's tf.Example one) are tracked on the module so they are saved.
        for sig_name, function in (extra or {}).items():
            setattr(module, f"extra_{sig_name}", function)
            self.signatures[sig_name] = function


def classifier_info(trained, name: str, version: int | None, sep_id: int) -> dict:
    """The version's ``assets.extra/tfxformers.json`` (also the ``metadata_json`` its metadata signature answers)."""
    from tfxformers.models import encoders

    encoder_config = trained.info.get("encoder_config") or {}
    spec = encoders.spec_for(encoder_config) if encoder_config.get("model_type") else None
    return {
        "kind": "classifier", "name": name, "version": version, "format_version": 1,
        "label_names": trained.label_names, "input_names": ["input_ids", "attention_mask"],
        "max_length": trained.max_length, "buckets": list(trained.info.get("buckets", [16, 32, 64, 128])),
        # The longest input the encoder's position embeddings take (the server's sequence limit; RoBERTa
        # reserves two positions).
        "max_positions": encoders.max_input_tokens(encoder_config) if spec else int(trained.max_length),
        "model_type": spec.model_type if spec else None, "tokenizer_kind": spec.tokenizer_kind if spec else None,
        "pad_id": int(trained.tokenizer.pad_token_id or 0), "cls_id": trained.tokenizer.cls_token_id, "sep_id": sep_id,
        "signatures": {layout.DEFAULT_SIGNATURE: {"inputs": ["input_ids", "attention_mask"],
                                                  "outputs": ["probabilities", "label_id"]},
                       layout.METADATA_SIGNATURE: {"inputs": ["probe"],
                                                   "outputs": ["metadata_json", "tokenizer_json"]}},
        "mask": spec.mask_rule if spec else "attention_mask limited to positions up to the first [SEP] in the graph",
    }


def write_classifier(tf, trained, final: Path, *, name: str, version: int | None, extra_signatures=None) -> Path:
    """Write a classifier ``TrainedModel`` at ``final`` (checked not to exist, its parent created)."""
    tokenizer = trained.tokenizer
    sep_id = tokenizer.sep_token_id
    if sep_id is None:
        raise UserError("the tokenizer has no [SEP] token; the batching-safe mask needs one")
    info = classifier_info(trained, name, version, sep_id)
    extras = extra_signatures(trained.keras_model) if extra_signatures else {}
    for sig_name, function in extras.items():
        outputs = function.get_concrete_function().structured_outputs
        info["signatures"][sig_name] = {"inputs": [spec.name for spec in function.input_signature],
                                        "outputs": sorted(outputs)}
    return write_version(tf, info, tokenizer, final, name,
                         lambda meta, tok_json: _ClassifierModule(tf, trained.keras_model, sep_id, meta, tok_json,
                                                                  extras))
