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
    """``tfxformers.json`` of a trained-model directory, after checking (cheaply, no TensorFlow) that the
    files a load needs are there and whole; a ``UserError`` names the missing or damaged file."""
    path = Path(directory)
    if not path.exists():
        raise UserError(f"model directory not found: {path}")
    if not path.is_dir():
        raise UserError(f"{path} is a file, not a model directory; give the directory `tfxformers train` wrote")
    info_file = path / INFO_FILE
    if not info_file.is_file():
        unfinished = (path / "training_config.json").is_file()
        raise UserError(f"{path} is not a tfxformers model directory (no {INFO_FILE}"
                        + ("; its training never finished" if unfinished else "") + "); "
                        "train one with `tfxformers train classifier` or `tfxformers train gpt2`")
    try:
        info = json.loads(info_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{info_file} is corrupt (not JSON: {exc}); retrain the model or restore the file") from None
    if not isinstance(info, dict) or "kind" not in info:
        raise UserError(f"{info_file} is corrupt (no 'kind'); retrain the model or restore the file")
    check_files(path, info)
    return info


REQUIRED_KEYS = {
    "classifier": ("mode", "label_names", "num_labels", "max_length", "input_names", "head"),
    "gpt2": ("vocab_size",),
}


def required_files(path: Path, info: dict) -> list[str]:
    """Files (relative to ``path``) a load of this model reads."""
    kind = info.get("kind")
    if kind == "classifier":
        files = ["tokenizer/tokenizer.json", "weights/model.index"]
        shards = sorted(p.name for p in (path / "weights").glob("model.data-*-of-*"))
        total = int(shards[0].rsplit("-of-", 1)[1]) if shards else 1
        files += [f"weights/model.data-{i:05d}-of-{total:05d}" for i in range(total)]
        if info.get("mode") == "hub":
            files.append(f"{info.get('hub_dir') or 'hub_encoder'}/saved_model.pb")
        return files
    if kind == "gpt2":
        return ["tokenizer/tokenizer.json", "model/config.json", "model/tf_model.h5"]
    return []


def check_files(path: Path, info: dict) -> None:
    """Every required key and file present, and each file as large as when it was saved (``files``)."""
    kind = info.get("kind")
    if kind not in REQUIRED_KEYS:
        raise UserError(f"{path}: unknown model kind {kind!r} in {INFO_FILE}")
    missing_keys = [k for k in REQUIRED_KEYS[kind] if k not in info]
    if kind == "classifier" and info.get("mode") != "hub" and not info.get("encoder_config"):
        missing_keys.append("encoder_config")
    if missing_keys:
        raise UserError(f"{path / INFO_FILE} is corrupt (no {', '.join(missing_keys)}); retrain the model")
    recorded = info.get("files") or {}
    for name in dict.fromkeys([*required_files(path, info), *recorded]):
        file = path / name
        if not file.is_file():
            raise UserError(f"{path} is incomplete: {name} is missing; copy the whole directory again or retrain")
        size = file.stat().st_size
        expected = recorded.get(name)
        if (expected is not None and size != expected) or (size == 0 and expected != 0):
            what = f"{size} bytes, saved as {expected}" if expected is not None else "empty"
            raise UserError(f"{path} is damaged: {name} is {what} (truncated?); copy it again or retrain")
    if kind == "gpt2":
        config = path / "model" / "config.json"
        try:
            json.loads(config.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{config} is corrupt (not JSON: {exc}); retrain the model") from None


def file_sizes(path: Path, folders: tuple[str, ...]) -> dict[str, int]:
    """``{relative path: size}`` of every file under ``folders``: recorded at save time so that a
    truncated copy is recognised before TensorFlow tries to read it."""
    sizes = {}
    for folder in folders:
        for file in sorted((path / folder).rglob("*")):
            if file.is_file():
                sizes[file.relative_to(path).as_posix()] = file.stat().st_size
    return sizes


def context_length(path: str | os.PathLike, info: dict) -> int:
    """A GPT-2's context (``n_positions``), read from its config without loading the model."""
    config = json.loads((Path(path) / "model" / "config.json").read_text())
    return int(config.get("n_positions") or config.get("n_ctx") or info.get("block_size") or 1024)


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
    info["files"] = file_sizes(path, ("weights", "tokenizer") + ((hub_dir,) if hub_dir else ()))
    # Written last: its presence means the model is complete (models.run_dirs relies on it).
    (path / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path


def save_gpt2(directory: str | os.PathLike, hf_model, tokenizer, *, preset: str, block_size: int,
              corpus: str | None) -> Path:
    """A trained GPT-2's directory: ``model/`` (``save_pretrained``), ``tokenizer/`` and, last, the info file."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(str(path / "model"))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    info = {"kind": "gpt2", "format_version": FORMAT_VERSION, "preset": preset, "block_size": int(block_size),
            "max_length": int(block_size), "corpus": corpus, "vocab_size": len(tokenizer),
            "bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id, "pad_id": tokenizer.pad_token_id,
            "input_names": ["input_ids"], "files": file_sizes(path, ("model", "tokenizer"))}
    # Written last: its presence means the model is complete (models.run_dirs relies on it).
    (path / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path


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


def load_trained(directory: str | os.PathLike) -> TrainedModel:
    """Load any trained-model directory (classifier or GPT-2) with its tokenizer and labels."""
    path = Path(directory)
    info = read_info(path)
    kind = info.get("kind")
    if kind == "classifier":
        from transformers import AutoTokenizer

        try:
            model = build_classifier_from_info(path, info)
            status = model.load_weights(str(path / "weights" / "model"))
            status.assert_existing_objects_matched()
        except Exception as exc:  # TensorFlow's errors name the tensor, not what the user must do
            raise UserError(f"{path}: the weights in weights/ are damaged or belong to another model "
                            f"({_first_line(exc)}); retrain the model or copy weights/ again") from None
        status.expect_partial()
        tokenizer = _load_tokenizer(path, lambda p: AutoTokenizer.from_pretrained(p))
        return TrainedModel(path, info, model, tokenizer, list(info["label_names"]))
    from tfxformers.models.lm import gpt2

    return gpt2.load_trained_gpt2(path, info)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _load_tokenizer(path: Path, load):
    try:
        return load(str(path / "tokenizer"))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: tokenizer/ is damaged ({_first_line(exc)}); retrain the model") from None
