"""The QA model: a BertForQuestionAnswering checkpoint loads without torch and computes what transformers'
own TF class computes; every encoder family gets a span head; save -> load gives the same logits; the
`train qa` run directory rules and resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfxformers.errors import UserError

DATA = Path(__file__).resolve().parents[2] / "data" / "qa_course.json"
CONTEXT = "Le café de Zoë ouvre à 8 h. Müller bakes a 🎂 cake at 175 °C for Ēmma, then sells it in 東京."


@pytest.fixture(scope="module")
def qa_checkpoint(tmp_path_factory):
    from tfxformers.models.qa import tiny

    return tiny.make_tiny_qa_checkpoint(tmp_path_factory.mktemp("qa_ck") / "ck", max_position_embeddings=128)


def _inputs():
    ids = np.array([[2, 40, 50, 3, 60, 61, 62, 63, 3, 0]], np.int32)
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32),
            "token_type_ids": np.array([[0, 0, 0, 0, 1, 1, 1, 1, 1, 0]], np.int32)}


def test_a_bert_for_question_answering_checkpoint_loads_without_torch_and_matches_transformers(qa_checkpoint):
    import safetensors.numpy
    from transformers import BertConfig, TFBertForQuestionAnswering
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    from tfxformers.models.qa import model

    assert model.is_qa_checkpoint(qa_checkpoint)
    ours, has_head = model.load_qa_checkpoint(qa_checkpoint)
    assert has_head
    reference = TFBertForQuestionAnswering(BertConfig.from_pretrained(str(qa_checkpoint)))
    reference(reference.dummy_inputs)
    _, info = load_pytorch_state_dict_in_tf2_model(
        reference, safetensors.numpy.load_file(str(qa_checkpoint / "model.safetensors")), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = _inputs()
    got, want = ours(inputs, training=False), reference(**inputs, training=False)
    np.testing.assert_allclose(got["start_logits"].numpy(), want.start_logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["end_logits"].numpy(), want.end_logits.numpy(), atol=1e-5)
    assert np.abs(got["start_logits"].numpy()).max() > 0  # the head's weights are there, not zeros


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra"])
def test_every_encoder_family_gets_a_span_head_with_exact_offsets(tmp_path, family):
    from tfxformers.models import encoders
    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.qa import inference, model
    from tfxformers.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / family, family, max_length=128)
    built, has_head = model.load_qa_checkpoint(checkpoint)
    assert not has_head
    assert ("token_type_ids" in built.input_names) == encoders.spec_for(checkpoint).uses_token_type_ids
    trained = TrainedModel(checkpoint, {"kind": "qa", "max_seq_len": 48, "doc_stride": 16, "input_names": list(built.input_names)},
                              built, encoders.load_tokenizer(checkpoint))
    result = inference.answer_question(trained, "who bakes?", CONTEXT, top_k=5, max_answer_len=8)
    assert result["windows"] >= 2 and len(result["answers"]) == 5
    for answer in result["answers"]:
        assert CONTEXT[answer["start"]:answer["end"]] == answer["answer"] and answer["answer"].strip() == answer["answer"]


def test_save_and_load_give_the_same_logits(qa_checkpoint, tmp_path):
    from tfxformers.models import encoders
    from tfxformers.models.artifacts import save_qa
    from tfxformers.models.qa import model

    built, _ = model.load_qa_checkpoint(qa_checkpoint)
    tokenizer = encoders.load_tokenizer(qa_checkpoint)
    save_qa(tmp_path / "run", built, tokenizer, max_seq_len=64, doc_stride=16, input_names=list(built.input_names))
    loaded = model.load_qa(tmp_path / "run")
    assert loaded.max_seq_len == 64 and loaded.doc_stride == 16
    for key in ("start_logits", "end_logits"):
        np.testing.assert_allclose(loaded.keras_model(_inputs())[key].numpy(), built(_inputs())[key].numpy(), atol=1e-6)
    # A damaged copy is named before TensorFlow reads it.
    weights = next((tmp_path / "run" / "weights").glob("model.data-*"))
    weights.write_bytes(weights.read_bytes()[:10])
    with pytest.raises(UserError, match="damaged or incomplete"):
        model.load_qa(tmp_path / "run")


def test_a_default_doc_stride_too_big_for_the_windows_is_lowered_with_a_note(tmp_path, capsys):
    from tfxformers.cli import main

    argv = ["train", "qa", "--data", str(DATA), "--output", str(tmp_path / "out"), "--max-seq-len", "64",
            "--encoder", "roberta-base"]  # refused once the data is read: what comes before it is what is checked
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("note: --doc-stride not given: 29, not the default 128, which is more than windows of "
                      "--max-seq-len 64 tokens can share (at most half their context)"), err
    assert len(err) == 2 and err[1].startswith("error: ") and "Hub" in err[1], err


def test_a_question_answering_checkpoint_without_its_head_is_refused_for_answering(qa_checkpoint, tmp_path, capsys):
    """config.json names BertForQuestionAnswering but model.safetensors lacks qa_outputs: answering (or
    exporting) with it would use a random span head, so `answer` and `export` refuse it naming the file;
    training may start from it, the head then new (issue 23's audit)."""
    import shutil

    import safetensors.numpy

    from tfxformers.cli import main
    from tfxformers.models.qa import model

    broken = tmp_path / "broken"
    shutil.copytree(qa_checkpoint, broken)
    state = safetensors.numpy.load_file(str(broken / "model.safetensors"))
    safetensors.numpy.save_file({k: v for k, v in state.items() if not k.startswith("qa_outputs.")},
                                str(broken / "model.safetensors"))
    for argv in (["answer", "--model", str(broken), "--question", "q?", "--context", "some text"],
                 ["export", "--model", str(broken), "--name", "qa", "--model-base", str(tmp_path / "models")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "no qa_outputs weights" in err[0], err
        assert str(broken / "model.safetensors") in err[0] and "train qa" in err[0], err
    assert not (tmp_path / "models").exists()
    problem = model.missing_head(broken)
    assert problem and "BertForQuestionAnswering" in problem and str(broken / "model.safetensors") in problem
    assert model.missing_head(qa_checkpoint) is None
    built, has_head = model.load_qa_checkpoint(broken)  # what training uses: a new head, said by a note
    assert not has_head and built.get_layer("qa_outputs") is not None


def test_train_qa_refuses_to_replace_a_finished_run_and_resumes_an_unfinished_one(qa_checkpoint, tmp_path):
    from tfxformers.models.qa.train import QATrainConfig, train_qa

    config = QATrainConfig(data=str(DATA), output=str(tmp_path / "run"), encoder=str(qa_checkpoint), epochs=1,
                           max_seq_len=96, doc_stride=32, verbose=0)
    scores = train_qa(config)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["total"] == scores["total"] > 0 and 0 <= metrics["exact_match"] <= 100 and "f1" in metrics
    assert (tmp_path / "run" / "history.csv").is_file() and any((tmp_path / "run" / "logs").rglob("events.*"))
    assert not (tmp_path / "run" / "checkpoints" / "backup").exists()
    with pytest.raises(UserError, match="already holds a trained qa run"):
        train_qa(config)
    # An unfinished run (its start-of-run config only, as a killed run leaves it) with the same settings resumes;
    # with other settings it is refused.
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    record = json.loads((tmp_path / "run" / "training_config.json").read_text())
    (unfinished / "training_config.json").write_text(json.dumps({**record, "output": str(unfinished)}))
    with pytest.raises(UserError, match="other settings"):
        train_qa(QATrainConfig(**{**config.__dict__, "output": str(unfinished), "epochs": 2}))
    assert train_qa(QATrainConfig(**{**config.__dict__, "output": str(unfinished)}))["total"] == scores["total"]


@pytest.mark.parametrize("argv, message", [
    (["train", "qa", "--data", "/nope.json", "--output", "OUT"], "--data"),
    (["train", "qa", "--data", "NOT_SQUAD", "--output", "OUT"], "not SQuAD format"),
    (["train", "qa", "--data", "DATA", "--output", "OUT", "--max-seq-len", "8"], "--max-seq-len"),
    (["train", "qa", "--data", "DATA", "--output", "OUT", "--encoder", "roberta-base"], "Hub"),
    # One passage: a validation split by passage would be the training questions (issue 23's audit).
    (["train", "qa", "--data", "ONE_PASSAGE", "--output", "OUT"], "pass --eval-data"),
    # A --doc-stride no window of 384 tokens can honour (issue 23's audit: clamped without a word).
    (["train", "qa", "--data", "DATA", "--output", "OUT", "--doc-stride", "4000"], "must lie between 0 and 190"),
    (["train", "qa", "--data", "DATA", "--output", "OUT", "--max-seq-len", "64", "--doc-stride", "31"],
     "must lie between 0 and 30"),
    (["answer", "--model", "MODEL", "--question", " ", "--context", "text"], "question is empty"),
    (["answer", "--model", "MODEL", "--question", "q?", "--context", "  "], "context is empty"),
    (["answer", "--model", "MODEL", "--question", "\u200b", "--context", "text"], "question is empty"),
    (["answer", "--model", "MODEL", "--question", "q?", "--context", "\x00\u200d"], "context is empty"),
    (["answer", "--model", "MODEL", "--question", "q?", "--context", "x", "--top-k", "-1"], "--top-k"),
    (["answer", "--model", "MODEL", "--question", "q?", "--context-file", "/nope.txt"], "--context-file"),
    (["answer", "--model", "/nope", "--question", "q?", "--context", "x"], "model directory not found"),
    (["answer", "--model", "DATA", "--question", "q?", "--context", "x"], "model directory"),
])
def test_cli_bad_input_is_one_error_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "not_squad.json").write_text(json.dumps({"rows": []}))
    (tmp_path / "model").mkdir()
    course = json.loads(DATA.read_text(encoding="utf-8"))
    one = {"version": "v2.0", "data": [{"title": "one", "paragraphs": course["data"][0]["paragraphs"][:1]}]}
    (tmp_path / "one_passage.json").write_text(json.dumps(one))
    names = {"OUT": str(tmp_path / "out"), "DATA": str(DATA), "NOT_SQUAD": str(tmp_path / "not_squad.json"),
             "MODEL": str(tmp_path / "model"), "ONE_PASSAGE": str(tmp_path / "one_passage.json")}
    argv = [names.get(a, a) for a in argv]
    from tfxformers.testing import cli_error_line

    assert message in cli_error_line(argv, capsys)
    assert not (tmp_path / "out").exists()
