"""Pretrained encoder families (BERT, RoBERTa, DistilBERT, ELECTRA) behind one registry everything asks.

Nothing outside this package branches on a family: it asks the registry. This module imports no
TensorFlow (the proxy and the CLI's cheap checks use it); each family's module (``bert.py``,
``roberta.py``, ``distilbert.py``, ``electra.py``) is imported only when its TF classes are needed.

Cheap, TensorFlow-free questions (read from ``config.json`` / ``tokenizer.json`` alone)::

    from tfxformers.models import encoders
    path = encoders.resolve_checkpoint("minilm" | "DIR" | "roberta-base")  # hub ids: UserError at once
    spec = encoders.spec_for(path)          # FamilySpec: model_type, tokenizer_kind, specials, offsets
    spec.uses_token_type_ids                # False for RoBERTa / DistilBERT
    encoders.max_input_tokens(config_dict)  # positions a sequence may use (RoBERTa: 514 - 2)

With TensorFlow (each call dispatches on the checkpoint's or config's ``model_type``)::

    tokenizer = encoders.load_tokenizer(path)      # the checkpoint's own fast tokenizer
    family = encoders.family_module(encoder)       # the module with main_layer / layers / embed / run_layer

and, in ``encoders.base`` (which asks this registry for the family; the registry never imports it)::

    encoder = base.load_encoder(path)              # TF*Model, safetensors or tf_model.h5, head prefixes dropped
    model = base.build_classifier(encoder, num_labels=2)   # any family (or a config dict: random weights)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError


@dataclass(frozen=True)
class FamilySpec:
    """What code outside a family's module may need to know about it, without TensorFlow."""

    model_type: str             # config.json "model_type"
    module: str                 # tfxformers.models.encoders.<module>
    tokenizer_kind: str         # "wordpiece" or "byte_bpe"
    uses_token_type_ids: bool   # whether its main layer takes token_type_ids at all
    # Positions reserved before the first token: RoBERTa numbers positions from pad_id + 1, so a
    # max_position_embeddings of 514 takes sequences of 512.
    position_offset: int
    has_pooler: bool            # a pooler_output exists (pooling "pooled" possible)
    base_prefix: str            # weight-name prefix of the base model inside task-head checkpoints
    mask_rule: str              # how the export's batching-safe mask finds the end of a sequence


FAMILIES: dict[str, FamilySpec] = {
    "bert": FamilySpec("bert", "bert", "wordpiece", True, 0, True, "bert",
                       "attention_mask limited to positions up to the first [SEP] in the graph"),
    "roberta": FamilySpec("roberta", "roberta", "byte_bpe", False, 2, True, "roberta",
                          "attention_mask limited to positions up to the first </s> in the graph"),
    "distilbert": FamilySpec("distilbert", "distilbert", "wordpiece", False, 0, False, "distilbert",
                             "attention_mask limited to positions up to the first [SEP] in the graph"),
    "electra": FamilySpec("electra", "electra", "wordpiece", True, 0, False, "electra",
                          "attention_mask limited to positions up to the first [SEP] in the graph"),
}
MODEL_TYPES = tuple(FAMILIES)
# Hugging Face Hub ids look like "name" or "org/name"; here no Hub is reachable (HF_HUB_OFFLINE=1).
_HUB_HINT = ("no Hugging Face Hub is reachable from tfxformers; download the checkpoint where the Hub is "
             "reachable (e.g. `huggingface-cli download {id} --local-dir DIR`) and pass --encoder DIR")


def resolve_checkpoint(encoder: str | os.PathLike) -> Path:
    """``minilm``, or a local checkpoint directory; anything else fails at once with a one-line error
    (a Hub id like ``roberta-base`` names how to pass a local directory instead)."""
    text = str(encoder)
    if text == "minilm":
        from tfxformers.models.data.sources import minilm_dir

        return minilm_dir()
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{path} is not a Hugging Face checkpoint: it has no config.json")
        return path
    if path.exists():
        raise UserError(f"encoder {text!r} is a file, not a checkpoint directory")
    message = f"encoder {text!r} is neither 'minilm' nor a checkpoint directory"
    looks_like_hub_id = text.count("/") <= 1 and not text.startswith((".", "/", "~")) and " " not in text
    if looks_like_hub_id:
        raise UserError(message + "; if it is a Hugging Face Hub id: " + _HUB_HINT.format(id=text))
    raise UserError(message + "; pass 'minilm' or a local Hugging Face checkpoint directory")


def read_config(checkpoint_dir: str | os.PathLike) -> dict:
    """The checkpoint's config.json as a dict (no transformers, no TensorFlow)."""
    path = Path(checkpoint_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        if not path.is_dir():
            raise UserError(f"encoder checkpoint directory not found: {path}")
        raise UserError(f"{path} is not a Hugging Face checkpoint: it has no config.json")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{config_file} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_file} is not a JSON object")
    return config


def spec_for(source) -> FamilySpec:
    """The family of a checkpoint directory, a config dict, a transformers config or model, or a model_type."""
    if isinstance(source, FamilySpec):
        return source
    if isinstance(source, str) and source in FAMILIES and not os.path.isdir(source):
        model_type = source
    elif isinstance(source, (str, os.PathLike)):
        model_type = read_config(source).get("model_type")
    elif isinstance(source, dict):
        model_type = source.get("model_type")
    else:
        config = getattr(source, "config", source)
        model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        where = f" ({source})" if isinstance(source, (str, os.PathLike)) else ""
        raise UserError(f"encoder model_type {model_type!r}{where} is not supported; tfxformers encoders are "
                        f"{', '.join(MODEL_TYPES)} checkpoints")
    return FAMILIES[model_type]


def max_input_tokens(config) -> int:
    """The longest token sequence (specials included) the encoder's position embeddings take."""
    spec = spec_for(config)
    positions = config.get("max_position_embeddings") if isinstance(config, dict) else \
        getattr(getattr(config, "config", config), "max_position_embeddings")
    return int(positions) - spec.position_offset


def num_layers(config) -> int:
    """Transformer blocks of the encoder (DistilBERT calls them n_layers)."""
    config = config if isinstance(config, dict) else getattr(config, "config", config).to_dict()
    return int(config.get("num_hidden_layers") or config.get("n_layers"))


def family_module(source):
    """The family's module (imports TensorFlow): ``load_encoder``, ``load_tokenizer``, ``main_layer``, ..."""
    import importlib

    return importlib.import_module(f"tfxformers.models.encoders.{spec_for(source).module}")


# --- TensorFlow-side entry points: thin dispatch to the family module ------------------

def load_tokenizer(checkpoint_dir: str | os.PathLike):
    return family_module(checkpoint_dir).load_tokenizer(checkpoint_dir)


def config_from_dict(config: dict):
    """A transformers config object of the right class for a recorded config dict."""
    return family_module(config).config_class().from_dict(config)


def input_names(source, use_token_type_ids: bool = False) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if use_token_type_ids and spec_for(source).uses_token_type_ids:
        names.append("token_type_ids")
    return names
