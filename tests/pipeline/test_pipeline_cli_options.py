"""`pipeline run` / `pipeline compile` refuse an option the chosen task would ignore (issue 23's audit).

`pipeline run --task lm --distribute multi-worker` ran (the contract says it is refused) and `--data` /
`--mode` were silently ignored with `--task lm`. Each option given on the command line that the task does not
read is now one `error:` line naming the option and the task, exit 2, before anything is imported or written;
options left at their defaults never trigger it. Pure argparse: no TFX, no TensorFlow, milliseconds each.
"""
from __future__ import annotations

import pytest

from tfxformers.cli import main


def _run(argv, tmp_path, capsys):
    argv = [*argv, "--pipeline-root", str(tmp_path / "root"), "--model-base", str(tmp_path / "models")]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("task, extra, option", [
    ("lm", ["--distribute", "multi-worker"], "--distribute"),
    ("lm", ["--distribute", "mirrored"], "--distribute"),
    ("lm", ["--data", "rotten_tomatoes"], "--data"),
    ("lm", ["--mode", "finetune"], "--mode"),
    ("lm", ["--mode", "partial"], "--mode"),  # the default value, but given: still ignored, so refused
    ("lm", ["--encoder", "minilm"], "--encoder"),
    ("lm", ["--max-seq-len", "128"], "--max-seq-len"),
    ("qa", ["--distribute", "multi-worker"], "--distribute"),
    ("qa", ["--mode", "frozen"], "--mode"),
    ("qa", ["--text-column", "review"], "--text-column"),
    ("qa", ["--max-length", "64"], "--max-length"),
    ("qa", ["--min-accuracy", "0.5"], "--min-accuracy"),
    ("qa", ["--corpus", "emma"], "--corpus"),
    ("qa", ["--lowercase"], "--lowercase"),
    ("sentiment", ["--corpus", "emma"], "--corpus"),
    ("sentiment", ["--preset", "tiny"], "--preset"),
    ("sentiment", ["--seed", "7"], "--seed"),
    ("classification", ["--doc-stride", "64"], "--doc-stride"),
    ("sentiment", ["--eval-data", "squad-dev"], "--eval-data"),
])
def test_an_option_the_task_ignores_is_one_error_line_naming_both(task, extra, option, tmp_path, capsys):
    code, err = _run(["pipeline", "run", "--task", task, *extra], tmp_path, capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {option} does not apply to --task {task}"), err
    assert not (tmp_path / "root").exists() and not (tmp_path / "models").exists()


def test_every_option_a_task_ignores_is_named_at_once(tmp_path, capsys):
    code, err = _run(["pipeline", "run", "--task", "lm", "--mode", "finetune", "--data", "x.csv"], tmp_path, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --data, --mode do not apply to --task lm"), err


def test_compile_refuses_the_lm_and_qa_options_for_a_classifier(tmp_path, capsys):
    try:
        code = main(["pipeline", "compile", "--task", "sentiment", "--corpus", "emma",
                     "--output", str(tmp_path / "p.json")])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --corpus does not apply to --task sentiment"), err
    assert not (tmp_path / "p.json").exists()


def test_defaults_and_the_options_a_task_reads_are_not_refused(tmp_path):
    """The check on the parsed arguments of full command lines (running them is the pipelines' own tests)."""
    from tfxformers.cli import build_parser
    from tfxformers.pipeline.pipeline_cli import check_task_options

    common = ["--pipeline-root", str(tmp_path / "root"), "--model-base", str(tmp_path / "models"), "--name", "n",
              "--epochs", "1", "--batch-size", "4", "--learning-rate", "0.001", "--beam-args=--x=1", "--no-cache"]
    for argv in (["--task", "lm", "--corpus", "emma", "--preset", "tiny", "--vocab-size", "300", "--block-size", "32",
                  "--lowercase", "--limit-chars", "1000", "--seed", "1"],
                 ["--task", "qa", "--data", "squad", "--encoder", "minilm", "--eval-data", "squad-dev",
                  "--limit-train", "10", "--eval-stride", "2", "--budget-cpu-minutes", "1", "--max-seq-len", "128",
                  "--doc-stride", "32", "--seed", "1"],
                 ["--task", "sentiment", "--data", "rotten_tomatoes", "--mode", "finetune", "--text-column", "text",
                  "--label-column", "label", "--trainable-layers", "2", "--encoder", "minilm", "--max-length", "64",
                  "--distribute", "mirrored", "--min-accuracy", "0.5", "--max-accuracy-drop", "0.1"]):
        check_task_options(build_parser().parse_args(["pipeline", "run", *argv, *common]))
    for task in ("lm", "qa", "sentiment", "classification"):  # every default: nothing given, nothing refused
        check_task_options(build_parser().parse_args(["pipeline", "run", "--task", task]))


def test_qa_doc_stride_beyond_what_windows_share_is_refused_and_a_default_lowered_with_a_note(tmp_path, capsys):
    from tfxformers.cli import build_parser
    from tfxformers.pipeline.qa.options import qa_options

    code, err = _run(["pipeline", "run", "--task", "qa", "--max-seq-len", "128", "--doc-stride", "70"], tmp_path, capsys)
    assert code == 2 and err == ["error: --doc-stride 70 is more than windows of 128 tokens can share: neighbours "
                                 "share at most half of a window's context, so it must lie between 0 and 62 (less "
                                 "for long questions)"], err
    options = qa_options(build_parser().parse_args(["pipeline", "run", "--task", "qa", "--max-seq-len", "128"]))
    assert options.doc_stride == 61
    assert capsys.readouterr().err.strip().splitlines() == [
        "note: --doc-stride not given: 61, not the default 128, which is more than windows of --max-seq-len 128 "
        "tokens can share (at most half their context)"]
    assert qa_options(build_parser().parse_args(["pipeline", "run", "--task", "qa"])).doc_stride == 128
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("extra, message", [
    (["--mode", "distill"], "--mode distill needs --teacher RUN_DIR"),
    (["--mode", "partial", "--teacher", "{TMP}"], "--teacher applies to --mode distill only"),
    (["--mode", "finetune", "--alpha", "0.3"], "--alpha applies to --mode distill only"),
    (["--mode", "distill", "--teacher", "{TMP}/absent"], "--teacher {TMP}/absent: model directory not found"),
    (["--mode", "distill", "--teacher", "{TMP}"], "is not a tfxformers model directory"),
    (["--mode", "distill", "--teacher", "{TMP}", "--student-layers", "1,1"], "argument --student-layers: names block 1 twice"),
    (["--mode", "distill", "--teacher", "{TMP}", "--temperature", "0"], "argument --temperature: must be a number > 0"),
    (["--task", "lm", "--teacher", "{TMP}"], "--teacher does not apply to --task lm"),
])
def test_pipeline_run_refuses_bad_distill_options_before_anything_runs(extra, message, tmp_path, capsys):
    extra = [a.format(TMP=tmp_path) for a in extra]
    code, err = _run(["pipeline", "run", *extra], tmp_path, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert message.format(TMP=tmp_path) in err[0]
    assert not (tmp_path / "root").exists() and not (tmp_path / "models").exists()


def test_the_distill_options_reach_the_trainers_train_config(tmp_path, monkeypatch):
    """pipeline run's options -> the Trainer's custom_config -> the ClassifierTrainConfig run_fn trains with."""
    from tfxformers.pipeline.classifier.runner import RunOptions, trainer_config
    from tfxformers.pipeline.classifier.training import trainer_train_config

    monkeypatch.chdir(tmp_path)
    options = RunOptions(mode="distill", teacher="teacher", unlabeled="texts.txt", alpha=0.7, student_layers=[0, 2, 4])
    custom = trainer_config(options, "minilm", "sentiment")
    assert custom["teacher"] == str(tmp_path / "teacher") and custom["unlabeled"] == str(tmp_path / "texts.txt")
    assert "temperature" not in custom  # not given: the library's default
    config = trainer_train_config(custom, "examples", tmp_path / "model")
    assert (config.mode, config.teacher, config.alpha, config.temperature, config.student_layers) == (
        "distill", str(tmp_path / "teacher"), 0.7, 2.0, [0, 2, 4])
    assert "teacher" not in trainer_config(RunOptions(mode="partial"), "minilm", "sentiment")
