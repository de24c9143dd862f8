"""Graph pieces every export's signatures share: the batching-safe mask, the ids/mask shape check, and the
``tfxformers_metadata`` signature (how a client that only talks to TF Serving gets a version's metadata
and tokenizer).

Batching-safe attention mask: TF Serving's batcher pads variable-length inputs with the tensor's first
element ([CLS] and mask 1 for BERT), so the graph keeps only positions up to each row's first [SEP]
(``mask_up_to_first_sep``) on top of the mask it is given.
"""
from __future__ import annotations


def mask_up_to_first_sep(tf, input_ids, attention_mask, sep_id: int):
    """The given mask, limited to positions up to and including each row's first [SEP]."""
    is_sep = tf.cast(tf.equal(input_ids, sep_id), tf.int32)
    has_sep = tf.reduce_any(is_sep > 0, axis=1)
    first_sep = tf.argmax(is_sep, axis=1, output_type=tf.int32)
    length = tf.shape(input_ids)[1]
    last = tf.where(has_sep, first_sep, tf.fill(tf.shape(first_sep), length - 1))
    positions = tf.range(length)[tf.newaxis, :]
    return attention_mask * tf.cast(positions <= last[:, tf.newaxis], attention_mask.dtype)


def assert_same_shape(tf, input_ids, attention_mask):
    """An in-graph check that a mask matches its ids: ``ids * mask`` would otherwise broadcast a [1, n]
    mask over every row, or a [b, 1] mask over every position, and answer as if nothing were wrong."""
    ids_shape, mask_shape = tf.shape(input_ids), tf.shape(attention_mask)
    check = tf.Assert(tf.reduce_all(tf.equal(ids_shape, mask_shape)),
                      ["attention_mask must have the shape of input_ids: attention_mask", mask_shape,
                       "input_ids", ids_shape])
    with tf.control_dependencies([check]):
        return tf.identity(input_ids), tf.identity(attention_mask)


def metadata_function(tf, module):
    """The ``tfxformers_metadata`` signature: the version's metadata and tokenizer, one copy per probe
    element so that server-side batching can split the answer like any other output."""

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.int32, name="probe")], autograph=False)
    def metadata(probe):
        n = tf.shape(probe)[:1]
        return {"metadata_json": tf.fill(n, module.metadata_json), "tokenizer_json": tf.fill(n, module.tokenizer_json)}

    return metadata
