"""Run directories (``models.run_dirs``) and ``predict --file`` / windows, through the real CLI and models.

- ``--overwrite`` trains beside the old run and swaps only on success: a failing run leaves the old
  model whole and loadable, a succeeding one replaces it and leaves no temporary directory.
- a run that fails before its first checkpoint leaves no half-run behind.
- ``predict`` reads ``--file`` and stdin, and scores long texts in windows combined as the proxy does.
"""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from tfxformers.cli import main
from tfxformers.errors import UserError
from tfxformers.models import run_dirs


def _fake_run(directory, kind="classifier", **config):
    directory.mkdir(parents=True)
    (directory / "training_config.json").write_text(json.dumps(config))
    (directory / "tfxformers.json").write_text(json.dumps({"kind": kind, **config}))
    (directory / "weights").mkdir()
    (directory / "weights" / "model.index").write_text("old")
    return directory


def test_replace_keeps_the_old_run_until_the_new_one_succeeded(tmp_path):
    old = _fake_run(tmp_path / "run", data="a.csv")
    with pytest.raises(UserError, match="already holds a trained classifier run"):
        with run_dirs.claim(old, "classifier", {"data": "a.csv"}):
            pass
    with pytest.raises(RuntimeError):
        with run_dirs.claim(old, "classifier", {"data": "b.csv"}, overwrite=True) as new:
            assert new != old and new.parent == old.parent and new.name.startswith(".run.new-")
            (new / "partial").write_text("half")
            raise RuntimeError("training failed")
    assert (old / "weights" / "model.index").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the temporary directory is gone
    with run_dirs.claim(old, "gpt2", {"corpus": "emma"}, overwrite=True) as new:
        (new / "tfxformers.json").write_text(json.dumps({"kind": "gpt2"}))
        assert (old / "weights").exists()  # nothing deleted while the new run trains
    assert json.loads((old / "tfxformers.json").read_text()) == {"kind": "gpt2"}
    assert not (old / "weights").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # old copy removed after the swap


def test_an_unfinished_run_with_the_same_settings_resumes_in_place(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "training_config.json").write_text(json.dumps({"data": "a.csv", "epochs": 3, "verbose": 0}))
    (run / "checkpoints" / "backup").mkdir(parents=True)
    # verbose never matters; None means "the default" (a setting the run filled in itself)
    with run_dirs.claim(run, "classifier", {"data": "a.csv", "epochs": 3, "verbose": 2, "learning_rate": None}) as d:
        assert d == run
    assert (run / "checkpoints" / "backup").is_dir()
    with pytest.raises(UserError, match=r"unfinished classifier run \(data a.csv.*other settings \(epochs: 3 -> 4\)"):
        with run_dirs.claim(run, "classifier", {"data": "a.csv", "epochs": 4}):
            pass
    with pytest.raises(UserError, match=r"other settings \(limit_train: 100 -> None\)"):  # None = all the data
        (run / "training_config.json").write_text(json.dumps({"data": "a.csv", "epochs": 3, "limit_train": 100}))
        with run_dirs.claim(run, "classifier", {"data": "a.csv", "epochs": 3, "limit_train": None}):
            pass


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing(tmp_path):
    for target in (tmp_path / "new", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        with pytest.raises(UserError):
            with run_dirs.claim(target, "gpt2", {"corpus": "x"}) as d:
                (d / "training_config.json").write_text("{}")
                raise UserError("bad corpus")
        assert (target.exists() and not any(target.iterdir())) if target.name == "empty" else not target.exists()


def test_overwrite_through_the_cli_keeps_the_old_model_when_the_new_run_fails(trained_dir, tiny_bert_dir,
                                                                               tiny_reviews_csv, tmp_path, capsys):
    from tfxformers.models import artifacts

    run = tmp_path / "clf"
    shutil.copytree(trained_dir, run)
    before = (run / "tfxformers.json").read_text()
    base = ["train", "classifier", "--encoder", str(tiny_bert_dir), "--output", str(run), "--max-length", "32",
            "--epochs", "1", "--batch-size", "16", "--overwrite"]
    # fails inside the run (the file has no such column): the old model must be untouched
    assert main(base + ["--data", str(tiny_reviews_csv), "--text-column", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert (run / "tfxformers.json").read_text() == before
    assert artifacts.load_trained(run).label_names == ["neg", "pos"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]
    # succeeds: replaced in place, the record says the new settings, no temporary directory left
    assert main(base + ["--data", str(tiny_reviews_csv), "--text-column", "review", "--label-column", "sentiment",
                        "--mode", "frozen", "--learning-rate", "1e-2"]) == 0
    assert json.loads((run / "tfxformers.json").read_text())["mode"] == "frozen"
    assert json.loads((run / "training_config.json").read_text())["output"] == str(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]
    assert artifacts.load_trained(run).info["mode"] == "frozen"


def test_predict_reads_a_file_and_stdin(trained_dir, tmp_path, capsys, monkeypatch):
    texts = tmp_path / "texts.txt"
    texts.write_text("brilliant wonderful best fun\n\nawful boring worst mess\n")
    assert main(["predict", "--model", str(trained_dir), "--json", "first", "--file", str(texts)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in results] == ["first", "brilliant wonderful best fun", "awful boring worst mess"]
    monkeypatch.setattr("sys.stdin", io.StringIO("good film\nbad film\n"))
    assert main(["predict", "--model", str(trained_dir), "--json", "--file", "-"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["text"] for r in results] == ["good film", "bad film"]
    assert all(r["windows"] == 1 for r in results)


def test_predict_lowers_the_default_overlap_to_half_a_window_and_says_so(trained_dir, capsys):
    from tfxformers.models import windows

    long_text = " ".join(["brilliant wonderful film"] * 8 + ["awful boring mess"] * 12)
    assert main(["predict", "--model", str(trained_dir), "--json", long_text, "a short one"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == ["note: --window-overlap not given: 15, not the default 32, which is "
                                                 "more than windows of this model's 32 tokens can share"]
    long, short = json.loads(captured.out)
    assert long["windows"] == len(windows.window_starts(long["tokens"] - 2, 30, 15)) > 1 and short["windows"] == 1


def test_long_texts_are_scored_in_windows_as_the_proxy_does(trained_dir):
    """A text over the model's 32 tokens: the token-weighted mean of its windows' probabilities, computed
    here by hand from the same model, with the proxy's window plan."""
    from tfxformers.models import artifacts, windows
    from tfxformers.models.classification.trained import predict_texts
    from tfxformers.models.tokenization import logits_for_ids
    from tfxformers.serving.proxy import text as proxy_text

    assert proxy_text.window_starts is windows.window_starts and proxy_text.combine is windows.combine
    long_text = " ".join(["brilliant wonderful film"] * 8 + ["awful boring mess"] * 12)
    [result] = predict_texts(trained_dir, [long_text], window_overlap=8)
    trained = artifacts.load_trained(trained_dir)
    tok = trained.tokenizer
    body = tok(long_text, add_special_tokens=False)["input_ids"]
    starts = windows.window_starts(len(body), 30, 8)
    assert result["windows"] == len(starts) > 1 and result["tokens"] == len(body) + 2
    rows = [[tok.cls_token_id, *body[s:s + 30], tok.sep_token_id] for s in starts]
    logits = logits_for_ids(trained.keras_model, rows, tok.pad_token_id, max_length=32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    weights = np.array([len(body[s:s + 30]) for s in starts], dtype=np.float64)
    expected = (probs * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose([result["probabilities"][n] for n in trained.label_names], expected, atol=1e-5)
    # the old behaviour (cut at 32 tokens) scores only the first window: windowing changes the answer
    cut = probs[0]
    assert not np.allclose(cut, expected, atol=1e-4)
