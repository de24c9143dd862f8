"""A trained classifier read back from its directory: rebuilt, evaluated on a split, asked for labels.

``load_trained_classifier`` is the loader ``models.artifacts.KINDS`` names for kind ``classifier``: it
rebuilds the architecture the info file records (any encoder family, or the hub encoder) and loads the
weights into it. ``evaluate_model`` and ``predict_texts`` are ``tfxformers evaluate`` and ``predict``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from tfxformers.errors import UserError
from tfxformers.models.artifacts import TrainedModel, first_line, load_tokenizer


def build_classifier_from_info(directory: Path, info: dict):
    """A freshly built (uncompiled) classifier with the architecture the info describes."""
    if info["mode"] == "hub":
        from tfxformers.models.classification.transfer import build_hub_classifier

        return build_hub_classifier(directory / info["hub_dir"], info["num_labels"],
                                    dropout=info["head"]["dropout"], compile=False)
    from tfxformers.models.encoders.base import build_classifier

    # The recorded config's model_type picks the family (BERT, RoBERTa, DistilBERT, ELECTRA).
    return build_classifier(
        info["encoder_config"], info["num_labels"], mode="frozen" if info["mode"] == "frozen" else "finetune",
        pooling=info["head"]["pooling"], dropout=info["head"]["dropout"],
        use_token_type_ids="token_type_ids" in info["input_names"], compile=False,
    )


def load_trained_classifier(path: Path, info: dict) -> TrainedModel:
    """The classifier in ``path`` (whose checked info file is ``info``), with its tokenizer and labels."""
    from transformers import AutoTokenizer

    try:
        model = build_classifier_from_info(path, info)
        status = model.load_weights(str(path / "weights" / "model"))
        status.assert_existing_objects_matched()
    except Exception as exc:  # TensorFlow's errors name the tensor, not what the user must do
        raise UserError(f"{path}: the weights in weights/ are damaged or belong to another model "
                        f"({first_line(exc)}); retrain the model or copy weights/ again") from None
    status.expect_partial()
    tokenizer = load_tokenizer(path, lambda p: AutoTokenizer.from_pretrained(p))
    return TrainedModel(path, info, model, tokenizer, list(info["label_names"]))


def evaluate_model(model_dir: str | os.PathLike, data: str | None = None, split: str = "test",
                   text_column: str = "text", label_column: str = "label", limit: int | None = None) -> dict:
    """Metrics of a trained classifier on a split of its own data set, or of another one with the same labels."""
    from tfxformers.models import artifacts
    from tfxformers.models.classification.train import classification_metrics
    from tfxformers.models.data.classification import load_classification
    from tfxformers.models.tokenization import predict_logits

    info = artifacts.read_info(model_dir)
    if info["kind"] != "classifier":
        raise UserError(f"{model_dir} holds a {info['kind']} model; evaluate works on classifiers")
    source = data or info.get("data")
    if not source:
        raise UserError("this model does not record its data set; pass --data")
    if data is None:
        text_column = info.get("text_column", text_column)
        label_column = info.get("label_column", label_column)
    dataset = load_classification(source, text_column, label_column)
    if dataset.label_names != info["label_names"]:
        missing = sorted(set(dataset.label_names) - set(info["label_names"]))
        if missing:
            raise UserError(f"{source} has labels the model does not know: {missing}")
        index = {name: i for i, name in enumerate(info["label_names"])}
        remap = np.array([index[n] for n in dataset.label_names])
        for part in (dataset.train, dataset.validation, dataset.test):
            part.labels = remap[part.labels]
    part = dataset.split(split).subset(limit)
    trained = artifacts.load_trained(model_dir)
    logits = predict_logits(trained.keras_model, trained.tokenizer, part.texts, max_length=trained.max_length)
    metrics = classification_metrics(part.labels, logits, trained.label_names)
    metrics.update(split=split, data=str(source))
    return metrics


def predict_texts(model_dir: str | os.PathLike, texts: list[str], *, window_overlap: int | None = None) -> list[dict]:
    """Label and probabilities per text; texts longer than the model's max length are scored in windows
    combined as the proxy does (``models.windows``), not cut. An explicit ``window_overlap`` no window can
    honour is a ``UserError``; None: 32, lowered to half a window (with a note when a text is windowed)."""
    from tfxformers.models import artifacts
    from tfxformers.models.tokenization import windowed_probabilities

    from tfxformers.models.texts import BLANK, first_blank

    blank = first_blank(texts)
    if not texts or blank is not None:
        raise UserError("give at least one non-empty text to classify (as arguments or with --file)"
                        + (f"; text {blank + 1} {BLANK}" if texts else ""))
    info = artifacts.read_info(model_dir)
    if info["kind"] != "classifier":
        raise UserError(f"{model_dir} holds a {info['kind']} model; use `tfxformers generate` for GPT-2")
    from tfxformers.models.windows import check_overlap, max_overlap

    max_length = int(info.get("max_length", 128))
    if window_overlap is not None and check_overlap(window_overlap, max_length):
        raise UserError(check_overlap(window_overlap, max_length))
    overlap = min(32, max_overlap(max_length)) if window_overlap is None else window_overlap
    trained = artifacts.load_trained(model_dir)
    probs, windows, tokens = windowed_probabilities(trained.keras_model, trained.tokenizer, texts,
                                                    max_length=trained.max_length, overlap=overlap)
    if window_overlap is None and overlap < 32 and max(windows) > 1:
        print(f"note: --window-overlap not given: {overlap}, not the default 32, which is more than windows of this "
              f"model's {max_length} tokens can share", file=sys.stderr)
    results = []
    for text, p, n_windows, n_tokens in zip(texts, probs, windows, tokens):
        best = int(p.argmax())
        results.append({"text": text, "label": trained.label_names[best], "probability": float(p[best]),
                        "probabilities": {n: float(v) for n, v in zip(trained.label_names, p)},
                        "windows": n_windows, "tokens": n_tokens})
    return results
