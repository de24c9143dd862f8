"""Bad input to the training and inference commands: one ``error: ...`` line, exit code 2, no traceback.

Each case of ``CASES`` runs ``tfxformers.cli.main`` in-process on a tiny classifier run and a tiny GPT-2
run (or broken copies of them) and checks the exit code, the message and that no traceback was
printed. Categories: range (numeric options), path (files and directories of the wrong kind), corrupt
(half-written or damaged run directories), overwrite (runs never replaced silently), generation (limits
against the model's context).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfxformers.cli import main


@pytest.fixture(scope="module")
def gpt2_run(tmp_path_factory):
    """A tiny GPT-2 run (context 64 tokens) trained on a small text file."""
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, train_gpt2

    root = tmp_path_factory.mktemp("gpt2")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley." for i in range(60)))
    out = root / "run"
    train_gpt2(Gpt2TrainConfig(corpus=str(corpus), output=str(out), preset="tiny", vocab_size=300, block_size=16,
                               epochs=1, batch_size=8, verbose=0))
    return out


@pytest.fixture(scope="module")
def place(tmp_path_factory, trained_dir, gpt2_run, tiny_reviews_csv, tiny_bert_dir):
    """``{NAME}`` values for the case table: the runs, broken copies of them, stray files."""
    root = tmp_path_factory.mktemp("bad")

    def copy(source, name, damage):
        target = root / name
        shutil.copytree(source, target)
        damage(target)
        return str(target)

    def truncate(path, size=100):
        with open(path, "r+b") as f:
            f.truncate(size)

    def edit_info(target, change):
        info = json.loads((target / "tfxformers.json").read_text())
        change(info)
        (target / "tfxformers.json").write_text(json.dumps(info))

    data = next(trained_dir.glob("weights/model.data-*")).name
    (root / "file.txt").write_text("not a directory\n")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("mine\n")
    (root / "empty.txt").write_text("\n  \n")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    values = {
        "CLF": str(trained_dir), "GPT": str(gpt2_run), "BERT": str(tiny_bert_dir), "CSV": str(tiny_reviews_csv), "ROOT": str(root),
        "FILE": str(root / "file.txt"), "NOTES": str(root / "notes"), "EMPTYFILE": str(root / "empty.txt"),
        "BINARY": str(root / "binary.txt"),
        "CORPUS": str(gpt2_run.parent / "corpus.txt"),
        "NO_DATA": copy(trained_dir, "no_data", lambda t: (t / "weights" / data).unlink()),
        "TRUNCATED": copy(trained_dir, "truncated", lambda t: truncate(t / "weights" / data)),
        # A run saved before file sizes were recorded: the damage is found when TensorFlow reads it.
        "TRUNCATED_OLD": copy(trained_dir, "truncated_old", lambda t: (
            truncate(t / "weights" / data, 4000), edit_info(t, lambda i: i.pop("files")))),
        "BAD_JSON": copy(trained_dir, "bad_json", lambda t: (t / "tfxformers.json").write_text('{"kind": "classi')),
        "NO_KIND": copy(trained_dir, "no_kind", lambda t: edit_info(t, lambda i: i.pop("kind"))),
        "UNFINISHED": copy(trained_dir, "unfinished", lambda t: (
            (t / "tfxformers.json").unlink(), (t / "checkpoints" / "backup").mkdir(parents=True))),
        "NO_TOKENIZER": copy(trained_dir, "no_tokenizer", lambda t: (t / "tokenizer" / "tokenizer.json").unlink()),
        "GPT_TRUNCATED": copy(gpt2_run, "gpt_truncated", lambda t: truncate(t / "model" / "tf_model.h5")),
        "GPT_BAD_CONFIG": copy(gpt2_run, "gpt_bad_config", lambda t: (t / "model" / "config.json").write_text("{")),
        "GPT_NO_H5": copy(gpt2_run, "gpt_no_h5", lambda t: (t / "model" / "tf_model.h5").unlink()),
        "CLF_AND_DATA": copy(trained_dir, "clf_and_data", lambda t: shutil.copy(tiny_reviews_csv, t / "train.csv")),
    }
    return values


TRAIN_CLF = ["train", "classifier", "--data", "{CSV}", "--text-column", "review", "--label-column", "sentiment",
             "--encoder", "{ROOT}/no-encoder-needed"]
TRAIN_GPT = ["train", "gpt2", "--corpus", "{CORPUS}", "--preset", "tiny", "--vocab-size", "300", "--block-size", "16"]
GEN = ["generate", "--model", "{GPT}", "--prompt", "Emma walked"]
LONG_PROMPT = " ".join(["Emma walked to Highbury"] * 20)

# (category, argv, what the one error line must contain)
CASES = [
    # range: every numeric option checked by argparse (tfxformers.cli_types) before anything loads
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--limit-train", "0"], "argument --limit-train: must be an integer >= 1"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--limit-eval", "0"], "argument --limit-eval: must be an integer >= 1"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--dropout", "1.5"], "argument --dropout: must be in [0, 1)"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--dropout", "1"], "argument --dropout: must be in [0, 1)"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--epochs", "0"], "argument --epochs: must be an integer >= 1"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--learning-rate", "0"], "argument --learning-rate: must be a number > 0"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--learning-rate", "inf"], "must be a finite number"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--max-length", "4"], "argument --max-length: must be an integer between 8 and 512"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--patience", "-1"], "argument --patience: must be an integer >= 0"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--trainable-layers", "0"], "argument --trainable-layers: must be an integer >= 1"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--checkpoint-every-steps", "-5"], "must be an integer >= 0"),
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--seed", str(2**40)], "argument --seed: must be an integer between 0 and 4294967295"),
    # the tiny encoder has 128 positions: found from its config.json, before TensorFlow builds anything
    ("range", TRAIN_CLF + ["--output", "{ROOT}/o", "--encoder", "{BERT}", "--max-length", "256"],
     "--max-length 256 is more than the encoder's 128 positions"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--block-size", "0"], "argument --block-size: must be an integer between 8 and 2048"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--block-size", "100000"], "argument --block-size: must be an integer between 8 and 2048"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--epochs", "two"], "argument --epochs: must be an integer (got 'two')"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--vocab-size", "100"], "argument --vocab-size: must be an integer >= 261"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--learning-rate", "nan"], "argument --learning-rate: must be a finite number"),
    ("range", TRAIN_GPT + ["--output", "{ROOT}/g", "--limit-chars", "0"], "argument --limit-chars: must be an integer >= 1"),
    ("range", GEN + ["--num-beams", "0", "--strategy", "beam"], "argument --num-beams: must be an integer between 1 and 16"),
    ("range", GEN + ["--max-new-tokens", "0"], "argument --max-new-tokens: must be an integer >= 1"),
    ("range", GEN + ["--top-p", "0"], "argument --top-p: must be in (0, 1]"),
    ("range", GEN + ["--top-p", "1.5"], "argument --top-p: must be in (0, 1]"),
    ("range", GEN + ["--top-k", "-1"], "argument --top-k: must be an integer >= 0"),
    ("range", GEN + ["--seed", "-1"], "argument --seed: must be an integer between 0 and 4294967295"),
    ("range", GEN + ["--temperature", "-1"], "argument --temperature: must be a number >= 0"),
    # checked by the library before the model is read: the model path does not even exist here
    ("range", ["generate", "--model", "{ROOT}/absent", "--prompt", "x", "--strategy", "sample", "--temperature", "0"],
     "--temperature must be > 0 with --strategy sample"),
    ("range", ["evaluate", "--model", "{CLF}", "--limit", "0"], "argument --limit: must be an integer >= 1"),
    ("range", ["predict", "--model", "{CLF}", "--window-overlap", "-1", "x"], "argument --window-overlap: must be an integer >= 0"),
    # path: files and directories of the wrong kind
    ("path", TRAIN_CLF + ["--output", "{FILE}"], "argument --output: {FILE} is an existing file, not a directory"),
    ("path", TRAIN_GPT + ["--output", "{FILE}/run"], "which is an existing file, not a directory"),
    ("path", TRAIN_CLF + ["--output", "{NOTES}"], "is not empty and holds no tfxformers run (todo.txt)"),
    ("path", TRAIN_CLF + ["--output", "{NOTES}", "--overwrite"], "is not empty and holds no tfxformers run"),
    ("path", ["evaluate", "--model", "{FILE}"], "is a file, not a model directory"),
    ("path", ["evaluate", "--model", "{ROOT}"], "is not a tfxformers model directory (no tfxformers.json)"),
    ("path", ["predict", "--model", "{ROOT}/absent", "x"], "model directory not found"),
    ("path", ["predict", "--model", "{GPT}", "x"], "holds a gpt2 model; use `tfxformers generate`"),
    ("path", ["evaluate", "--model", "{GPT}"], "holds a gpt2 model; evaluate works on classifiers"),
    ("path", ["generate", "--model", "{CLF}", "--prompt", "x"], "holds a classifier model; generate works on GPT-2"),
    ("path", ["predict", "--model", "{CLF}", "--file", "{ROOT}/absent.txt"], "--file {ROOT}/absent.txt: file not found"),
    ("path", ["predict", "--model", "{CLF}", "--file", "{NOTES}"], "is a directory, not a file"),
    ("path", ["predict", "--model", "{CLF}", "--file", "{BINARY}"], "is not UTF-8 text"),
    ("path", ["predict", "--model", "{CLF}", "--file", "{EMPTYFILE}"], "holds no text"),
    ("path", ["predict", "--model", "{CLF}"], "give at least one non-empty text"),
    # Texts with nothing to read (the rule of models.texts, which the proxy applies too; issue 23's audit).
    ("path", ["predict", "--model", "{CLF}", "fine", "\u200b\u200d"], "text 2 has no visible character"),
    ("path", ["predict", "--model", "{CLF}", "\x00"], "text 1 has no visible character"),
    # An overlap no window of the model's 32 tokens can honour (issue 23's audit: clamped without a word).
    ("path", ["predict", "--model", "{CLF}", "--window-overlap", "4000", "x"],
     "--window-overlap 4000 is more than windows of this model's 32 tokens can share: neighbours share at most half "
     "a window, so it must lie between 0 and 15"),
    # corrupt: half-written or damaged run directories, named before TensorFlow reads them
    ("corrupt", ["evaluate", "--model", "{NO_DATA}"], "is incomplete: weights/model.data-00000-of-00001 is missing"),
    ("corrupt", ["evaluate", "--model", "{TRUNCATED}"], "is damaged: weights/model.data-00000-of-00001 is 100 bytes, saved as"),
    ("corrupt", ["predict", "--model", "{TRUNCATED_OLD}", "x"], "the weights in weights/ are damaged"),
    ("corrupt", ["export", "--model", "{NO_DATA}", "--name", "x", "--model-base", "{ROOT}/served"],
     "is incomplete: weights/model.data-00000-of-00001 is missing"),
    ("corrupt", ["evaluate", "--model", "{BAD_JSON}"], "tfxformers.json is corrupt (not JSON"),
    ("corrupt", ["evaluate", "--model", "{NO_KIND}"], "tfxformers.json is corrupt (no 'kind')"),
    ("corrupt", ["evaluate", "--model", "{UNFINISHED}"], "no tfxformers.json; its training never finished"),
    ("corrupt", ["predict", "--model", "{NO_TOKENIZER}", "x"], "is incomplete: tokenizer/tokenizer.json is missing"),
    ("corrupt", GEN[:2] + ["{GPT_TRUNCATED}"] + GEN[3:], "is damaged: model/tf_model.h5 is 100 bytes, saved as"),
    ("corrupt", GEN[:2] + ["{GPT_NO_H5}"] + GEN[3:], "is incomplete: model/tf_model.h5 is missing"),
    ("corrupt", GEN[:2] + ["{GPT_BAD_CONFIG}"] + GEN[3:], "model/config.json is"),
    # overwrite: an existing run is only replaced with --overwrite
    ("overwrite", TRAIN_CLF + ["--output", "{GPT}"], "holds a trained gpt2 run (corpus {CORPUS}), not a classifier run; pass --overwrite"),
    ("overwrite", TRAIN_GPT + ["--output", "{CLF}"], "holds a trained classifier run (data {CSV}, columns review/sentiment), not a gpt2 run"),
    ("overwrite", TRAIN_CLF + ["--output", "{CLF}", "--max-length", "32"], "already holds a trained classifier run"),
    ("overwrite", ["train", "classifier", "--data", "{ROOT}/other.csv", "--output", "{CLF}"],
     "other data than asked (data: '{CSV}' -> '{ROOT}/other.csv'"),
    ("overwrite", TRAIN_GPT + ["--output", "{GPT}", "--lowercase"], "other data than asked (lowercase: False -> True)"),
    ("overwrite", TRAIN_CLF + ["--output", "{UNFINISHED}", "--epochs", "7"],
     "holds an unfinished classifier run (data {CSV}, columns review/sentiment) with other settings"),
    ("overwrite", TRAIN_CLF + ["--output", "{CLF_AND_DATA}", "--overwrite"],
     "also holds files no training run writes (train.csv); --overwrite would delete them"),
    # generation: prompt + new tokens against the model's context (64 positions), before TensorFlow runs
    ("generation", GEN + ["--max-new-tokens", "200"], "--max-new-tokens is 200, but this model's context is 64 tokens; ask for at most"),
    ("generation", ["generate", "--model", "{GPT}", "--prompt", LONG_PROMPT, "--max-new-tokens", "10"],
     "but this model's context is 64 tokens; shorten the prompt"),
    ("generation", GEN + ["--max-new-tokens", "63"], "--max-new-tokens is 63, but this model's context is 64 tokens"),
    ("generation", ["generate", "--model", "{GPT}", "--prompt", "   "], "give a non-empty --prompt"),
    ("generation", ["generate", "--model", "{GPT}", "--prompt", "\ufeff\u2060"], "give a non-empty --prompt"),
]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own checks exit from inside parse_args
        return exc.code


@pytest.mark.parametrize("category, argv, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_error_line_and_exit_2(category, argv, message, place, capsys):
    argv = [a.format(**place) for a in argv]
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message.format(**place) in lines[0]


def test_the_case_table_covers_every_category():
    counts = {}
    for category, _, _ in CASES:
        counts[category] = counts.get(category, 0) + 1
    assert set(counts) == {"range", "path", "corrupt", "overwrite", "generation"} and min(counts.values()) >= 2


@pytest.mark.parametrize("argv", [
    ["generate", "--model", "{GPT}", "--prompt", "Emma", "--max-new-tokens", "200"],
    ["evaluate", "--model", "{TRUNCATED}"],
    TRAIN_CLF + ["--output", "{GPT}"],
])
def test_cheap_checks_answer_before_tensorflow_is_imported(argv, place):
    """The checks that need a model directory read JSON and the tokenizer only: TensorFlow never loads."""
    argv = [a.format(**place) for a in argv]
    code = ("import sys; from tfxformers.cli import main; code = main(sys.argv[1:]); "
            "print('tensorflow' in sys.modules); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
    assert result.stderr.strip().startswith("error: ") and "Traceback" not in result.stderr


def test_a_run_with_files_recorded_still_loads(place):
    """The file-size record is not in the way of a good model (and gpt2 runs keep their context)."""
    from tfxformers.models import artifacts

    info = artifacts.read_info(place["CLF"])
    assert "weights/model.index" in info["files"]
    gpt = artifacts.read_info(place["GPT"])
    assert artifacts.context_length(place["GPT"], gpt) == 64
    assert Path(place["GPT"], "training_config.json").is_file()


def test_generation_at_the_context_limit_runs(place, capsys):
    """The boundary the check draws is the real one: prompt + new tokens == context generates."""
    from tokenizers import Tokenizer

    prompt = "Emma walked"
    tokens = len(Tokenizer.from_file(f"{place['GPT']}/tokenizer/tokenizer.json").encode(prompt).ids)
    room = 64 - tokens
    assert main(["generate", "--model", place["GPT"], "--prompt", prompt, "--max-new-tokens", str(room), "--json"]) == 0
    assert 1 <= json.loads(capsys.readouterr().out)["new_tokens"] <= room
