"""What one request may ask of the embedded model server, checked before any tensor is built.

TF Serving trusts its clients: a REST body, a gRPC message, the rows of a batch and the number of tokens
a ``generate`` signature is asked for are all unbounded, so one request can take the whole process down
(``max_new_tokens: 2147483647`` sizes a 64 GiB TensorArray: ``std::bad_alloc``; 12,000 rows of 100
tokens grow a MiniLM classifier to every byte of the machine). ``ServerLimits`` bounds each of them, and
the front ends call the checks below in this order:

1. ``max_request_bytes``: the REST body (``Content-Length``, before the body is read or parsed; HTTP 413)
   and the gRPC message (``grpc.max_receive_message_length``; gRPC's own ``RESOURCE_EXHAUSTED``);
2. ``check_shapes`` on the shapes a request *declares* (the JSON nesting, the ``TensorProto`` dims), before
   they are turned into arrays: rows, sequence length, tokens (rows x length), elements, sequence inputs
   that disagree in shape (a mask longer than its ids would otherwise be broadcast), and the values the
   answer would hold (the signature's output shapes: GPT-2 logits are rows x tokens x vocabulary);
3. ``check_values`` on the few values that size the work (each row's ``max_new_tokens`` against the context
   its prompt leaves, sequences per row x tokens against ``max_tokens``).

Every refusal is ``INVALID_ARGUMENT`` (HTTP 400), except the byte limit: the request can never succeed as
sent, whatever the server's load, which is what TF Serving's own batcher answers for a task larger than
its maximum batch ("Task size N is larger than maximum input batch size"); RESOURCE_EXHAUSTED (HTTP 429)
would tell clients to retry. Rows over the limit are refused, not split: the proxy already sends at most
``--max-batch-size`` rows per call, a split request would still hold the server for minutes, and latency
stays proportional to what one call may ask.

A version's own limits come from ``assets.extra/tfxformers.json``: ``max_positions`` (written by exports
since the limits exist) or else ``max_length`` is its longest sequence, and for GPT-2 its context (prompt
plus generated tokens). Versions without that file (foreign SavedModels) get the server-wide caps only.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.serving import layout
from tfxformers.serving.server.errors import ServingError

log = logging.getLogger("tfxformers.serve")

# Inputs whose second dimension is a token position; they must all have the same shape.
SEQUENCE_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass(frozen=True)
class ServerLimits:
    """Per-request limits; the defaults are what ``tfxformers serve`` uses (see ``--help``)."""

    max_request_bytes: int = 4 * 1024 * 1024  # gRPC's own default receive limit
    max_rows: int = 128
    max_sequence_length: int = 512  # a version's own maximum lowers it
    max_tokens: int = 16384  # rows x sequence length: attention memory grows with rows x length^2
    max_new_tokens: int = 1024  # a GPT-2 version's context lowers it
    # Values in an answer, as the signature's output shapes predict them (GPT-2 logits are rows x tokens x
    # vocabulary: 16384 tokens of a 50,257-word vocabulary would be 3 GB of floats, and many more in JSON).
    max_response_values: int = 16 * 1024 * 1024

    FLAGS = {"max_request_bytes": "--max-request-bytes", "max_rows": "--max-rows",
             "max_sequence_length": "--max-sequence-length", "max_tokens": "--max-tokens",
             "max_new_tokens": "--max-new-tokens", "max_response_values": "--max-response-values"}

    def __post_init__(self):
        for name, flag in self.FLAGS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{flag} must be a positive integer, got {value!r}")
        if self.max_request_bytes > 2**31 - 1:
            raise UserError("--max-request-bytes must be below 2 GiB (gRPC's message size is an int32)")


def read_version_info(path) -> dict:
    """``assets.extra/tfxformers.json`` of a version, or {} for SavedModels that have none."""
    info_path = Path(path) / layout.ASSETS_EXTRA / layout.VERSION_INFO_FILE
    if not info_path.is_file():
        return {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); only the server-wide limits apply to this version", info_path, exc)
        return {}
    return info if isinstance(info, dict) else {}


def sequence_limit(limits: ServerLimits, info: dict) -> tuple[int, str]:
    """(longest sequence a version takes, where that number comes from)."""
    for key in ("max_positions", "max_length"):  # max_length stands in for exports older than max_positions
        value = info.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if value < limits.max_sequence_length:
                return value, f"this version's {key} in {layout.ASSETS_EXTRA}/{layout.VERSION_INFO_FILE}"
            break
    return limits.max_sequence_length, "--max-sequence-length"


def _batch_inputs(signature_def) -> set[str]:
    """Inputs whose first dimension is a (dynamic) batch dimension, per the signature."""
    names = set()
    for name, info in signature_def.inputs.items():
        dims = [d.size for d in info.tensor_shape.dim]
        if info.tensor_shape.unknown_rank or (dims and dims[0] < 0):
            names.add(name)
    return names


def check_shapes(limits: ServerLimits, servable, signature_name: str, shapes: dict) -> None:
    """Refuse a request by the shapes it declares (name -> list of dims), before any array exists."""
    elements = 0
    for name, shape in shapes.items():
        if any(d < 0 for d in shape):
            raise ServingError("INVALID_ARGUMENT", f"input '{name}' has a negative dimension: {list(shape)}")
        elements += math.prod(shape)
    # Any honest encoding takes at least one byte per element; more means a proto that declares a shape
    # it does not carry (one value "splatted" over billions of elements).
    if elements > limits.max_request_bytes:
        raise ServingError("INVALID_ARGUMENT", f"the request declares {elements} elements; the limit is "
                                               f"{limits.max_request_bytes} (--max-request-bytes)")
    signature_def = servable.signature_defs.get(signature_name)
    batch_inputs = _batch_inputs(signature_def) if signature_def is not None else set(shapes)
    for name, shape in sorted(shapes.items()):
        if name in batch_inputs and shape and shape[0] > limits.max_rows:
            raise ServingError("INVALID_ARGUMENT", f"input '{name}' has {shape[0]} rows; the limit is "
                                                   f"{limits.max_rows} per request (--max-rows): split the request")
    sequences = {n: list(shapes[n]) for n in SEQUENCE_INPUTS if n in shapes}
    if not sequences:
        return
    first_name, first_shape = next(iter(sequences.items()))
    for name, shape in sequences.items():
        if shape != first_shape:
            raise ServingError("INVALID_ARGUMENT", f"input '{name}' has shape {shape} but '{first_name}' has shape "
                                                   f"{first_shape}; they must be the same")
    if len(first_shape) < 2:
        return  # Servable.validate refuses the rank
    rows, length = first_shape[0], first_shape[1]
    allowed, source = sequence_limit(limits, getattr(servable, "info", {}))
    if length > allowed:
        raise ServingError("INVALID_ARGUMENT", f"input '{first_name}' has {length} tokens per row; the limit is "
                                               f"{allowed} ({source})")
    if rows * length > limits.max_tokens:
        raise ServingError("INVALID_ARGUMENT", f"the request holds {rows} rows of {length} tokens = {rows * length} "
                                               f"tokens; the limit is {limits.max_tokens} per request (--max-tokens): "
                                               "send fewer rows")
    values = predicted_response_values(signature_def, rows, length) if signature_def is not None else 0
    if values > limits.max_response_values:
        raise ServingError("INVALID_ARGUMENT", f"the answer to {rows} rows of {length} tokens would hold {values} "
                                               f"values; the limit is {limits.max_response_values} per request "
                                               "(--max-response-values): send fewer rows or tokens")


def predicted_response_values(signature_def, rows: int, length: int) -> int:
    """Values the outputs will hold, reading a dynamic first dimension as the rows and a dynamic second
    one as the tokens; an output of rank 4 or more ending in two dynamic dimensions is a map of tokens by
    tokens (the ``attention`` signature's ``[rows, layers, heads, tokens, tokens]``, layers and heads fixed
    in the signature). Outputs with other unknown dimensions are not counted."""
    total = 0
    for info in signature_def.outputs.values():
        if info.tensor_shape.unknown_rank:
            continue
        dims = [d.size for d in info.tensor_shape.dim]
        square = len(dims) >= 4 and dims[-1] < 0 and dims[-2] < 0
        sizes = [rows if i == 0 and d < 0 else length if d < 0 and (i == 1 or (square and i >= len(dims) - 2)) else d
                 for i, d in enumerate(dims)]
        if all(d >= 0 for d in sizes):
            total += math.prod(sizes)
    return total


def _per_row(inputs: dict, name: str, rows: int):
    """An integer input as a list of ``rows`` values (a scalar of an old export repeats), else None (the
    signature or the graph refuses a wrong dtype or shape)."""
    value = inputs.get(name)
    if value is None or value.dtype.kind not in "iu" or value.size not in (1, rows) or value.ndim > 1:
        return None
    return [int(v) for v in value.reshape(-1)] * (rows if value.size == 1 and rows != 1 else 1)


def sequence_tokens(inputs: dict) -> int:
    """Rows x tokens of a request's sequence inputs (else its rows, at least 1): its share of the work."""
    for name in SEQUENCE_INPUTS:
        value = inputs.get(name)
        if value is not None and value.ndim >= 2:
            return max(1, int(value.shape[0]) * int(value.shape[1]))
    rows = [int(v.shape[0]) for v in inputs.values() if getattr(v, "ndim", 0) >= 1]
    return max([1] + rows)


def check_values(limits: ServerLimits, servable, signature_name: str, inputs: dict) -> int:
    """Refuse a request by the values that size its work (numpy inputs, before TensorFlow sees them):
    each row's ``max_new_tokens`` against the context left after its prompt (``prompt_length``, or the
    width of ``input_ids`` for exports whose generate takes scalars), and rows x sequences per row (returned
    sequences, or beams) x (prompt + new tokens) against ``--max-tokens``. Returns the request's tokens of
    work (what it holds of ``--in-flight-tokens``)."""
    tokens = sequence_tokens(inputs)
    if "max_new_tokens" not in inputs:
        return tokens
    ids = inputs.get("input_ids")
    width = int(ids.shape[1]) if ids is not None and ids.ndim == 2 else 0
    rows = int(ids.shape[0]) if ids is not None and ids.ndim >= 1 else 1
    requested = _per_row(inputs, "max_new_tokens", rows)
    if requested is None or not rows:
        return tokens
    lengths = _per_row(inputs, "prompt_length", rows) if "prompt_length" in inputs else [width] * rows
    if lengths is None:
        return tokens
    lengths = [min(length, width) if ids is not None else length for length in lengths]
    context, source = sequence_limit(limits, getattr(servable, "info", {}))
    if ids is not None and min(lengths) < 1:
        raise ServingError("INVALID_ARGUMENT", "input 'input_ids' holds no tokens (or a prompt_length is below 1); "
                                               "generation needs a prompt")
    for row, (prompt, asked) in enumerate(zip(lengths, requested)):
        where = f" (row {row})" if rows > 1 else ""
        allowed = min(limits.max_new_tokens, context - prompt)
        if allowed < 1:
            raise ServingError("INVALID_ARGUMENT", f"the prompt{where} has {prompt} tokens, which leaves no room to "
                                                   f"generate in a context of {context} tokens ({source})")
        if not 1 <= asked <= allowed:
            why = (" (--max-new-tokens)" if allowed == limits.max_new_tokens
                   else f": the context of {context} tokens ({source}) minus the prompt's {prompt}")
            raise ServingError("INVALID_ARGUMENT", f"max_new_tokens{where} is {asked}; it must be between 1 and "
                                                   f"{allowed}{why}")
    # The graph runs every row as wide as the call's widest: most sequences per row, longest prompt, most
    # new tokens (beam rows run num_beams sequences, others num_return_sequences).
    returned = _per_row(inputs, "num_return_sequences", rows) or [1] * rows
    beams = _per_row(inputs, "num_beams", rows) or [1] * rows
    strategy = _per_row(inputs, "strategy", rows) or [0] * rows
    sequences = max(max(r, b if s == 2 else 1, 1) for r, b, s in zip(returned, beams, strategy))
    prompt, asked = max(lengths), max(requested)
    if rows * sequences * (prompt + asked) > limits.max_tokens:
        each = f" x {sequences} sequences" if sequences > 1 else ""
        raise ServingError("INVALID_ARGUMENT", f"{rows} rows{each} of {prompt} + {asked} tokens is more than "
                                               f"{limits.max_tokens} tokens per request (--max-tokens): send fewer "
                                               "rows or sequences, or ask for fewer tokens")
    return rows * sequences * (prompt + asked)
