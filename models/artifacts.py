"""The trained-model contract: what a training run leaves in its directory, and how it is read back.

Every kind (``classifier``, ``gpt2``, ``qa``) writes its directory through ``save_*`` here and is read
through ``read_info`` / ``load_trained``, so the info file, its required keys, the damaged-file checks and
the in-memory ``TrainedModel`` are defined once. Layout (see docs/contracts.md)::

    DIR/tfxformers.json      kind and everything a load needs: labels, max length, buckets, input names,
                             encoder config, head (classifier); preset, special ids (gpt2); max_seq_len,
                             doc_stride (qa); ``files``: the size of every file at save time
    DIR/weights/model.*      (classifier, qa) TensorFlow checkpoint of the Keras model's weights
    DIR/model/               (gpt2) ``save_pretrained`` of the Hugging Face model
    DIR/hub_encoder/         (hub mode) the encoder SavedModel the model loads with hub.KerasLayer
    DIR/tokenizer/           the tokenizer (save_pretrained; always includes tokenizer.json)
    DIR/labels.json          (classifier) label names, index = class id
    DIR/training_config.json, metrics.json, plots/, logs/ (TensorBoard), checkpoints/

Weights are stored as a checkpoint and the model is rebuilt from the recorded configuration on load:
Keras 2 whole-model saving of Hugging Face layers is fragile, while rebuilding from config and loading
weights round-trips exactly (tested for every kind).

This module imports nothing above it in ``models/`` and no TensorFlow: building a kind's model is that
kind's own module's business, named in ``KINDS`` and imported only when a model of that kind is loaded.
"""
from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import tfxformers  # noqa: F401
from tfxformers.errors import UserError

INFO_FILE = "tfxformers.json"
FORMAT_VERSION = 1


@dataclass
class TrainedModel:
    """A loaded trained model of any kind; ``info`` is its info file (kind-specific keys included)."""
    directory: Path
    info: dict
    keras_model: object
    tokenizer: object
    label_names: list[str] = field(default_factory=list)  # classifiers: index = class id

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def max_length(self) -> int:
        return int(self.info.get("max_length", 128))

    @property
    def input_names(self) -> list[str]:
        return list(self.info.get("input_names", ["input_ids", "attention_mask"]))

    @property
    def max_seq_len(self) -> int:
        """Question answering: the window length (question + passage) it was trained with."""
        return int(self.info["max_seq_len"])

    @property
    def doc_stride(self) -> int:
        """Question answering: the overlap of consecutive passage windows."""
        return int(self.info.get("doc_stride", 128))


@dataclass(frozen=True)
class Kind:
    """What the contract knows of one kind of trained model."""
    required_keys: tuple[str, ...]
    loader: str  # "module:function" taking (directory, info) and returning a TrainedModel
    description: str  # for messages: "a 'gpt2' model, not a question-answering one"
    train_command: str  # for messages: how to make one
    weights: tuple[str, ...] = ("weights/model.index",)  # files a load reads besides the tokenizer's
    also: str = ""  # what else a loader of this kind accepts, for messages

    @property
    def train_hint(self) -> str:
        return f"train one with `{self.train_command}`" + (f" or give {self.also}" if self.also else "")

    def load(self, path: Path, info: dict) -> TrainedModel:
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(path, info)


KINDS = {
    "classifier": Kind(("mode", "label_names", "num_labels", "max_length", "input_names", "head"),
                       "tfxformers.models.classification.trained:load_trained_classifier", "classifier",
                       "tfxformers train classifier"),
    "gpt2": Kind(("vocab_size",), "tfxformers.models.lm.gpt2:load_trained_gpt2", "GPT-2", "tfxformers train gpt2",
                 weights=("model/config.json", "model/tf_model.h5")),
    "qa": Kind(("max_seq_len", "input_names", "encoder_config"), "tfxformers.models.qa.model:load_trained_qa",
               "question-answering", "tfxformers train qa",
               also="a Hugging Face question-answering checkpoint directory"),
    "tagger": Kind(("task", "label_names", "num_labels", "max_length", "input_names", "encoder_config"),
                   "tfxformers.models.tagging.model:load_trained_tagger", "token-classification",
                   "tfxformers train tagger"),
}
ANY_KIND_HINT = "train one with `tfxformers train classifier` or `tfxformers train gpt2`"


def read_info(directory: str | os.PathLike, kind: str | None = None) -> dict:
    """The info file of a trained-model directory (of ``kind``, if given), after checking (cheaply, no
    TensorFlow) that the files a load needs are there and whole; a ``UserError`` names what is wrong."""
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
                        + (KINDS[kind].train_hint if kind else ANY_KIND_HINT))
    try:
        info = json.loads(info_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{info_file} is corrupt (not JSON: {exc}); retrain the model or restore the file") from None
    if not isinstance(info, dict) or "kind" not in info:
        raise UserError(f"{info_file} is corrupt (no 'kind'); retrain the model or restore the file")
    if kind is not None and info["kind"] != kind:
        raise UserError(f"{path} holds a {info['kind']!r} model, not a {KINDS[kind].description} one "
                        f"(`{KINDS[kind].train_command}`)")
    check_files(path, info)
    return info


def required_files(path: Path, info: dict) -> list[str]:
    """Files (relative to ``path``) a load of this model reads."""
    kind = KINDS[info["kind"]]
    files = ["tokenizer/tokenizer.json", *kind.weights]
    if "weights/model.index" in kind.weights:
        shards = sorted(p.name for p in (path / "weights").glob("model.data-*-of-*"))
        total = int(shards[0].rsplit("-of-", 1)[1]) if shards else 1
        files += [f"weights/model.data-{i:05d}-of-{total:05d}" for i in range(total)]
    if info.get("mode") == "hub":
        files.append(f"{info.get('hub_dir') or 'hub_encoder'}/saved_model.pb")
    return files


def check_files(path: Path, info: dict) -> None:
    """Every required key and file present, and each file as large as when it was saved (``files``)."""
    kind = info.get("kind")
    if kind not in KINDS:
        raise UserError(f"{path}: unknown model kind {kind!r} in {INFO_FILE}")
    missing_keys = [k for k in KINDS[kind].required_keys if k not in info]
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
            raise UserError(f"{path} is damaged: {name} is {what} (truncated?); copy the damaged or incomplete "
                            "files again, or retrain")
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


def save_qa(directory: str | os.PathLike, model, tokenizer, *, max_seq_len: int, doc_stride: int,
            input_names: list[str], extra: dict | None = None) -> Path:
    """A trained question-answering model's directory: ``weights/``, ``tokenizer/`` and, last, the info file."""
    path = Path(directory)
    (path / "weights").mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path / "weights" / "model"))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    info = {"kind": "qa", "format_version": FORMAT_VERSION, "max_seq_len": int(max_seq_len),
            "doc_stride": int(doc_stride), "input_names": list(input_names),
            "encoder_config": json.loads(model.encoder_config.to_json_string()),
            "pad_id": int(tokenizer.pad_token_id or 0), "cls_id": tokenizer.cls_token_id,
            "sep_id": tokenizer.sep_token_id, **(extra or {})}
    info["files"] = file_sizes(path, ("weights", "tokenizer"))
    # Written last: its presence means the model is complete (models.run_dirs relies on it).
    (path / INFO_FILE).write_text(json.dumps(info, indent=2))
    return path


def load_trained(directory: str | os.PathLike, kind: str | None = None) -> TrainedModel:
    """Load any trained-model directory (of ``kind``, if given) with its tokenizer and labels, through the
    loader ``KINDS`` names for its kind."""
    path = Path(directory)
    info = read_info(path, kind)
    return KINDS[info["kind"]].load(path, info)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line ``UserError``."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def load_tokenizer(path: Path, load: Callable):
    """``load(path / "tokenizer")``, a failure of which names the damaged directory instead of a traceback."""
    try:
        return load(str(path / "tokenizer"))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: tokenizer/ is damaged ({first_line(exc)}); retrain the model") from None


def load_weights_and_tokenizer(path: Path, build: Callable):
    """``(model, tokenizer)``: ``build()``'s Keras model with ``path/weights/model`` loaded (every object of the
    model matched) and ``path/tokenizer``; any failure is one ``UserError`` naming the directory (TensorFlow's
    errors name tensors, not what the user must do). The QA and tagger loaders share it."""
    from transformers import AutoTokenizer

    try:
        model = build()
        status = model.load_weights(str(path / "weights" / "model"))
        status.assert_existing_objects_matched()
        status.expect_partial()
        tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: the weights or tokenizer are damaged or belong to another model "
                        f"({first_line(exc)}); retrain the model or copy it again") from None
    return model, tokenizer
