"""GPT-2 decoding as one TensorFlow graph: a ``tf.function`` with a key/value cache and no Python loop.

``make_generate_fn(hf_model, eos_id, pad_id, context=None)`` returns a ``tf.function`` with the input
signature of the ``generate`` serving signature in docs/contracts.md. Every input has a leading batch
dimension, so TF Serving's batcher can merge concurrent calls and split the answer again::

    input_ids [batch, seq] int32      each row's prompt, left-aligned; positions >= prompt_length ignored
    prompt_length [batch] int32       tokens of the row's prompt (1 .. seq)
    max_new_tokens, strategy (0 greedy, 1 sample, 2 beam), top_k (0: off), seed, num_return_sequences,
    num_beams, early_stopping (0/1): [batch] int32; temperature, top_p (1: off), length_penalty: [batch] float32
    -> output_ids [batch, R, T] int32 (pad after </s>; R = largest num_return_sequences of the call,
       T = largest max_new_tokens), num_generated [batch, R] int32, sequence_scores [batch, R] float32

Why a length and not an attention mask: TF Serving's batcher pads variable-length inputs at the end with
the tensor's *first* element, so a mask of ones (a request without padding) is padded with ones and the
server's padding would pass for prompt. A per-row length travels with its row untouched. Inside the graph
the prompts are re-aligned to the right (left padding), with an attention mask and position ids counted
from each row's first real token, which is what transformers' own generate does for a padded batch.

Greedy and sampled rows: the prompt runs once through the model; after that every step feeds one token
per row and the cached keys and values (``past_key_values``) inside a ``tf.while_loop``. A row stops at
its own ``max_new_tokens`` or at ``</s>``. Sampling is stateless and seeded per row and per returned
sequence (seed pair ``[seed, 65536 * j + step]`` for sequence j), so a row's tokens do not depend on the
other rows of the call: batched and unbatched calls give the same text.

Beam rows (strategy 2) follow transformers' TF ``beam_search`` (tf_utils.py) step for step: top
``2 * num_beams`` candidates, ``</s>`` among the first ``num_beams`` candidates closes a hypothesis
scored ``sum log p / length ** length_penalty``, the loop for a row ends when no running beam can beat
its worst kept hypothesis (``early_stopping`` 0) or when ``num_beams`` hypotheses are done
(``early_stopping`` 1). Each row decides for itself (transformers decides for the whole batch, so its
result for a prompt can depend on the other prompts); rows with fewer beams than the widest row of the
call have their extra beams masked out, which leaves their search unchanged.

The function checks its own arguments in the graph, before anything is sized by them, because a raw TF
Serving client reaches it with no other guard (``check_arguments``). A failed check is a
``tf.errors.InvalidArgumentError`` ("assertion failed: [generate: ...]"), which TF Serving answers as
``INVALID_ARGUMENT`` / HTTP 400.
"""
from __future__ import annotations

import tfxformers  # noqa: F401

GREEDY, SAMPLE, BEAM = 0, 1, 2
STRATEGY_IDS = {"greedy": GREEDY, "sample": SAMPLE, "beam": BEAM}
MAX_RETURN_SEQUENCES = 16
MAX_BEAMS = 16
# Seed pairs are [seed, SEED_STRIDE * sequence + step]: steps stay below the context (<= 2048).
SEED_STRIDE = 65536

# name -> (dtype, default) of every input but input_ids, in the signature's order.
OPTIONS = {
    "prompt_length": ("int32", None),
    "max_new_tokens": ("int32", 32),
    "strategy": ("int32", GREEDY),
    "temperature": ("float32", 1.0),
    "top_k": ("int32", 0),
    "top_p": ("float32", 1.0),
    "seed": ("int32", 0),
    "num_return_sequences": ("int32", 1),
    "num_beams": ("int32", 1),
    "length_penalty": ("float32", 1.0),
    "early_stopping": ("int32", 0),
}
INPUT_NAMES = ("input_ids",) + tuple(OPTIONS)
OUTPUT_NAMES = ("output_ids", "num_generated", "sequence_scores")


def request_inputs(prompts: list[list[int]], pad_id: int = 0, **options) -> dict:
    """The signature's inputs as nested lists (no numpy, no TensorFlow: the proxy uses this).

    ``options`` are scalars (the same for every row) or lists (one per row); ``seed`` as a scalar gives row
    i the seed ``seed + i``, so that equal prompts in one call are still sampled independently.
    """
    rows = len(prompts)
    width = max((len(p) for p in prompts), default=0)
    inputs = {"input_ids": [list(p) + [pad_id] * (width - len(p)) for p in prompts],
              "prompt_length": [len(p) for p in prompts]}
    for name, (dtype, default) in OPTIONS.items():
        if name == "prompt_length":
            continue
        value = options.get(name, default)
        if isinstance(value, (list, tuple)):
            if len(value) != rows:
                raise ValueError(f"{name} has {len(value)} values for {rows} prompts")
            inputs[name] = list(value)
        elif name == "seed":
            inputs[name] = [(int(value) + i) % 2**31 for i in range(rows)]
        else:
            inputs[name] = [value] * rows
        cast = float if dtype == "float32" else int
        inputs[name] = [cast(v) for v in inputs[name]]
    return inputs


def as_arrays(inputs: dict) -> dict:
    """``request_inputs``' lists as numpy arrays of the signature's dtypes."""
    import numpy as np

    return {k: np.asarray(v, dtype=np.int32 if k == "input_ids" else OPTIONS[k][0]) for k, v in inputs.items()}


def filter_logits(tf, logits, temperature, top_k, top_p):
    """Per-row temperature, then top-k, then nucleus (top-p) filtering; filtered logits become -inf.

    ``temperature``, ``top_k``, ``top_p``: [rows] (top_k 0 and top_p 1 are off)."""
    logits = logits / tf.maximum(temperature, 1e-6)[:, None]
    vocab = tf.shape(logits)[-1]
    sorted_logits = tf.sort(logits, direction="DESCENDING", axis=-1)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.gather(sorted_logits, (k - 1)[:, None], batch_dims=1)
    neg_inf = tf.fill(tf.shape(logits), float("-inf"))
    logits = tf.where(logits < kth, neg_inf, logits)
    sorted_logits = tf.where(sorted_logits < kth, tf.fill(tf.shape(sorted_logits), float("-inf")), sorted_logits)
    cumulative = tf.cumsum(tf.nn.softmax(sorted_logits, axis=-1), axis=-1, exclusive=True)
    # Keep the smallest set of tokens whose probability reaches top_p (always at least the best one).
    keep = tf.cast(cumulative < top_p[:, None], tf.int32)
    cutoff_index = tf.maximum(tf.reduce_sum(keep, axis=-1) - 1, 0)
    cutoff = tf.gather(sorted_logits, cutoff_index[:, None], batch_dims=1)
    return tf.where(logits < cutoff, neg_inf, logits)


def check_arguments(tf, input_ids, args: dict, context: int):
    """The in-graph checks of ``generate``'s arguments (``args``: every input but input_ids, [batch] each);
    returns the assertion ops."""
    rows = tf.shape(input_ids)[0]
    width = tf.shape(input_ids)[1]
    length = args["prompt_length"]
    strategy, beams, returned = args["strategy"], args["num_beams"], args["num_return_sequences"]
    checks = [tf.Assert(tf.equal(tf.shape(value)[0], rows),
                        [f"generate: {name} must have one value per row of input_ids: rows", rows, name,
                         tf.shape(value)[0]])
              for name, value in args.items()]

    def every(condition, message, *values):
        checks.append(tf.Assert(tf.reduce_all(condition), [f"generate: {message}", *values]))

    # Before anything reads a value per row: a shorter vector would broadcast or fail with a shape error.
    with tf.control_dependencies(checks[:]):
        every(tf.logical_and(length >= 1, length <= width),
              "prompt_length must be between 1 and the width of input_ids:", width, "prompt_length", length)
        # context - length, not length + max_new_tokens: that sum overflows int32.
        room = context - length
        mnt = args["max_new_tokens"]
        every(tf.logical_and(mnt >= 1, mnt <= room),
              "max_new_tokens must be between 1 and the context minus the prompt length:", room,
              "context", context, "prompt", length, "max_new_tokens", mnt)
        every(tf.logical_and(strategy >= 0, strategy <= 2), "strategy must be 0 (greedy), 1 (sample) or 2 (beam), got",
              strategy)
        every(tf.logical_or(tf.not_equal(strategy, SAMPLE), args["temperature"] > 0),
              "temperature must be > 0 when sampling (strategy 1), got", args["temperature"])
        every(args["top_k"] >= 0, "top_k must be >= 0 (0 = off), got", args["top_k"])
        every(tf.logical_and(args["top_p"] > 0, args["top_p"] <= 1), "top_p must be in (0, 1] (1 = off), got",
              args["top_p"])
        every(tf.logical_and(beams >= 1, beams <= MAX_BEAMS), f"num_beams must be between 1 and {MAX_BEAMS}, got",
              beams)
        every(tf.logical_and(returned >= 1, returned <= MAX_RETURN_SEQUENCES),
              f"num_return_sequences must be between 1 and {MAX_RETURN_SEQUENCES}, got", returned)
        every(tf.logical_or(tf.not_equal(strategy, GREEDY), tf.equal(returned, 1)),
              "greedy search returns one sequence (num_return_sequences 1); sample or use beams, got", returned)
        every(tf.logical_or(tf.not_equal(strategy, BEAM), returned <= beams),
              "num_return_sequences must be <= num_beams with beam search: num_beams", beams,
              "num_return_sequences", returned)
        every(tf.math.is_finite(args["length_penalty"]), "length_penalty must be finite, got", args["length_penalty"])
        every(tf.logical_or(tf.equal(args["early_stopping"], 0), tf.equal(args["early_stopping"], 1)),
              "early_stopping must be 0 or 1, got", args["early_stopping"])
    return checks


def _left_pad(tf, input_ids, length, pad_id: int):
    """Rows re-aligned to the right: (ids, attention mask, position ids), as wide as the longest prompt."""
    width = tf.reduce_max(length)
    source = tf.range(width)[None, :] - (width - length)[:, None]
    real = source >= 0
    ids = tf.where(real, tf.gather(input_ids, tf.maximum(source, 0), batch_dims=1), pad_id)
    mask = tf.cast(real, tf.int32)
    return ids, mask, tf.cumsum(mask, axis=1, exclusive=True)


def make_generate_fn(hf_model, eos_id: int, pad_id: int, context: int | None = None):
    """``context``: the longest prompt + generation allowed (default and maximum: the model's n_positions)."""
    import tensorflow as tf

    config = hf_model.config
    n_layer = config.n_layer
    context = int(config.n_positions) if context is None else min(int(context), int(config.n_positions))
    # One [2, rows, heads, length, head size] tensor per layer, kept as a tuple: stacking them into one
    # loop variable copied the whole cache twice per step.
    past_shape = (tf.TensorShape([2, None, config.n_head, None, config.n_embd // config.n_head]),) * n_layer
    neg_inf = float("-inf")

    def forward(ids, past, positions, mask):
        out = hf_model(input_ids=ids, past_key_values=past, attention_mask=mask, position_ids=positions,
                       use_cache=True, training=False)
        return out.logits[:, -1, :], tuple(tf.convert_to_tensor(p) for p in out.past_key_values)

    def plain(input_ids, a, returned_max, steps):
        """Greedy and sampled rows: [rows, R, T] tokens, [rows, R] counts and summed log-probabilities."""
        rows = tf.shape(input_ids)[0]
        # Row i's sequence j is flat row i * R + j.
        expand = lambda v: tf.repeat(v, returned_max, axis=0)  # noqa: E731
        sequence = tf.tile(tf.range(returned_max), [rows])
        length, limit = expand(a["prompt_length"]), expand(a["max_new_tokens"])
        strategy, seed = expand(a["strategy"]), expand(a["seed"])
        temperature, top_k, top_p = expand(a["temperature"]), expand(a["top_k"]), expand(a["top_p"])
        ids, mask, positions = _left_pad(tf, expand(input_ids), length, pad_id)
        logits, past = forward(ids, None, positions, mask)
        n = tf.shape(ids)[0]
        tokens = tf.TensorArray(tf.int32, size=steps, element_shape=tf.TensorShape([None]))
        finished = sequence >= expand(a["num_return_sequences"])  # sequences the row did not ask for
        generated = tf.zeros([n], tf.int32)
        scores = tf.zeros([n], tf.float32)

        def sample(logits, step):
            filtered = filter_logits(tf, logits, temperature, top_k, top_p)
            pairs = tf.stack([seed, SEED_STRIDE * sequence + step], axis=1)
            # One draw per row with its own seed pair: a row's sample does not depend on its neighbours.
            return tf.map_fn(lambda x: tf.random.stateless_categorical(x[0][None], 1, seed=x[1], dtype=tf.int32)[0, 0],
                             (filtered, pairs), fn_output_signature=tf.int32)

        def body(step, logits, past, mask, tokens, finished, generated, scores):
            greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
            wants_sample = tf.logical_and(tf.equal(strategy, SAMPLE), tf.logical_not(finished))
            token = tf.cond(tf.reduce_any(wants_sample), lambda: tf.where(wants_sample, sample(logits, step), greedy),
                            lambda: greedy)
            token = tf.where(finished, pad_id, token)
            log_probs = tf.gather(tf.nn.log_softmax(logits), token[:, None], batch_dims=1)[:, 0]
            scores += tf.where(finished, 0.0, log_probs)
            generated += tf.cast(tf.logical_not(finished), tf.int32)
            finished = tf.logical_or(finished, tf.logical_or(tf.equal(token, eos_id), generated >= limit))
            tokens = tokens.write(step, token)
            mask = tf.concat([mask, tf.ones([n, 1], tf.int32)], axis=1)
            # Rows that stopped still run (and are ignored): keep their positions inside the embeddings.
            logits, past = forward(token[:, None], past, tf.minimum(length + step, context - 1)[:, None], mask)
            return step + 1, logits, past, mask, tokens, finished, generated, scores

        def condition(step, logits, past, mask, tokens, finished, generated, scores):
            return tf.logical_and(step < steps, tf.logical_not(tf.reduce_all(finished)))

        step, _, _, _, tokens, _, generated, scores = tf.while_loop(
            condition, body, (tf.constant(0), logits, past, mask, tokens, finished, generated, scores),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), past_shape,
                              tf.TensorShape([None, None]), None, tf.TensorShape([None]), tf.TensorShape([None]),
                              tf.TensorShape([None])))
        written = tf.transpose(tokens.stack()[:step])
        output = tf.pad(written, [[0, 0], [0, steps - step]], constant_values=pad_id)
        return (tf.reshape(output, [rows, returned_max, steps]), tf.reshape(generated, [rows, returned_max]),
                tf.reshape(scores, [rows, returned_max]))

    def beam(input_ids, a, returned_max, steps):
        """Beam rows, transformers' beam_search per row: [rows, R, T], [rows, R], [rows, R]."""
        rows = tf.shape(input_ids)[0]
        width = tf.reduce_max(a["num_beams"])
        beams = a["num_beams"][:, None]
        valid = tf.range(width)[None, :] < beams  # [rows, width]: beams a row did not ask for are masked
        length, limit = a["prompt_length"], a["max_new_tokens"]
        penalty, early = a["length_penalty"][:, None], tf.equal(a["early_stopping"], 1)
        ids, mask, positions = _left_pad(tf, tf.repeat(input_ids, width, axis=0), tf.repeat(length, width), pad_id)
        logits, past = forward(ids, None, positions, mask)
        n = rows * width
        first = tf.concat([tf.zeros([rows, 1]), tf.fill([rows, width - 1], -1.0e9)], axis=1)
        running_scores = tf.where(valid, first, neg_inf)
        running = tf.fill([rows, width, steps], pad_id)
        done = tf.fill([rows, width, steps], pad_id)
        done_scores = tf.where(valid, tf.fill([rows, width], -1.0e9), neg_inf)
        done_flags = tf.zeros([rows, width], tf.bool)
        done_lengths = tf.zeros([rows, width], tf.int32)
        row_steps = tf.zeros([rows], tf.int32)
        active = tf.ones([rows], tf.bool)
        candidates = 2 * width
        rank = tf.range(candidates)[None, :]
        column = tf.range(steps)[None, None, :]

        def body(step, logits, past, mask, running, running_scores, done, done_scores, done_flags, done_lengths,
                 row_steps, active):
            vocab = tf.shape(logits)[-1]
            log_probs = tf.reshape(tf.nn.log_softmax(logits), [rows, width, vocab]) + running_scores[:, :, None]
            log_probs = tf.where(valid[:, :, None], log_probs, neg_inf)
            top_scores, top_index = tf.math.top_k(tf.reshape(log_probs, [rows, width * vocab]), k=candidates)
            # transformers looks at the first 2 * num_beams candidates of a row only.
            top_scores = tf.where(rank < 2 * beams, top_scores, neg_inf)
            source, token = top_index // vocab, top_index % vocab
            here = tf.equal(column, row_steps[:, None, None])
            candidate_tokens = tf.where(here, token[:, :, None], tf.gather(running, source, batch_dims=1))
            is_eos = tf.equal(token, eos_id)
            just_done = tf.logical_and(is_eos, rank < beams)
            running_candidates = top_scores + tf.where(is_eos, -1.0e9, 0.0)
            keep = tf.math.top_k(running_candidates, k=width).indices
            new_running = tf.gather(candidate_tokens, keep, batch_dims=1)
            new_running_scores = tf.where(valid, tf.gather(running_candidates, keep, batch_dims=1), neg_inf)
            new_length = row_steps + 1
            scored = top_scores / tf.cast(new_length, tf.float32)[:, None] ** penalty
            full = tf.logical_and(tf.reduce_all(tf.logical_or(done_flags, tf.logical_not(valid)), axis=1), early)
            scored += tf.where(tf.logical_or(tf.logical_not(just_done), full[:, None]), -1.0e9, 0.0)
            merged = tf.math.top_k(tf.concat([done_scores, scored], axis=1), k=width).indices
            pick = lambda old, new: tf.gather(tf.concat([old, new], axis=1), merged, batch_dims=1)  # noqa: E731
            new_done = pick(done, candidate_tokens)
            new_done_scores = tf.where(valid, pick(done_scores, scored), neg_inf)
            new_done_flags = tf.logical_and(valid, pick(done_flags, just_done))
            new_done_lengths = pick(done_lengths, tf.broadcast_to(new_length[:, None], [rows, candidates]))
            # transformers' stopping rule, per row: no running beam can beat the worst kept hypothesis, or
            # (early_stopping) every beam has a finished hypothesis.
            best_running = new_running_scores[:, 0] / tf.cast(new_length, tf.float32) ** penalty[:, 0]
            worst_done = tf.reduce_min(tf.where(valid, new_done_scores, float("inf")), axis=1)
            worst = tf.where(new_done_flags, worst_done[:, None], -1.0e9)
            improvable = tf.reduce_any(tf.logical_and(valid, best_running[:, None] > worst), axis=1)
            all_done = tf.reduce_all(tf.logical_or(new_done_flags, tf.logical_not(valid)), axis=1)
            still = tf.logical_and(improvable, tf.logical_not(tf.logical_and(all_done, early)))
            # Rows that already stopped keep their state; only their (ignored) cache moves on.
            freeze = lambda new, old: tf.where(  # noqa: E731
                tf.reshape(active, [-1] + [1] * (len(new.shape) - 1)), new, old)
            running, running_scores = freeze(new_running, running), freeze(new_running_scores, running_scores)
            done, done_scores = freeze(new_done, done), freeze(new_done_scores, done_scores)
            done_flags, done_lengths = freeze(new_done_flags, done_flags), freeze(new_done_lengths, done_lengths)
            row_steps = tf.where(active, new_length, row_steps)
            active = tf.logical_and(active, tf.logical_and(still, row_steps < limit))
            # The cache follows the beams it was computed for.
            origin = tf.gather(source, keep, batch_dims=1) + tf.range(rows)[:, None] * width
            past = tuple(tf.gather(p, tf.reshape(origin, [-1]), axis=1) for p in past)
            # Stopped rows still run (and are ignored): keep their indices in range.
            last = tf.minimum(new_length - 1, steps - 1)
            next_token = tf.gather(tf.reshape(new_running, [n, steps]), tf.repeat(last, width)[:, None], batch_dims=1)
            mask = tf.concat([mask, tf.ones([n, 1], tf.int32)], axis=1)
            position = tf.minimum(length + last, context - 1)
            logits, past = forward(next_token, past, tf.repeat(position, width)[:, None], mask)
            return (step + 1, logits, past, mask, running, running_scores, done, done_scores, done_flags,
                    done_lengths, row_steps, active)

        def condition(step, *state):
            return tf.logical_and(step < steps, tf.reduce_any(state[-1]))

        state = tf.while_loop(
            condition, body, (tf.constant(0), logits, past, mask, running, running_scores, done, done_scores,
                              done_flags, done_lengths, row_steps, active),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), past_shape,
                              tf.TensorShape([None, None])) + (None,) * 8)
        _, _, _, _, running, running_scores, done, done_scores, done_flags, done_lengths, row_steps, _ = state
        # A row without any finished hypothesis returns its running beams (transformers does the same).
        none_done = tf.logical_not(tf.reduce_any(done_flags, axis=1))
        final_running = running_scores / tf.cast(row_steps, tf.float32)[:, None] ** penalty
        tokens = tf.where(none_done[:, None, None], running, done)[:, :returned_max]
        scores = tf.where(none_done[:, None], final_running, done_scores)[:, :returned_max]
        counts = tf.where(none_done[:, None], tf.broadcast_to(row_steps[:, None], [rows, width]),
                          done_lengths)[:, :returned_max]
        # Fewer beams than the call's widest num_return_sequences: pad the sequences a row did not ask for.
        short = returned_max - tf.shape(tokens)[1]
        tokens = tf.pad(tokens, [[0, 0], [0, short], [0, 0]], constant_values=pad_id)
        scores, counts = tf.pad(scores, [[0, 0], [0, short]]), tf.pad(counts, [[0, 0], [0, short]])
        wanted = tf.range(returned_max)[None, :] < a["num_return_sequences"][:, None]
        tokens = tf.where(wanted[:, :, None], tokens, pad_id)
        return tokens, tf.where(wanted, counts, 0), tf.where(wanted, scores, 0.0)

    spec = {"int32": tf.int32, "float32": tf.float32}

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="input_ids")] + [
        tf.TensorSpec((None,), spec[dtype], name=name) for name, (dtype, _) in OPTIONS.items()], autograph=False)
    def generate(input_ids, prompt_length, max_new_tokens, strategy, temperature, top_k, top_p, seed,
                 num_return_sequences, num_beams, length_penalty, early_stopping):
        args = dict(zip(OPTIONS, (prompt_length, max_new_tokens, strategy, temperature, top_k, top_p, seed,
                                  num_return_sequences, num_beams, length_penalty, early_stopping)))
        # Explicit dependencies: nothing below may be sized by a value the checks refuse.
        with tf.control_dependencies(check_arguments(tf, input_ids, args, context)):
            input_ids = tf.identity(input_ids)
            args = {k: tf.identity(v) for k, v in args.items()}
        steps = tf.reduce_max(tf.concat([args["max_new_tokens"], [1]], axis=0))
        returned_max = tf.reduce_max(tf.concat([args["num_return_sequences"], [1]], axis=0))
        is_beam = tf.equal(args["strategy"], BEAM)
        empty = (tf.zeros([0, returned_max, steps], tf.int32), tf.zeros([0, returned_max], tf.int32),
                 tf.zeros([0, returned_max], tf.float32))
        parts, where = [], []
        for chosen, run in ((tf.logical_not(is_beam), plain), (is_beam, beam)):
            index = tf.cast(tf.where(chosen)[:, 0], tf.int32)
            subset = {k: tf.gather(v, index) for k, v in args.items()}
            sub_ids = tf.gather(input_ids, index)
            parts.append(tf.cond(tf.size(index) > 0,
                                 lambda run=run, sub_ids=sub_ids, subset=subset: run(sub_ids, subset, returned_max,
                                                                                      steps),
                                 lambda: empty))
            where.append(index)
        outputs = [tf.dynamic_stitch(where, [p[i] for p in parts]) for i in range(3)]
        outputs = [tf.ensure_shape(o, [None] * len(o.shape)) for o in outputs]
        return dict(zip(OUTPUT_NAMES, outputs))

    return generate
