"""``generate`` and ``train gpt2`` options (issue 23): an unbounded beam width and a second ``--prompt``
are refused in one line before any model is read; building the GPT-2 prints no tf-keras Lambda warning
unless logs are asked for.
"""
from __future__ import annotations

import logging

import pytest

from tfxformers.cli import main
from tfxformers.errors import UserError
from tfxformers.models.lm.generate import MAX_BEAMS
from tfxformers.models.lm.text_generation import check_generation


@pytest.mark.parametrize("extra, message", [
    (["--num-beams", "100000"], f"error: argument --num-beams: must be an integer between 1 and {MAX_BEAMS} "
                                "(got '100000')"),
    (["--prompt", "second"], "error: argument --prompt: given more than once; generate continues one prompt per call"),
])
def test_generate_refuses_in_one_line_before_reading_the_model(tmp_path, capsys, extra, message):
    # the model directory does not exist: the option is refused first
    with pytest.raises(SystemExit) as stopped:
        main(["generate", "--model", str(tmp_path / "none"), "--prompt", "Emma", "--strategy", "beam", *extra])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(message)


def test_the_beam_limit_holds_for_callers_of_generate_text_too():
    check_generation(max_new_tokens=4, strategy="beam", num_beams=MAX_BEAMS, temperature=1.0, top_k=0, top_p=1.0,
                     no_repeat_ngram_size=0)
    with pytest.raises(UserError, match=f"--num-beams must be between 1 and {MAX_BEAMS}"):
        check_generation(max_new_tokens=4, strategy="beam", num_beams=MAX_BEAMS + 1, temperature=1.0, top_k=0,
                         top_p=1.0, no_repeat_ngram_size=0)


def test_building_the_lm_prints_no_lambda_warning(capfd, caplog):
    from transformers import GPT2Config

    from tfxformers.models.lm.gpt2 import build_lm

    caplog.set_level(logging.WARNING)
    model = build_lm(GPT2Config(vocab_size=40, n_positions=16, n_embd=8, n_layer=1, n_head=2), compile=False)
    assert model.get_layer("lm_head") is not None  # still the tied head the warning was about
    assert "Lambda layer" not in capfd.readouterr().err + caplog.text
