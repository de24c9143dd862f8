"""Bad command lines for the serving-side commands (``export``, ``serve``, ``pipeline run|compile``,
``data fetch|list``), one table: each must end in exactly one ``error: ...`` line on stderr and exit code
2, before anything heavy loads (the table runs in-process in a few seconds; a case that reached TensorFlow
or TFX would take many). The training commands' table is ``tests/models/training/test_cli_bad_input.py``; the
proxy's flags are in ``proxy/test_proxy_units.py``.

Categories (first column): ``path`` (missing files, files where directories belong and the reverse),
``range`` (numbers out of range or not numbers), ``name`` (names that cannot be a directory or are
unknown), ``conflict`` (flags that exclude or need each other), ``content`` (files of the wrong kind or
with the wrong columns), ``exists`` (would overwrite an existing version).
"""
from __future__ import annotations

import pytest

from tfxformers.cli import main

EXPORT = ["export", "--name", "m"]
SERVE = ["serve", "--grpc-port", "0", "--rest-port", "0"]
PIPELINE = ["pipeline", "run", "--text-column", "review", "--label-column", "sentiment"]

# (category, argv with {ROOT} / {CSV} / {CKPT} placeholders, words the one error line must hold)
CASES = [
    # export
    ("path", EXPORT + ["--model", "{CKPT}", "--model-base", "{ROOT}/a_file"], "a_file is an existing file, not a directory"),
    ("path", EXPORT + ["--model", "{CKPT}", "--model-base", "{ROOT}/a_file/models"], "under {ROOT}/a_file, which is an existing file"),
    ("path", EXPORT + ["--model", "{ROOT}/nothing", "--model-base", "{ROOT}/m"], "model directory not found"),
    ("path", EXPORT + ["--model", "{ROOT}/a_file", "--model-base", "{ROOT}/m"], "is a file, not a model directory"),
    ("path", EXPORT + ["--model", "{ROOT}/empty_dir", "--model-base", "{ROOT}/m"], "not a tfxformers model directory"),
    ("name", ["export", "--model", "{CKPT}", "--name", "a/b", "--model-base", "{ROOT}/m"], "--name 'a/b' must be letters"),
    ("name", ["export", "--model", "{CKPT}", "--name", "", "--model-base", "{ROOT}/m"], "--name '' must be letters"),
    ("range", EXPORT + ["--model", "{CKPT}", "--version", "0"], "argument --version: must be an integer >= 1"),
    ("range", EXPORT + ["--model", "{CKPT}", "--version", "v2"], "argument --version: must be an integer"),
    ("exists", EXPORT + ["--model", "{CKPT}", "--model-base", "{ROOT}/base", "--version", "1"],
     "base/m/1 already exists; versions are immutable"),
    ("conflict", ["export", "--model", "{CKPT}"], "the following arguments are required: --name"),
    # serve
    ("path", SERVE + ["--model-base", "{ROOT}/nothing"], "--model-base {ROOT}/nothing is not a directory"),
    ("path", SERVE + ["--model-base", "{ROOT}/a_file"], "--model-base {ROOT}/a_file is not a directory"),
    ("path", SERVE + ["--model-config-file", "{ROOT}/nothing.config"], "--model-config-file {ROOT}/nothing.config does not exist"),
    ("path", SERVE + ["--model-base", "{ROOT}/base", "--enable-batching", "--batching-parameters-file", "{ROOT}/no.txt"],
     "--batching-parameters-file {ROOT}/no.txt does not exist"),
    ("path", SERVE + ["--model-base", "{ROOT}/base", "--monitoring-config-file", "{ROOT}/no.txt"],
     "--monitoring-config-file {ROOT}/no.txt does not exist"),
    ("content", SERVE + ["--model-config-file", "{ROOT}/a_file"], "is not a ModelServerConfig text proto"),
    ("range", ["serve", "--model-base", "{ROOT}/base", "--grpc-port", "99999"], "--grpc-port 99999 is not a TCP port"),
    ("range", ["serve", "--model-base", "{ROOT}/base", "--rest-port", "-1"], "--rest-port -1 is not a TCP port"),
    ("range", ["serve", "--model-base", "{ROOT}/base", "--grpc-port", "http"], "argument --grpc-port"),
    ("range", SERVE + ["--model-base", "{ROOT}/base", "--file-system-poll-wait-seconds", "-1"],
     "--file-system-poll-wait-seconds must be >= 0"),
    ("range", SERVE + ["--model-base", "{ROOT}/base", "--tensorflow-intra-op-parallelism", "-2"], "must be >= 0"),
    ("conflict", ["serve"], "one of the arguments --model-base --model-config-file is required"),
    ("conflict", SERVE + ["--model-base", "{ROOT}/base", "--model-config-file", "{ROOT}/a_file"], "not allowed with"),
    ("conflict", SERVE + ["--model-base", "{ROOT}/base", "--batching-parameters-file", "{ROOT}/a_file"],
     "--batching-parameters-file needs --enable-batching"),
    # pipeline run / compile
    ("path", PIPELINE + ["--data", "{ROOT}/nothing.csv"], "data file not found"),
    ("path", PIPELINE + ["--data", "{ROOT}/empty_dir"], "is a directory; classification data is one CSV or JSONL file"),
    ("path", PIPELINE + ["--data", "{CSV}", "--pipeline-root", "{ROOT}/a_file"], "--pipeline-root: {ROOT}/a_file is an existing file"),
    ("path", PIPELINE + ["--data", "{CSV}", "--model-base", "{ROOT}/a_file/x"], "--model-base: {ROOT}/a_file/x is under"),
    ("path", PIPELINE + ["--data", "{CSV}", "--encoder", "{ROOT}/nothing"], "neither 'minilm', 'mpnet' nor a checkpoint directory"),
    ("path", ["pipeline", "compile", "--output", "{ROOT}/a_file/spec.json"], "--output: {ROOT}/a_file is an existing file"),
    ("path", ["pipeline", "compile", "--output", "{ROOT}/empty_dir"], "--output: {ROOT}/empty_dir is a directory"),
    ("content", ["pipeline", "run", "--data", "{CSV}"], "has no column 'text'"),
    ("content", PIPELINE + ["--data", "{ROOT}/two_rows.csv"], "too few rows"),
    ("range", PIPELINE + ["--data", "{CSV}", "--learning-rate", "0"], "argument --learning-rate: must be a number > 0"),
    ("range", PIPELINE + ["--data", "{CSV}", "--learning-rate", "nan"], "argument --learning-rate: must be a finite number"),
    ("range", PIPELINE + ["--data", "{CSV}", "--batch-size", "x"], "argument --batch-size"),
    ("name", PIPELINE + ["--data", "{CSV}", "--task", "translation"], "unknown task 'translation'"),
    ("name", PIPELINE + ["--data", "{CSV}", "--distribute", "tpu"], "argument --distribute: invalid choice"),
    # data
    ("name", ["data", "fetch", "nosuchsource"], "unknown data source 'nosuchsource'"),
    ("path", ["data", "fetch", "--home", "{ROOT}/a_file", "minilm"], "--home: {ROOT}/a_file is an existing file"),
    ("path", ["data", "list", "--home", "{ROOT}/a_file"], "--home: {ROOT}/a_file is an existing file"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_bad_input")
    (root / "a_file").write_text("not a directory, not a config\n")
    (root / "empty_dir").mkdir()
    (root / "two_rows.csv").write_text("review,sentiment\ngood,pos\nbad,neg\n")
    (root / "base" / "m" / "1").mkdir(parents=True)  # an existing version: export must not touch it
    # Every export case fails before the model is read, so a directory that looks like a checkpoint will do
    # (a real one would cost a TensorFlow import; a case that reached it would show up as slow).
    (root / "ckpt").mkdir()
    (root / "ckpt" / "config.json").write_text("{}")
    return root


def _fill(arg: str, root, csv) -> str:
    return arg.replace("{ROOT}", str(root)).replace("{CSV}", str(csv)).replace("{CKPT}", str(root / "ckpt"))


@pytest.mark.parametrize("category,argv,needle", CASES, ids=[f"{c[0]}-{' '.join(c[1][:2])}-{i}" for i, c in enumerate(CASES)])
def test_one_error_line_and_exit_2(root, tiny_reviews_csv, monkeypatch, capsys, category, argv, needle):
    monkeypatch.chdir(root)  # defaults such as serving_models/ or pipelines/ land in the temporary directory
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    try:
        code = main([_fill(a, root, tiny_reviews_csv) for a in argv])
    except SystemExit as exc:  # argparse's own checks exit from inside parse_args
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert _fill(needle, root, tiny_reviews_csv) in lines[0]
    assert "Traceback" not in captured.err + captured.out
    # Refused before doing anything: nothing was written (pipeline roots, model bases, versions).
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_export_of_a_damaged_checkpoint_names_the_file(tmp_path, tiny_bert_dir, capsys):
    """The one case here that reaches a model file (it has to open it to find it damaged)."""
    import shutil

    checkpoint = shutil.copytree(tiny_bert_dir, tmp_path / "ckpt")
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    code = main(["export", "--model", str(checkpoint), "--name", "e", "--model-base", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {weights} is damaged"), err
    assert not (tmp_path / "models" / "e").exists()
