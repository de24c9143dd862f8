"""The trained-model directory: everything needed later to evaluate, predict, export or serve a model.

Layout (see docs/contracts.md)::

    DIR/tfxformers.json      kind, mode, label names, max length, buckets, input names, encoder config, head
    DIR/weights/model.*      TensorFlow checkpoint of the Keras model's weights
    DIR/hub_encoder/         (hub mode) the encoder SavedModel the model loads with hub.KerasLayer
    DIR/tokenizer/           the tokenizer (save_pretrained; always includes tokenizer.json)
    DIR/labels.json          label names, index = class id
    DIR/training_config.json, metrics.json, plots/, logs/ (TensorBoard), checkpoints/

Weights are stored as a checkpoint and the model is rebuilt from the recorded configuration on load:
Keras 2 whole-model saving of Hugging Face layers is fragile, while rebuilding from config and loading
weights round-trips exactly (tested for every kind).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.errors import UserError

INFO_FILE = "tfxformers.json"
FORMAT_VERSION = 1


@dataclass
class TrainedModel:
    directory: Path
    info: dict
    keras_model: object
    tokenizer: object
    label_names: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def max_length(self) -> int:
        return int(self.info.get("max_length", 128))

    @property
    def input_names(self) -> list[str]:
        return list(self.info.get("input_names", ["input_ids", "attention_mask"]))


def read_info(directory: str | os.PathLike) -> dict:
    path = Path(directory)
    if not path.is_dir():
        raise UserError(f"model directory not found: {path}")
    info_file = path / INFO_FILE
    if not info_file.is_file():
        raise UserError(f"{path} is not a tfxformers model directory (no {INFO_FILE}); "
                        "train one with `tfxformers train classifier` or `tfxformers train gpt2`")
    try:
        return json.loads(info_file.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{info_file} is corrupt: {exc}") from None


def save_classifier(directory: str | os.PathLike, model, tokenizer, label_names: list[str], *, mode: str,
                    encoder_config: dict | None, pooling: str, dropout: float, max_length: int,
                    buckets, input_names: list[str], hub_dir: str | None = None, extra: dict | None = None) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    weights = path / "weights"
    weights.mkdir(exist_ok=True)
    model.save_weights(str(weights / "model"))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    (path / "labels.json").write_text(json.dumps(list(label_names), indent=2))
    info = {
        "kind": "classifier",
        "format_version": FORMAT_VERSION,
        "mode": mode,
        "label_names": list(label_names),
        "num_labels": len(label_names),
        "max_length": int(max_length),
        "buckets": [int(b) for b in buckets],
        "input_names": list(input_names),
        "encoder_config": encoder_config,
        "head": {"pooling": pooling, "dropout": dropout},
        "hub_dir": hub_dir,
        "pad_id": int(tokenizer.pad_token_id or 0),
        "sep_id": tokenizer.sep_token_id,
        "cls_id": tokenizer.cls_token_id,
    }
    info.update(extra or {})
    (path / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path


def build_classifier_from_info(directory: Path, info: dict):
    """A freshly built (uncompiled) classifier with the architecture the info describes."""
    if info["mode"] == "hub":
        from tfxformers.models.transfer import build_hub_classifier

        return build_hub_classifier(directory / info["hub_dir"], info["num_labels"],
                                    dropout=info["head"]["dropout"], compile=False)
    from transformers import BertConfig

    from tfxformers.models.bert import build_bert_classifier

    config = BertConfig.from_dict(info["encoder_config"])
    return build_bert_classifier(
        config, info["num_labels"], mode="frozen" if info["mode"] == "frozen" else "finetune",
        pooling=info["head"]["pooling"], dropout=info["head"]["dropout"],
        use_token_type_ids="token_type_ids" in info["input_names"], compile=False,
    )


def load_trained(directory: str | os.PathLike) -> TrainedModel:
    """Load any trained-model directory (classifier or GPT-2) with its tokenizer and labels."""
    path = Path(directory)
    info = read_info(path)
    kind = info.get("kind")
    if kind == "classifier":
        from transformers import AutoTokenizer

        model = build_classifier_from_info(path, info)
        status = model.load_weights(str(path / "weights" / "model"))
        status.expect_partial()
        tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
        return TrainedModel(path, info, model, tokenizer, list(info["label_names"]))
    if kind == "gpt2":
        from tfxformers.models import gpt2

        return gpt2.load_trained_gpt2(path, info)
    raise UserError(f"{path}: unknown model kind {kind!r}")
