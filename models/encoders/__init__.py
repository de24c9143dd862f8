"""Pretrained encoder families (BERT, RoBERTa, DistilBERT, ELECTRA, MPNet) behind one registry everything asks.

Nothing outside this package branches on a family: it asks the registry. This module imports no
TensorFlow (the proxy and the CLI's cheap checks use it); each family's module (``bert.py``,
``roberta.py``, ``distilbert.py``, ``electra.py``, ``mpnet.py``) is imported only when its TF classes are needed.

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
    # WordPiece ids framed as <s> ... </s>, positions counted from pad_id + 1 like RoBERTa's, and a relative
    # position bias owned by the encoder (encoders/mpnet.py says where each difference is handled).
    "mpnet": FamilySpec("mpnet", "mpnet", "wordpiece", False, 2, True, "mpnet",
                        "attention_mask limited to positions up to the first </s> in the graph"),
}
MODEL_TYPES = tuple(FAMILIES)
# Hugging Face Hub ids look like "name" or "org/name"; here no Hub is reachable (HF_HUB_OFFLINE=1).
_HUB_HINT = ("no Hugging Face Hub is reachable from tfxformers; download the checkpoint where the Hub is "
             "reachable (e.g. `huggingface-cli download {id} --local-dir DIR`) and pass --encoder DIR")


def resolve_checkpoint(encoder: str | os.PathLike) -> Path:
    """``minilm`` or ``mpnet`` (fetched weights), or a local checkpoint directory; anything else fails at once with a one-line error
    (a Hub id like ``roberta-base`` names how to pass a local directory instead)."""
    text = str(encoder)
    if text in ("minilm", "mpnet"):
        from tfxformers.models.data.sources import require_fetched

        return require_fetched(text)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{path} is not a Hugging Face checkpoint: it has no config.json")
        return path
    if path.exists():
        raise UserError(f"encoder {text!r} is a file, not a checkpoint directory")
    message = f"encoder {text!r} is neither 'minilm', 'mpnet' nor a checkpoint directory"
    looks_like_hub_id = text.count("/") <= 1 and not text.startswith((".", "/", "~")) and " " not in text
    if looks_like_hub_id:
        raise UserError(message + "; if it is a Hugging Face Hub id: " + _HUB_HINT.format(id=text))
    raise UserError(message + "; pass 'minilm', 'mpnet' or a local Hugging Face checkpoint directory")


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
    if config.get("model_type") in FAMILIES:
        check_sizes(config, config_file)
    return config


# config.json's size fields per family (DistilBERT names them differently), and transformers' defaults for
# the ones a config.json may leave out (ELECTRA's are smaller than the others').
_SIZE_FIELDS = {"distilbert": ("dim", "n_layers", "n_heads", "hidden_dim")}
_DEFAULT_WIDTH = {"electra": (256, 4)}


def check_sizes(config: dict, config_file) -> None:
    """``UserError`` naming ``config_file`` and the field when the sizes cannot make an encoder (a negative
    depth would build an encoder with no blocks without a word; hidden 17 with 2 heads fails deep in
    transformers)."""
    model_type = config["model_type"]
    hidden, layers, heads, intermediate = _SIZE_FIELDS.get(
        model_type, ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"))
    minimum = {hidden: 1, layers: 1, heads: 1, intermediate: 1, "vocab_size": 1, "type_vocab_size": 1,
               "embedding_size": 1, "max_position_embeddings": FAMILIES[model_type].position_offset + 1}
    for field, least in minimum.items():
        value = config.get(field)
        if field in config and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise UserError(f"{config_file}: {field} must be an integer of at least {least} (got {value!r})")
    width, count = _DEFAULT_WIDTH.get(model_type, (768, 12))
    width, count = config.get(hidden, width), config.get(heads, count)
    if width % count:
        raise UserError(f"{config_file}: {hidden} {width} is not a multiple of {heads} {count} "
                        "(each attention head takes an equal share of the hidden size)")


def check_tokenizer_files(checkpoint_dir: str | os.PathLike) -> None:
    """``UserError`` when the checkpoint's tokenizer files are not its family's kind (a BERT config beside
    RoBERTa's byte-level BPE files) or are incomplete (vocab.json without merges.txt)."""
    path = Path(checkpoint_dir)
    spec = spec_for(path)
    found = None
    if (path / "tokenizer.json").is_file():
        try:
            model = json.loads((path / "tokenizer.json").read_text(encoding="utf-8")).get("model") or {}
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise UserError(f"{path / 'tokenizer.json'} is not a tokenizer file ({exc})") from None
        found = {"WordPiece": "wordpiece", "BPE": "byte_bpe"}.get(model.get("type") if isinstance(model, dict) else None)
    elif (path / "vocab.json").is_file() or (path / "merges.txt").is_file():
        found = "byte_bpe"
        if not (path / "vocab.json").is_file() or not (path / "merges.txt").is_file():
            raise UserError(f"{path} has {'vocab.json' if (path / 'vocab.json').is_file() else 'merges.txt'} "
                            "but not both vocab.json and merges.txt (nor tokenizer.json): a byte-level BPE "
                            "tokenizer needs both; copy the checkpoint again")
    elif (path / "vocab.txt").is_file():
        found = "wordpiece"
    if found is None:
        wanted = "vocab.txt" if spec.tokenizer_kind == "wordpiece" else "vocab.json + merges.txt"
        raise UserError(f"{path} has no tokenizer its {spec.model_type} config can use: neither tokenizer.json "
                        f"nor {wanted}")
    if found != spec.tokenizer_kind:
        kinds = {"wordpiece": "WordPiece", "byte_bpe": "byte-level BPE"}
        raise UserError(f"{path / 'config.json'}: model_type {spec.model_type!r} takes a {kinds[spec.tokenizer_kind]} "
                        f"tokenizer, but the checkpoint's tokenizer is {kinds[found]}: config.json does not "
                        "belong to these files (copy the checkpoint's own config.json)")


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
    check_tokenizer_files(checkpoint_dir)
    tokenizer = family_module(checkpoint_dir).load_tokenizer(checkpoint_dir)
    config = read_config(checkpoint_dir)
    if isinstance(config.get("vocab_size"), int) and len(tokenizer) > config["vocab_size"]:
        # Ids past the embedding table fail only at the first text that uses them, deep in TensorFlow.
        raise UserError(f"{Path(checkpoint_dir) / 'config.json'}: vocab_size {config['vocab_size']} is smaller "
                        f"than the tokenizer's {len(tokenizer)} tokens")
    return tokenizer


def config_from_dict(config: dict):
    """A transformers config object of the right class for a recorded config dict."""
    return family_module(config).config_class().from_dict(config)


def input_names(source, use_token_type_ids: bool = False) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if use_token_type_ids and spec_for(source).uses_token_type_ids:
        names.append("token_type_ids")
    return names
