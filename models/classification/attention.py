"""Look inside a trained classifier: the attention weights of every layer and head for one text.

``attention_for_text(trained, text)`` runs the classifier's encoder once with ``output_attentions=True``
and returns an ``Attention``: the tokens, the weights ``[layers, heads, tokens, tokens]`` (row = the
token attending, column = the token attended to; every row sums to 1 over the text's tokens) and the
class probabilities. ``rollout(weights)`` is attention rollout (Abnar & Zuidema, 2020): each layer's
head-averaged weights with the residual connection added as an identity (``0.5 * A + 0.5 * I``, rows
renormalised) multiplied through the layers, so row 0 says how much each input token reaches the first
token ([CLS] / ``<s>``) that a ``cls``-pooled head reads. ``merge_words`` folds word pieces back into
words. ``tfxformers attention`` (``models.classification.report_cli``) draws them with
``models.classification.plots``.

Nothing here is specific to BERT: the encoder is whichever layer of the Keras classifier is the main
layer of a family in the encoder registry (``models.encoders``: BERT, RoBERTa, DistilBERT, ELECTRA), called
through ``encoders.base.call_main_layer`` as the classifier itself calls it; the first token is [CLS] or
``<s>``, whatever the family's tokenizer puts there.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError


@dataclass
class Attention:
    tokens: list[str]
    weights: np.ndarray  # [layers, heads, tokens, tokens]
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    label_names: list[str] = field(default_factory=list)
    text: str = ""
    truncated: bool = False
    merged: bool = False
    # Per token: (start, end) character offsets in ``text`` and the word index (None for special tokens).
    offsets: list | None = None
    word_ids: list | None = None

    @property
    def layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def heads(self) -> int:
        return int(self.weights.shape[1])

    @property
    def label(self) -> str:
        if not len(self.probabilities):
            return ""
        best = int(np.argmax(self.probabilities))
        return self.label_names[best] if best < len(self.label_names) else str(best)

    def check_layer_head(self, layer: int | None, head: int | None) -> tuple[int, int]:
        """``(layer, head)`` with the defaults filled in (the last layer, head 0), or a ``UserError``."""
        layer = self.layers - 1 if layer is None else layer
        head = 0 if head is None else head
        if not 0 <= layer < self.layers:
            raise UserError(f"--layer {layer} is out of range: this model has layers 0..{self.layers - 1}")
        if not 0 <= head < self.heads:
            raise UserError(f"--head {head} is out of range: this model has heads 0..{self.heads - 1}")
        return layer, head

    def to_json(self, layer: int | None = None, head: int | None = None) -> dict:
        weights = self.weights
        if layer is not None:
            weights = weights[layer]
            if head is not None:
                weights = weights[head]
        return {"text": self.text, "tokens": self.tokens, "layers": self.layers, "heads": self.heads,
                "label": self.label, "probabilities": dict(zip(self.label_names, map(float, self.probabilities))),
                "truncated": self.truncated, "merged_words": self.merged, "layer": layer, "head": head,
                "attentions": np.round(weights.astype(np.float64), 6).tolist()}


def encoder_layer(keras_model):
    """The encoder family's main layer inside a classifier built by ``encoders.build_classifier``."""
    from tfxformers.models import encoders

    for layer in keras_model.layers:
        if getattr(getattr(layer, "config", None), "model_type", None) in encoders.FAMILIES:
            return layer
    raise UserError("this classifier has no Hugging Face encoder layer to read attention from (a hub-mode "
                    "model wraps its encoder in a SavedModel); train it with --mode finetune, partial or frozen")


def encoder_attentions(main_layer, input_ids, attention_mask, token_type_ids=None):
    """The encoder's attention weights as one tensor ``[batch, layers, heads, seq, seq]`` (TensorFlow ops,
    so the export's ``attention`` signature traces exactly this)."""
    import tensorflow as tf

    from tfxformers.models.encoders.base import call_main_layer

    outputs = call_main_layer(main_layer, input_ids, attention_mask, token_type_ids, training=False,
                              output_attentions=True)
    return tf.stack(list(outputs.attentions), axis=1)


def attention_for_text(trained, text: str, *, max_length: int | None = None) -> Attention:
    """Attention maps of a loaded ``TrainedModel`` (``models.artifacts.load_trained``) for one text."""
    import tensorflow as tf

    from tfxformers.models.tokenization import softmax

    if not isinstance(text, str) or not text.strip():
        raise UserError("give a non-empty text to look at")
    main_layer = encoder_layer(trained.keras_model)
    tokenizer = trained.tokenizer
    limit = max_length or trained.max_length
    full = tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    encoded = tokenizer(text, add_special_tokens=True, truncation=True, max_length=limit,
                        return_offsets_mapping=True, verbose=False)
    ids = np.asarray([encoded["input_ids"]], dtype=np.int32)
    mask = np.ones_like(ids)
    features = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in trained.input_names:
        features["token_type_ids"] = np.zeros_like(ids)
    weights = encoder_attentions(main_layer, tf.constant(ids), tf.constant(mask),
                                 tf.constant(features["token_type_ids"]) if "token_type_ids" in features else None)
    logits = np.asarray(trained.keras_model(features, training=False))
    result = Attention(tokens=tokenizer.convert_ids_to_tokens(encoded["input_ids"]),
                       weights=np.asarray(weights)[0].astype(np.float32),
                       probabilities=softmax(logits)[0], label_names=list(trained.label_names), text=text,
                       truncated=len(full) > limit, offsets=[tuple(o) for o in encoded["offset_mapping"]],
                       word_ids=encoded.word_ids())
    return result


def attention_for_model(model_dir: str | os.PathLike, text: str) -> Attention:
    """Load a trained-model directory and read its attention for ``text``."""
    from tfxformers.models import artifacts

    info = artifacts.read_info(model_dir)
    if info["kind"] != "classifier":
        raise UserError(f"{model_dir} holds a {info['kind']} model; attention maps are drawn for classifiers")
    if info.get("mode") == "hub":
        raise UserError(f"{model_dir} is a hub-mode classifier: its encoder is an opaque SavedModel with no "
                        "attention outputs; use a finetune, partial or frozen model")
    if not isinstance(text, str) or not text.strip():
        raise UserError("give a non-empty text to look at")
    return attention_for_text(artifacts.load_trained(model_dir), text)


def rollout(weights: np.ndarray, *, residual: bool = True) -> np.ndarray:
    """Attention rollout ``[layers, tokens, tokens]``: entry ``l`` is the flow from the inputs to layer
    ``l``'s outputs. Heads are averaged; with ``residual`` the skip connection is modelled as an identity
    averaged in (``0.5 * A + 0.5 * I``, rows renormalised), as Abnar & Zuidema do."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"expected weights [layers, heads, n, n], got shape {weights.shape}")
    n = weights.shape[-1]
    flow = np.eye(n)
    out = []
    for layer in weights:
        a = layer.mean(axis=0)
        if residual:
            a = 0.5 * a + 0.5 * np.eye(n)
            a = a / a.sum(axis=-1, keepdims=True)
        flow = a @ flow
        out.append(flow)
    return np.stack(out)


def merge_words(result: Attention) -> Attention:
    """The same maps over words instead of word pieces: attention *to* a word is the sum over its pieces
    (so rows still sum to 1), attention *from* a word the mean over its pieces. Special tokens stay as
    they are. Needs the offsets a fast tokenizer gives (``attention_for_text`` records them)."""
    word_ids, offsets = result.word_ids, result.offsets
    if word_ids is None or offsets is None:
        raise UserError("merging word pieces needs the tokenizer's word ids (a fast tokenizer)")
    groups: list[list[int]] = []
    labels: list[str] = []
    previous = object()
    for i, word in enumerate(word_ids):
        if word is not None and word == previous:
            groups[-1].append(i)
        else:
            groups.append([i])
        previous = word
    for group in groups:
        if word_ids[group[0]] is None:
            labels.append(result.tokens[group[0]])
        else:
            start, end = offsets[group[0]][0], offsets[group[-1]][1]
            labels.append(result.text[start:end])
    n = len(groups)
    to_word = np.zeros((len(word_ids), n))  # sums columns of a word's pieces
    for j, group in enumerate(groups):
        to_word[group, j] = 1.0
    from_word = to_word / to_word.sum(axis=0, keepdims=True)  # averages rows of a word's pieces
    weights = np.einsum("ip,lhpq,qj->lhij", from_word.T, result.weights.astype(np.float64), to_word)
    merged = Attention(tokens=labels, weights=weights.astype(np.float32), probabilities=result.probabilities,
                       label_names=result.label_names, text=result.text, truncated=result.truncated, merged=True)
    return merged


def write_attention_plots(result: Attention, output: str | os.PathLike, *, layer: int | None = None,
                          head: int | None = None) -> dict:
    """``head.png`` (one head), ``grid.png`` (every layer x head), ``rollout.png`` (first token's rollout
    after each layer) and ``attention.json`` in ``output``; returns ``{view: path}``."""
    from pathlib import Path

    from tfxformers.models.classification import plots

    layer, head = result.check_layer_head(layer, head)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"--output {output} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    unit = "words" if result.merged else "tokens"
    verdict = f" -> {result.label} ({float(np.max(result.probabilities)):.2f})" if result.label else ""
    flow = rollout(result.weights)[:, 0, :]
    paths = {
        "head": plots.attention_head(result.tokens, result.weights[layer, head], out / "head.png",
                                     title=f"layer {layer}, head {head} ({unit}){verdict}"),
        "grid": plots.attention_grid(result.weights, out / "grid.png",
                                     title=f"every layer x head, {len(result.tokens)} {unit}{verdict}"),
        "rollout": plots.attention_rollout(result.tokens, flow, out / "rollout.png",
                                           title=f"attention rollout to {result.tokens[0]} (residual averaged in)"),
    }
    import json

    (out / "attention.json").write_text(json.dumps({**result.to_json(), "rollout_first_token": flow.tolist()}))
    paths["json"] = out / "attention.json"
    return paths
