"""How the windows of one request are cut into Predict calls (``:answer`` and ``:tag``).

``plan_calls(lengths, buckets, per_call, max_rows, max_tokens)``: windows grouped by the smallest of the
export's ``buckets`` that holds them (one call holds windows of one padded length, so short windows cost
their own length, not the model's maximum), each group cut into the fewest calls of at most ``per_call``
rows that the model server takes (``max_rows`` rows, ``max_tokens`` rows x padded length: ``tfxformers
serve``'s ``--max-rows`` / ``--max-tokens``, which TF Serving's API cannot report), calls of one group
nearly equal in size so concurrent calls finish together.
"""
from __future__ import annotations

from tfxformers.models.buckets import bucket_length


def export_buckets(meta: dict) -> tuple[int, ...] | None:
    """The export's padding lengths (``buckets`` in its metadata) if they are usable: positive integers up to
    ``max_length``, the largest equal to it; None otherwise (the caller derives its own)."""
    max_length = int(meta["max_length"])
    buckets = meta.get("buckets")
    if (isinstance(buckets, list) and buckets and all(isinstance(b, int) and 0 < b <= max_length for b in buckets)
            and max(buckets) == max_length):
        return tuple(sorted(buckets))
    return None


def plan_calls(lengths: list[int], buckets, per_call: int | None, max_rows: int,
               max_tokens: int) -> list[tuple[int, list[int]]]:
    """``(padded length, window indices)`` of every Predict call for windows of the given lengths
    (``per_call`` None: no preference but the server's limits)."""
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(bucket_length(length, buckets), []).append(index)
    calls = []
    for width in sorted(groups):
        members = groups[width]
        cap = max(1, min(per_call or len(members), max_rows, max_tokens // width))
        n_calls = -(-len(members) // cap)
        base, extra = divmod(len(members), n_calls)
        start = 0
        for k in range(n_calls):
            size = base + (k < extra)
            calls.append((width, members[start:start + size]))
            start += size
    return calls


def pad_rows(rows: list[list[int]], width: int, pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """``(input_ids, attention_mask)`` of id rows padded to ``width`` (``pad_id``, mask 0)."""
    ids = [row + [pad_id] * (width - len(row)) for row in rows]
    mask = [[1] * len(row) + [0] * (width - len(row)) for row in rows]
    return ids, mask
