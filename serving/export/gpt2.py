"""GPT-2 exports: ``serving_default`` (``input_ids``, ``attention_mask`` -> ``logits``), ``generate`` (the in-graph
generation of ``models/lm/generate.py``, every input per row so the batcher can merge calls) and
``tfxformers_metadata``.

``write_gpt2(tf, trained, directory, name=..., version=...)`` writes an in-memory ``TrainedModel`` of kind
``gpt2`` at exactly ``directory``; ``serving.export.trained`` chooses it by kind.
"""
from __future__ import annotations

from pathlib import Path

from tfxformers.models.buckets import buckets_up_to
from tfxformers.models.lm.generate import INPUT_NAMES as GENERATE_INPUTS, OUTPUT_NAMES as GENERATE_OUTPUTS
from tfxformers.serving import layout
from tfxformers.serving.export.signatures import assert_same_shape, metadata_function
from tfxformers.serving.export.writer import write_version


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

        metadata = metadata_function(tf, module)

        module.serve = serve
        module.generate = make_generate_fn(hf_model, eos_id, pad_id, context)
        module.metadata = metadata
        self.module = module
        self.signatures = {layout.DEFAULT_SIGNATURE: serve, "generate": module.generate,
                           layout.METADATA_SIGNATURE: metadata}


# GPT-2 contexts run longer than classifier inputs, so its bucket ladder goes on to 1024.
GPT2_BUCKETS = (16, 32, 64, 128, 256, 512, 1024)


def gpt2_info(trained, name: str, version: int | None) -> dict:
    """The version's ``assets.extra/tfxformers.json`` (also the ``metadata_json`` its metadata signature answers)."""
    tokenizer = trained.tokenizer
    return {
        "kind": "gpt2", "name": name, "version": version, "format_version": 1, "label_names": [],
        "input_names": ["input_ids", "attention_mask"], "max_length": trained.max_length,
        # The context a request may fill (prompt + generated tokens): what the model was trained on.
        "max_positions": min(int(trained.max_length), int(trained.keras_model.config.n_positions)),
        "buckets": list(buckets_up_to(int(trained.max_length), GPT2_BUCKETS)),
        "pad_id": tokenizer.pad_token_id, "eos_id": tokenizer.eos_token_id, "bos_id": tokenizer.bos_token_id,
        "signatures": {layout.DEFAULT_SIGNATURE: {"inputs": ["input_ids", "attention_mask"], "outputs": ["logits"]},
                       # Every input [batch]-shaped (input_ids [batch, seq]): models/lm/generate.py.
                       "generate": {"inputs": list(GENERATE_INPUTS), "outputs": list(GENERATE_OUTPUTS)},
                       layout.METADATA_SIGNATURE: {"inputs": ["probe"],
                                                   "outputs": ["metadata_json", "tokenizer_json"]}},
    }


def write_gpt2(tf, trained, final: Path, *, name: str, version: int | None) -> Path:
    """Write a GPT-2 ``TrainedModel`` at ``final`` (checked not to exist, its parent created)."""
    tokenizer = trained.tokenizer
    info = gpt2_info(trained, name, version)
    return write_version(tf, info, tokenizer, final, name,
                         lambda meta, tok_json: _Gpt2Module(tf, trained.keras_model, tokenizer.eos_token_id,
                                                            tokenizer.pad_token_id, meta, tok_json,
                                                            info["max_positions"]))
