"""A shallower encoder made of some of a checkpoint's blocks (``--student-layers 0,2,4``), for distillation.

``select_layers(encoder, [0, 2, 4])`` returns an ordinary encoder of the same family with 3 blocks: its config
says ``num_hidden_layers`` 3 (DistilBERT: ``n_layers``), so saving, loading, export, serving and the proxy
treat it as any 3-block encoder. Which blocks to keep is the choice DistilBERT made for its student (every
other block of the teacher): blocks spread over the depth keep more of what the full stack computes than
the bottom ones alone. Blocks are found through the registry's ``layers()``, so every family works.
"""
from __future__ import annotations


def parse_student_layers(text: str) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``; ``ValueError`` saying what is wrong (the CLI's argparse type)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not str(text).strip() or any(not p for p in parts):
        raise ValueError(f"must be a comma-separated list of block numbers, e.g. 0,2,4 (got {text!r})")
    try:
        layers = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"must be whole block numbers separated by commas, e.g. 0,2,4 (got {text!r})") from None
    check_layer_list(layers, None, text)
    return layers


def check_layer_list(layers, depth: int | None, shown=None) -> None:
    """``ValueError`` for an empty list, a number that is not a block (negative, or ``>= depth``), a repeat."""
    shown = shown if shown is not None else ",".join(map(str, layers or []))
    if not layers:
        raise ValueError("must name at least one block, e.g. 0,2,4")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise ValueError(f"must be whole block numbers (got {shown!r})")
    repeated = sorted({i for i in layers if layers.count(i) > 1})
    if repeated:
        raise ValueError(f"names block {repeated[0]} twice (got {shown!r}); each block may be kept once")
    outside = [i for i in layers if i < 0 or (depth is not None and i >= depth)]
    if outside:
        limit = f"0..{depth - 1}, the encoder has {depth} blocks" if depth is not None else "0 or more"
        raise ValueError(f"block {outside[0]} does not exist ({limit}; got {shown!r})")


def select_layers(encoder, layers: list[int] | None):
    """``encoder`` itself, or a new encoder of the same family keeping only the blocks ``layers`` (in that
    order): block ``i`` of the result is block ``layers[i]`` of ``encoder``, every weight outside the blocks
    (embeddings, pooler, MPNet's relative position bias) is copied, and its config's depth is ``len(layers)``."""
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base

    config = base.encoder_config_dict(encoder)
    depth = encoders.num_layers(config)
    if layers is None or list(layers) == list(range(depth)):
        return encoder
    check_layer_list(list(layers), depth)
    config["n_layers" if "n_layers" in config else "num_hidden_layers"] = len(layers)
    student = base.model_from_config(config, name=encoder.name)
    family = encoders.family_module(encoder)
    old_main, new_main = base.main_layer(encoder), base.main_layer(student)
    old_blocks, new_blocks = family.layers(old_main), family.layers(new_main)
    for new_block, index in zip(new_blocks, layers):
        new_block.set_weights(old_blocks[index].get_weights())

    def outside_blocks(main, blocks) -> dict:
        inside = {id(w) for block in blocks for w in block.weights}
        # Names without the model's own scope: the two models' scopes may differ by a uniquifying suffix.
        return {w.name.split("/", 1)[-1]: w for w in main.weights if id(w) not in inside}

    source = outside_blocks(old_main, old_blocks)
    for name, weight in outside_blocks(new_main, new_blocks).items():
        if name not in source:
            raise RuntimeError(f"select_layers: no weight {name!r} in the checkpoint's encoder")
        weight.assign(source[name])
    return student
