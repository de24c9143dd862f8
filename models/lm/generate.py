"""GPT-2 decoding as one TensorFlow graph: a ``tf.function`` with a key/value cache and no Python loop.

``make_generate_fn(hf_model, eos_id, pad_id, context=None)`` returns a ``tf.function`` with the input signature of the
``generate`` serving signature in docs/contracts.md::

    input_ids [batch, seq] int32, max_new_tokens [] int32, strategy [] int32 (0 greedy, 1 sample),
    temperature [] float32, top_k [] int32 (0: off), top_p [] float32 (1.0: off), seed [] int32
    -> output_ids [batch, max_new_tokens] int32 (pad after </s>), num_generated [batch] int32

The prompt runs once through the model; after that every step feeds one token per row and the cached
keys and values of all earlier positions (``past_key_values``), inside a ``tf.while_loop`` that stops
after ``max_new_tokens`` or when every row has produced ``</s>``. Sampling is stateless and seeded, so
the same seed gives the same text. Rows of one call must have the same prompt length (the proxy sends
one prompt per call).

The function checks its own arguments in the graph, before anything is sized by them, because a raw TF
Serving client reaches it with no other guard: a prompt of at least one token, ``1 <= max_new_tokens <=
context - prompt length`` (``context``: the positions the model was trained for, at most ``n_positions``),
``strategy`` 0 or 1, ``temperature > 0`` when sampling, ``top_k >= 0`` and ``0 < top_p <= 1``. A failed
check is a ``tf.errors.InvalidArgumentError`` ("assertion failed: [generate: ...]"), which TF Serving
answers as ``INVALID_ARGUMENT`` / HTTP 400.
"""
from __future__ import annotations

import tfxformers  # noqa: F401


def filter_logits(tf, logits, temperature, top_k, top_p):
    """Temperature, then top-k, then nucleus (top-p) filtering; filtered logits become -inf."""
    logits = logits / tf.maximum(temperature, 1e-6)
    vocab = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.math.top_k(logits, k=k).values[:, -1:]
    logits = tf.where(logits < kth, tf.fill(tf.shape(logits), float("-inf")), logits)
    sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
    cumulative = tf.cumsum(tf.nn.softmax(sorted_logits, axis=-1), axis=-1, exclusive=True)
    # Keep the smallest set of tokens whose probability reaches top_p (always at least the best one).
    keep = tf.cast(cumulative < top_p, tf.int32)
    cutoff_index = tf.maximum(tf.reduce_sum(keep, axis=-1) - 1, 0)
    cutoff = tf.gather(sorted_logits, cutoff_index[:, None], batch_dims=1)
    return tf.where(logits < cutoff, tf.fill(tf.shape(logits), float("-inf")), logits)


def check_arguments(tf, input_ids, max_new_tokens, strategy, temperature, top_k, top_p, context: int):
    """The in-graph checks of ``generate``'s arguments; returns the assertion ops."""
    prompt_length = tf.shape(input_ids)[1]
    # context - prompt_length, not prompt_length + max_new_tokens: that sum overflows int32.
    room = context - prompt_length
    return [
        tf.Assert(prompt_length >= 1, ["generate: input_ids must hold at least one token per row"]),
        tf.Assert(tf.logical_and(max_new_tokens >= 1, max_new_tokens <= room), [
            "generate: max_new_tokens must be between 1 and the context minus the prompt length:", room,
            "context", context, "prompt", prompt_length, "max_new_tokens", max_new_tokens]),
        tf.Assert(tf.logical_or(tf.equal(strategy, 0), tf.equal(strategy, 1)),
                  ["generate: strategy must be 0 (greedy) or 1 (sample), got", strategy]),
        tf.Assert(tf.logical_or(tf.not_equal(strategy, 1), temperature > 0),
                  ["generate: temperature must be > 0 when sampling (strategy 1), got", temperature]),
        tf.Assert(top_k >= 0, ["generate: top_k must be >= 0 (0 = off), got", top_k]),
        tf.Assert(tf.logical_and(top_p > 0, top_p <= 1), ["generate: top_p must be in (0, 1] (1 = off), got", top_p]),
    ]


def make_generate_fn(hf_model, eos_id: int, pad_id: int, context: int | None = None):
    """``context``: the longest prompt + generation allowed (default and maximum: the model's n_positions)."""
    import tensorflow as tf

    n_layer = hf_model.config.n_layer
    n_positions = int(hf_model.config.n_positions)
    context = n_positions if context is None else min(int(context), n_positions)

    def forward(ids, past, positions):
        past_tuple = None if past is None else tuple(past[i] for i in range(n_layer))
        out = hf_model(input_ids=ids, past_key_values=past_tuple, position_ids=positions, use_cache=True,
                       training=False)
        return out.logits[:, -1, :], tf.stack([tf.convert_to_tensor(p) for p in out.past_key_values])

    @tf.function(input_signature=[
        tf.TensorSpec((None, None), tf.int32, name="input_ids"),
        tf.TensorSpec((), tf.int32, name="max_new_tokens"),
        tf.TensorSpec((), tf.int32, name="strategy"),
        tf.TensorSpec((), tf.float32, name="temperature"),
        tf.TensorSpec((), tf.int32, name="top_k"),
        tf.TensorSpec((), tf.float32, name="top_p"),
        tf.TensorSpec((), tf.int32, name="seed"),
    ], autograph=False)
    def generate(input_ids, max_new_tokens, strategy, temperature, top_k, top_p, seed):
        # Explicit dependencies: the TensorArray below is sized by max_new_tokens and must never be
        # allocated for a value the checks refuse.
        with tf.control_dependencies(check_arguments(tf, input_ids, max_new_tokens, strategy, temperature, top_k,
                                                     top_p, context)):
            input_ids, max_new_tokens = tf.identity(input_ids), tf.identity(max_new_tokens)
        batch = tf.shape(input_ids)[0]
        prompt_length = tf.shape(input_ids)[1]
        positions = tf.broadcast_to(tf.range(prompt_length)[None, :], tf.shape(input_ids))
        logits, past = forward(input_ids, None, positions)
        tokens = tf.TensorArray(tf.int32, size=max_new_tokens, element_shape=tf.TensorShape([None]))
        finished = tf.zeros([batch], tf.bool)
        generated = tf.zeros([batch], tf.int32)

        def choose(logits, step):
            greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
            filtered = filter_logits(tf, logits, temperature, top_k, top_p)
            sampled = tf.cast(tf.squeeze(tf.random.stateless_categorical(
                filtered, 1, seed=tf.stack([seed, step]), dtype=tf.int64), axis=1), tf.int32)
            return tf.where(strategy == 1, sampled, greedy)

        def condition(step, logits, past, tokens, finished, generated):
            return tf.logical_and(step < max_new_tokens, tf.logical_not(tf.reduce_all(finished)))

        def body(step, logits, past, tokens, finished, generated):
            token = choose(logits, step)
            token = tf.where(finished, tf.fill([batch], pad_id), token)
            generated += tf.cast(tf.logical_not(finished), tf.int32)
            finished = tf.logical_or(finished, tf.equal(token, eos_id))
            tokens = tokens.write(step, token)
            position = tf.fill([batch, 1], prompt_length + step)
            logits, past = forward(token[:, None], past, position)
            return step + 1, logits, past, tokens, finished, generated

        past_shape = tf.TensorShape([n_layer, 2, None, hf_model.config.n_head, None,
                                     hf_model.config.n_embd // hf_model.config.n_head])
        step, _, _, tokens, finished, generated = tf.while_loop(
            condition, body, (tf.constant(0), logits, past, tokens, finished, generated),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), past_shape, None,
                              tf.TensorShape([None]), tf.TensorShape([None])))
        # Rows that stopped early, or a loop that ended early, are padded to max_new_tokens.
        written = tf.transpose(tokens.stack()[:step])
        output = tf.pad(written, [[0, 0], [0, max_new_tokens - step]], constant_values=pad_id)
        return {"output_ids": output, "num_generated": generated}

    return generate
