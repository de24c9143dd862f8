"""The batched in-graph ``generate`` (models/lm/generate.py) against transformers' eager ``generate`` on one
tiny random GPT-2: ragged prompts in one call, greedy and beam search token for token, rows independent of
their neighbours (what server-side batching relies on), seeded sampling, and the in-graph checks."""
from __future__ import annotations

import re

import pytest

EOS, PAD = 2, 0
PROMPTS = [[5, 6, 7, 8, 9], [11, 3], [4, 17, 4, 17, 4, 17, 4, 30], [25]]


@pytest.fixture(scope="module")
def model():
    import tensorflow as tf
    from transformers import GPT2Config, TFGPT2LMHeadModel

    from tfxformers.models.lm.generate import make_generate_fn

    tf.keras.utils.set_random_seed(3)
    # A wide initializer gives peaked, varied next-token distributions (a default tiny model repeats one token).
    config = GPT2Config(vocab_size=40, n_positions=40, n_embd=16, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=EOS,
                        pad_token_id=PAD, initializer_range=0.3)
    hf = TFGPT2LMHeadModel(config)
    hf(hf.dummy_inputs)
    return hf, make_generate_fn(hf, EOS, PAD, context=36)


def _run(generate, prompts, **options):
    import tensorflow as tf

    from tfxformers.models.lm.generate import request_inputs

    out = generate(**{k: tf.constant(v) for k, v in request_inputs(prompts, PAD, **options).items()})
    ids, counts = out["output_ids"].numpy(), out["num_generated"].numpy()
    return [[ids[i, j, :counts[i, j]].tolist() for j in range(ids.shape[1])] for i in range(len(prompts))], out


def _hf(hf, prompt, **options):
    import tensorflow as tf

    ids = tf.constant([prompt], tf.int32)
    out = hf.generate(ids, attention_mask=tf.ones_like(ids), pad_token_id=PAD, eos_token_id=EOS, do_sample=False,
                      **options).numpy()[:, len(prompt):]
    return [row.tolist() for row in out]


def _trim(sequence):
    return sequence[:sequence.index(EOS) + 1] if EOS in sequence else sequence


def test_ragged_greedy_and_beam_search_match_transformers_token_for_token(model):
    hf, generate = model
    greedy, _ = _run(generate, PROMPTS, max_new_tokens=12)
    for prompt, row in zip(PROMPTS, greedy):
        assert row[0] == _trim(_hf(hf, prompt, max_new_tokens=12)[0]), prompt
    stopped_at_eos = 0
    for penalty, early in ((1.0, 0), (0.6, 1)):
        beams, out = _run(generate, PROMPTS, max_new_tokens=14, strategy=2, num_beams=3, num_return_sequences=2,
                          length_penalty=penalty, early_stopping=early)
        for prompt, row in zip(PROMPTS, beams):
            reference = _hf(hf, prompt, max_new_tokens=14, num_beams=3, num_return_sequences=2, length_penalty=penalty,
                            early_stopping=bool(early))
            # transformers pads ended hypotheses with pad_id; the signature reports their lengths instead.
            assert [r[:len(m)] for r, m in zip(reference, row)] == row, (prompt, penalty, early)
            assert all(set(r[len(m):]) <= {PAD} for r, m in zip(reference, row)), (prompt, penalty, early)
            stopped_at_eos += sum(bool(r) and r[-1] == EOS for r in row)
        assert out["output_ids"].shape == (len(PROMPTS), 2, 14)
    assert stopped_at_eos, "no beam ended at </s>: the test does not exercise the early stop"


def test_rows_do_not_depend_on_their_neighbours(model):
    """Each row of a mixed call (greedy, sampled, beam; short and long prompts) equals the same row alone."""
    _, generate = model
    options = dict(strategy=[0, 1, 2, 1], max_new_tokens=[3, 9, 7, 5], num_beams=[1, 1, 4, 1],
                   num_return_sequences=[1, 3, 2, 1], temperature=[1.0, 1.3, 1.0, 0.8], top_k=[0, 10, 0, 0],
                   top_p=[1.0, 0.9, 1.0, 1.0], seed=[7, 8, 9, 10])
    together, out = _run(generate, PROMPTS, **options)
    assert out["output_ids"].shape == (4, 3, 9)
    for i, prompt in enumerate(PROMPTS):
        alone, _ = _run(generate, [prompt], **{k: [v[i]] for k, v in options.items()})
        returned = options["num_return_sequences"][i]
        assert together[i][:returned] == alone[0], prompt
        assert together[i][returned:] == [[]] * (3 - returned)
    assert len({tuple(s) for s in together[1]}) > 1, "three samples of one prompt should not all be equal"
    again, _ = _run(generate, PROMPTS, **options)
    assert again == together
    other, _ = _run(generate, PROMPTS, **dict(options, seed=[7, 80, 9, 100]))
    assert other[1] != together[1] or other[3] != together[3]


@pytest.mark.parametrize("change, message", [
    (dict(max_new_tokens=[40, 1, 1, 1]), "max_new_tokens must be between 1 and the context minus the prompt"),
    (dict(max_new_tokens=[0, 1, 1, 1]), "max_new_tokens must be between 1"),
    (dict(prompt_length=[9, 2, 8, 1]), "prompt_length must be between 1 and the width"),
    (dict(strategy=[3, 0, 0, 0]), "strategy must be 0 (greedy), 1 (sample) or 2 (beam)"),
    (dict(strategy=[1, 0, 0, 0], temperature=[0.0, 1, 1, 1]), "temperature must be > 0"),
    (dict(num_return_sequences=[2, 1, 1, 1]), "greedy search returns one sequence"),
    (dict(strategy=[2, 0, 0, 0], num_beams=[2, 1, 1, 1], num_return_sequences=[3, 1, 1, 1]), "must be <= num_beams"),
    (dict(num_beams=[17, 1, 1, 1]), "num_beams must be between 1 and 16"),
    (dict(top_p=[0.0, 1, 1, 1]), "top_p must be in (0, 1]"),
    (dict(seed=[1, 2]), "seed must have one value per row"),
])
def test_bad_arguments_fail_in_the_graph(model, change, message):
    import tensorflow as tf

    from tfxformers.models.lm.generate import request_inputs

    _, generate = model
    inputs = request_inputs(PROMPTS, PAD, max_new_tokens=2)
    inputs.update(change)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        generate(**{k: tf.constant(v, tf.float32 if k in ("temperature", "top_p", "length_penalty") else tf.int32)
                    for k, v in inputs.items()})
