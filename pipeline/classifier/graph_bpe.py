"""Byte-level BPE (RoBERTa's tokenizer) as TensorFlow graph ops, for the Evaluator's ``serving_examples``.

tensorflow_text has WordPiece (``FastBertTokenizer``) and SentencePiece but no byte-level BPE, and a
``tf.py_function`` around the Hugging Face tokenizer would not survive ``tf.saved_model.save``. So this
module re-implements what the Hugging Face ``tokenizers`` library does for a RoBERTa ``tokenizer.json``,
with the same rules, from that file's own vocabulary and merges:

1. pre-tokenization with GPT-2's pattern ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|
   \\s+(?!\\S)|\\s+``. RE2 has no look-ahead, so ``\\s+(?!\\S)`` is obtained by first cutting every run of
   two or more white-space characters that is followed by a non-space before its last character (that
   last one then starts the next piece, as the look-ahead makes it), then splitting with the rest of the
   pattern. ``\\s`` is Unicode White_Space, as in the Oniguruma regex the library uses;
2. every piece's UTF-8 bytes mapped to GPT-2's printable byte alphabet (a 256-entry table);
3. BPE: in a ``tf.while_loop`` over all pieces of the batch at once, each piece merges its adjacent pair
   of lowest merge rank, leftmost first, until no pair of any piece is in the merge list (the order the
   library's priority queue applies merges in);
4. symbols -> ids through the vocabulary; ``<s> ... </s>`` framing, truncation and padding as RoBERTa's.

``MARK`` (U+E000, a private-use character) is used internally to cut white-space runs: a text that
itself contains U+E000 is split there too. ``tests/pipeline`` checks the ids against the Hugging Face
tokenizer (tiny tokenizer in the tests, GPT-2's real 50k vocabulary on a whole test split when fetched).
"""
from __future__ import annotations

import json

from tfxformers.errors import UserError

MARK = "\ue000"
_WS = r"\t\n\x0b\x0c\r\x{85}\p{Z}"   # Unicode White_Space, as Oniguruma's \s
PIECE_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^" + _WS + r"\p{L}\p{N}]+|[" + _WS + "]+")
_RUN_BEFORE_NONSPACE = "([" + _WS + "]+)([" + _WS + "])([^" + _WS + "])"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table: printable Latin-1 bytes map to themselves, the others
    to the characters from U+0100 on, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def bpe_settings(tokenizer) -> dict:
    """What the graph needs from a Hugging Face byte-level BPE tokenizer; refuses what it does not copy."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend.get("model") or {}
    if model.get("type") != "BPE":
        raise UserError(f"the in-graph byte-level BPE needs a BPE tokenizer, this one is {model.get('type')!r}")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise UserError(f"the in-graph byte-level BPE does not implement BPE {key}={model[key]!r}")
    if model.get("ignore_merges"):
        raise UserError("the in-graph byte-level BPE does not implement ignore_merges")
    pre = backend.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise UserError(f"the in-graph byte-level BPE needs the ByteLevel pre-tokenizer with its regex, not {pre}")
    normalizer = backend.get("normalizer")
    lowercase = False
    if normalizer:
        if normalizer.get("type") != "Lowercase":
            raise UserError(f"the in-graph byte-level BPE does not implement the {normalizer.get('type')} normalizer")
        lowercase = True
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return {"vocab": model["vocab"], "merges": merges, "add_prefix_space": bool(pre.get("add_prefix_space")),
            "lowercase": lowercase, "unk_id": model["vocab"].get(model.get("unk_token") or "", -1),
            "cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id,
            "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)}


class _ConstantLookup:
    """string -> int64 through sorted 64-bit fingerprints and ``searchsorted``, checked against the string
    itself, so a lookup is exact. Constants only: a ``tf.lookup`` table is a resource, which every SavedModel
    holding the signature would have to track, and TFX's Trainer hands signatures to an export that does not."""

    def __init__(self, tf, keys: list[str], values: list[int]):
        self._tf = tf
        keys = keys or [""]
        values = values or [-1]
        fingerprints = tf.strings.to_hash_bucket_fast(tf.constant(keys, tf.string), 2**63 - 1).numpy()
        order = fingerprints.argsort(kind="stable")
        sorted_fp = fingerprints[order]
        if len(set(sorted_fp.tolist())) != len(sorted_fp):
            raise UserError("two tokenizer entries share a 64-bit fingerprint; the in-graph tokenizer cannot tell them apart")
        self._fingerprints = tf.constant(sorted_fp, tf.int64)
        self._keys = tf.constant([keys[i] for i in order], tf.string)
        self._values = tf.constant([values[i] for i in order], tf.int64)

    def lookup(self, queries, default: int):
        tf = self._tf
        fingerprints = tf.strings.to_hash_bucket_fast(queries, 2**63 - 1)
        position = tf.minimum(tf.searchsorted(self._fingerprints, fingerprints, out_type=tf.int64), tf.size(self._keys, tf.int64) - 1)
        found = (tf.gather(self._fingerprints, position) == fingerprints) & (tf.gather(self._keys, position) == queries)
        return tf.where(found, tf.gather(self._values, position), tf.constant(default, tf.int64))


class ByteLevelBPETokenizer:
    """Texts -> (input_ids, attention_mask) int32 [batch, longest], ``<s> ... </s>``, in a TensorFlow graph."""

    def __init__(self, tokenizer, max_length: int):
        import tensorflow as tf
        import tensorflow_text as tf_text

        settings = bpe_settings(tokenizer)
        self._tf, self._tf_text = tf, tf_text
        self.max_length = int(max_length)
        self.cls_id, self.sep_id, self.pad_id = settings["cls_id"], settings["sep_id"], settings["pad_id"]
        self.add_prefix_space, self.lowercase = settings["add_prefix_space"], settings["lowercase"]
        table = bytes_to_unicode()
        self._byte_chars = tf.constant([table[b].encode("utf-8") for b in range(256)])
        merges = settings["merges"]
        self._merge_ranks = _ConstantLookup(tf, merges, list(range(len(merges))))
        vocab = settings["vocab"]
        self._vocab = _ConstantLookup(tf, list(vocab), list(vocab.values()))
        self._unk_id = int(settings["unk_id"])

    def pieces(self, texts):
        """Pre-tokenized pieces, ragged [batch, (pieces)] of strings (GPT-2's pattern, see the module doc)."""
        tf, tf_text = self._tf, self._tf_text
        if self.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        if self.add_prefix_space:
            starts_with_space = tf.strings.regex_full_match(texts, "(?s) .*")
            texts = tf.where(starts_with_space, texts, tf.strings.join([" ", texts]))
        texts = tf.strings.regex_replace(texts, _RUN_BEFORE_NONSPACE, "\\1" + MARK + "\\2\\3")
        runs = tf_text.regex_split(texts, MARK, "")                      # [batch, (runs)]
        pieces = tf_text.regex_split(runs.flat_values, PIECE_PATTERN, PIECE_PATTERN)   # [runs, (pieces)]
        return tf.RaggedTensor.from_row_splits(pieces, runs.row_splits).merge_dims(1, 2)

    def _merge(self, values, splits):
        """One BPE step: in every piece, merge the leftmost pair of lowest rank (if any pair is a merge)."""
        tf = self._tf
        big = tf.constant(2**62, tf.int64)
        n = tf.size(values, out_type=tf.int64)
        nrows = tf.size(splits, out_type=tf.int64) - 1
        row_ids = tf.RaggedTensor.from_row_splits(values, splits, validate=False).value_rowids()
        index = tf.range(n)
        has_next = index + 1 < tf.gather(splits[1:], row_ids)
        following = tf.gather(tf.concat([values, [""]], 0), index + 1)
        rank = self._merge_ranks.lookup(tf.strings.join([values, following], separator=" "), -1)
        rank = tf.where(has_next & (rank >= 0), rank, big)
        best = tf.math.unsorted_segment_min(rank, row_ids, nrows)
        candidate = (rank == tf.gather(best, row_ids)) & (rank < big)
        first = tf.math.unsorted_segment_min(tf.where(candidate, index, n), row_ids, nrows)
        merge_at = candidate & (index == tf.gather(first, row_ids))
        absorbed = tf.concat([[False], merge_at[:-1]], 0)[:tf.size(values)]
        merged = tf.where(merge_at, tf.strings.join([values, following]), values)
        new_values = tf.boolean_mask(merged, ~absorbed)
        lengths = splits[1:] - splits[:-1] - tf.math.unsorted_segment_sum(tf.cast(merge_at, tf.int64), row_ids, nrows)
        new_splits = tf.concat([[0], tf.cumsum(lengths)], 0)
        return new_values, new_splits, tf.reduce_any(merge_at)

    def token_ids(self, texts):
        """Ids without special tokens, ragged [batch, (ids)] int64."""
        tf = self._tf
        pieces = self.pieces(texts)
        byte_strings = tf.strings.bytes_split(pieces.flat_values)             # [pieces, (bytes)]
        byte_values = tf.cast(tf.io.decode_raw(byte_strings.flat_values, tf.uint8)[:, 0], tf.int32)
        symbols = tf.gather(self._byte_chars, byte_values)
        values, splits = symbols, byte_strings.row_splits

        def body(values, splits, _):
            return self._merge(values, splits)

        values, splits, _ = tf.while_loop(
            lambda v, s, changed: changed, body, (values, splits, tf.constant(True)),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])))
        ids = tf.RaggedTensor.from_row_splits(self._vocab.lookup(values, self._unk_id), splits)   # [pieces, (symbols)]
        return tf.RaggedTensor.from_row_splits(ids, pieces.row_splits).merge_dims(1, 2)

    def __call__(self, texts):
        tf = self._tf
        ids = tf.cast(self.token_ids(texts)[:, : self.max_length - 2], tf.int32)
        batch = tf.shape(ids.row_lengths())[0]
        cls = tf.fill([batch, 1], tf.constant(self.cls_id, tf.int32))
        sep = tf.fill([batch, 1], tf.constant(self.sep_id, tf.int32))
        ids = tf.concat([cls, ids, sep], axis=1)
        return ids.to_tensor(default_value=self.pad_id), tf.ones_like(ids).to_tensor(default_value=0)
