"""Distillation (``train classifier --mode distill``) on tiny checkpoints: the student learns its teacher, the
teacher's soft labels are computed once and reused, every bad distill option is one ``error:`` line.

One tiny teacher (a frozen-mode head on a 2-block random BERT: its training is the cheapest that gives a
teacher with real preferences) and one student (blocks 0 and 2 of a 3-block random BERT, with unlabeled
texts) are trained once for the module; the bad-input cases stop before any training.
"""
from __future__ import annotations

import csv
import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tfxformers.cli import main
from tfxformers.models.classification import distill
from tfxformers.testing import TINY_FAMILIES

STUDENT_LAYERS = [0, 2]


def _reviews(count: int, seed: int) -> list[str]:
    """Texts like ``write_two_class_reviews``' (same word lists), without labels: unlabeled / held-out texts."""
    rng = random.Random(seed)
    good, bad = "good great brilliant fun loved best".split(), "bad worst boring dull awful mess".split()
    filler = "the movie film story plot was very".split()
    return [" ".join(rng.choice((good if i % 2 else bad) if rng.random() < 0.6 else filler)
                     for _ in range(rng.randint(3, 8))) for i in range(count)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert_dir):
    from tfxformers.testing import make_tiny_bert_checkpoint, write_two_class_reviews

    root = tmp_path_factory.mktemp("distill")
    data = write_two_class_reviews(root / "reviews.csv", {"train": 160, "validation": 40, "test": 40})
    (root / "unlabeled.txt").write_text("\n".join(_reviews(160, seed=3)) + "\n", encoding="utf-8")
    student_encoder = make_tiny_bert_checkpoint(root / "bert3", num_hidden_layers=3, seed=1)
    teacher = root / "teacher"
    assert main(["train", "classifier", "--data", str(data), "--encoder", str(tiny_bert_dir), "--mode", "frozen",
                 "--output", str(teacher), "--epochs", "30", "--batch-size", "16", "--max-length", "32",
                 "--learning-rate", "1e-2"]) == 0
    return {"root": root, "data": data, "teacher": teacher, "student_encoder": student_encoder,
            "unlabeled": root / "unlabeled.txt"}


def _distill_args(setup, output, *extra):
    return ["train", "classifier", "--data", str(setup["data"]), "--encoder", str(setup["student_encoder"]),
            "--mode", "distill", "--teacher", str(setup["teacher"]), "--output", str(output), "--max-length", "32",
            "--batch-size", "16", *extra]


@pytest.fixture(scope="module")
def student(setup):
    import io
    from contextlib import redirect_stdout

    output = setup["root"] / "student"
    log = io.StringIO()
    with redirect_stdout(log):
        code = main(_distill_args(setup, output, "--student-layers", ",".join(map(str, STUDENT_LAYERS)),
                                  "--unlabeled", str(setup["unlabeled"]), "--epochs", "2", "--learning-rate", "1e-3"))
    assert code == 0, log.getvalue()
    return output, log.getvalue()


def _agreement(model, tokenizer, teacher_predictions, texts):
    from tfxformers.models.tokenization import predict_logits

    return float(np.mean(predict_logits(model, tokenizer, texts, max_length=32).argmax(-1) == teacher_predictions))


def test_a_distilled_student_agrees_with_its_teacher_and_is_an_ordinary_run(setup, student):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.encoders import base
    from tfxformers.models.tokenization import predict_logits

    output, log = student
    assert "teacher soft labels for 360 texts (train 160, validation 40, unlabeled 160): computed" in log
    texts = _reviews(120, seed=11)  # held out: neither training, unlabeled nor validation texts
    teacher = load_trained(setup["teacher"])
    told = predict_logits(teacher.keras_model, teacher.tokenizer, texts, max_length=32).argmax(-1)
    assert 0.3 < told.mean() < 0.7  # a teacher with preferences of both kinds, not a constant one
    trained = load_trained(output)
    untrained = base.build_classifier(distill.select_layers(base.load_encoder(setup["student_encoder"]),
                                                            STUDENT_LAYERS), 2, compile=False)
    after, before = (_agreement(m, trained.tokenizer, told, texts) for m in (trained.keras_model, untrained))
    assert after >= 0.85 and after >= before + 0.2, (after, before)

    info = json.loads((output / "tfxformers.json").read_text())
    assert info["mode"] == "distill" and info["encoder_config"]["num_hidden_layers"] == len(STUDENT_LAYERS)
    recorded = info["distill"]
    assert recorded["teacher"] == str(setup["teacher"].resolve()) and len(recorded["teacher_identity"]) == 16
    assert (recorded["temperature"], recorded["alpha"], recorded["student_layers"]) == (2.0, 0.5, STUDENT_LAYERS)
    assert recorded["unlabeled_texts"] == 160 and recorded["teacher_layers"] == 2
    identity = json.loads((output / "training_config.json").read_text())
    assert identity["teacher_identity"] == recorded["teacher_identity"] and identity["student_layers"] == STUDENT_LAYERS
    assert (output / "metrics.json").is_file() and (output / "plots" / "confusion_matrix.png").is_file()
    history = (output / "history.csv").read_text()
    assert "teacher_agreement" in history.splitlines()[0]


def test_the_teachers_soft_labels_are_cached_in_its_run_and_reused(setup, student, capsys):
    from tfxformers.models.classification.train import ClassifierTrainConfig
    from tfxformers.models.data.classification import load_classification

    files = sorted((setup["teacher"] / "soft_labels").glob("*.npz"))
    assert len(files) == 3  # train, validation, unlabeled
    stamps = [f.stat().st_mtime_ns for f in files]
    # A second student (another encoder, output and options) needs the same texts labelled: no teacher call.
    config = ClassifierTrainConfig(data=str(setup["data"]), output=str(setup["root"] / "second"), mode="distill",
                                   teacher=str(setup["teacher"]), unlabeled=str(setup["unlabeled"]),
                                   temperature=4.0, alpha=0.9, max_length=32)
    data = load_classification(config.data)
    plan = distill.prepare(config, data, setup["student_encoder"])
    plan.compute_soft_labels(data, 32, setup["root"] / "second", progress=False)
    assert "teacher soft labels for 360 texts (train 160, validation 40, unlabeled 160): reused" in capsys.readouterr().out
    assert not plan.teacher_loaded
    assert [f.stat().st_mtime_ns for f in files] == stamps
    teacher_logits = np.load(files[0])["logits"]
    assert teacher_logits.dtype == np.float32 and teacher_logits.shape[1] == 2


def test_the_loss_is_hintons_mix():
    import tensorflow as tf

    teacher, student = np.array([[2.0, -1.0], [0.5, 0.0]]), np.array([[0.0, 1.0], [1.0, 1.0]])
    rows = distill.targets([1, 0], [1, 0], teacher)
    got = distill.distillation_loss(2.0, 0.25)(tf.constant(rows), tf.constant(student, tf.float32)).numpy()

    def log_softmax(x):
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p, log_q = np.exp(log_softmax(teacher / 2)), log_softmax(student / 2)
    kl = (p * (np.log(p) - log_q)).sum(-1)
    ce = -log_softmax(student)[[0, 1], [1, 0]]
    np.testing.assert_allclose(got, 0.25 * 4 * kl + 0.75 * np.array([1, 0]) * ce, rtol=1e-5)


def _write_csv(path, labels):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([f"text number {i}", labels[i % len(labels)]] for i in range(30))
    return path


@pytest.fixture(scope="module")
def bad(setup):
    root = setup["root"] / "bad"
    (root / "gpt").mkdir(parents=True)
    (root / "gpt" / "tfxformers.json").write_text(json.dumps({"kind": "gpt2"}))
    (root / "empty.txt").write_text("\n \n\u200b\n", encoding="utf-8")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (root / "a-dir").mkdir()
    return {"ROOT": str(root), "TEACHER": str(setup["teacher"]), "DATA": str(setup["data"]),
            "ENC": str(setup["student_encoder"]), "UNL": str(setup["unlabeled"]),
            "THREE": str(_write_csv(root / "three.csv", ["a", "b", "c"])),
            "OTHER": str(_write_csv(root / "other.csv", ["neg", "positive"]))}


TRAIN = ["train", "classifier", "--data", "{DATA}", "--encoder", "{ENC}", "--output", "{ROOT}/out"]
DISTILL = TRAIN + ["--mode", "distill", "--teacher", "{TEACHER}"]
CASES = [
    # options that mean something only with --mode distill, and distill without its teacher
    (TRAIN + ["--teacher", "{TEACHER}"], "--teacher applies to --mode distill only (this run is --mode finetune)"),
    (TRAIN + ["--mode", "partial", "--unlabeled", "{UNL}"], "--unlabeled applies to --mode distill only"),
    (TRAIN + ["--student-layers", "0,1"], "--student-layers applies to --mode distill only"),
    (TRAIN + ["--temperature", "2"], "--temperature applies to --mode distill only"),
    (TRAIN + ["--alpha", "0.5"], "--alpha applies to --mode distill only"),
    (TRAIN + ["--mode", "distill"], "--mode distill needs --teacher RUN_DIR"),
    # the teacher
    (TRAIN + ["--mode", "distill", "--teacher", "{ROOT}/absent"], "--teacher {ROOT}/absent: model directory not found"),
    (TRAIN + ["--mode", "distill", "--teacher", "{ENC}"], "is not a tfxformers model directory (no tfxformers.json)"),
    (TRAIN + ["--mode", "distill", "--teacher", "{ROOT}/gpt"], "holds a 'gpt2' model, not a classifier one"),
    (TRAIN + ["--mode", "distill", "--teacher", "{UNL}"], "is a file, not a model directory"),
    (["train", "classifier", "--data", "{THREE}", "--encoder", "{ENC}", "--output", "{ROOT}/out", "--mode", "distill",
      "--teacher", "{TEACHER}"], "knows the labels ['neg', 'pos'], the data three has ['a', 'b', 'c']"),
    (["train", "classifier", "--data", "{OTHER}", "--encoder", "{ENC}", "--output", "{ROOT}/out", "--mode", "distill",
      "--teacher", "{TEACHER}"], "a student learns only a teacher of the same labels"),
    # --student-layers (the tiny student checkpoint has 3 blocks)
    (DISTILL + ["--student-layers", ""], "argument --student-layers: must be a comma-separated list of block numbers"),
    (DISTILL + ["--student-layers", "0,,2"], "must be a comma-separated list of block numbers"),
    (DISTILL + ["--student-layers", "0,0"], "argument --student-layers: names block 0 twice"),
    (DISTILL + ["--student-layers", "a,b"], "must be whole block numbers separated by commas"),
    (DISTILL + ["--student-layers", "1.5"], "must be whole block numbers separated by commas"),
    (DISTILL + ["--student-layers", "-1"], "block -1 does not exist"),
    (DISTILL + ["--student-layers", "0,3"], "--student-layers block 3 does not exist (0..2, the encoder has 3 blocks"),
    # --temperature and --alpha
    (DISTILL + ["--temperature", "0"], "argument --temperature: must be a number > 0 (got '0')"),
    (DISTILL + ["--temperature", "-2"], "argument --temperature: must be a number > 0"),
    (DISTILL + ["--temperature", "nan"], "argument --temperature: must be a finite number"),
    (DISTILL + ["--temperature", "hot"], "argument --temperature: must be a number (got 'hot')"),
    (DISTILL + ["--alpha", "-0.1"], "argument --alpha: must be in [0, 1] (got '-0.1')"),
    (DISTILL + ["--alpha", "1.5"], "argument --alpha: must be in [0, 1]"),
    (DISTILL + ["--alpha", "half"], "argument --alpha: must be a number (got 'half')"),
    (DISTILL + ["--alpha", "0", "--unlabeled", "{UNL}"], "--unlabeled with --alpha 0"),
    # --unlabeled
    (DISTILL + ["--unlabeled", "{ROOT}/absent.txt"], "--unlabeled {ROOT}/absent.txt: file not found"),
    (DISTILL + ["--unlabeled", "{ROOT}/empty.txt"], "--unlabeled {ROOT}/empty.txt holds no text (one text per line)"),
    (DISTILL + ["--unlabeled", "{ROOT}/binary.txt"], "--unlabeled {ROOT}/binary.txt is not UTF-8 text"),
    (DISTILL + ["--unlabeled", "{ROOT}/a-dir"], "--unlabeled {ROOT}/a-dir is a directory"),
]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own checks exit from inside parse_args
        return exc.code


@pytest.mark.parametrize("argv, expected", CASES, ids=[f"case-{i}" for i in range(len(CASES))])
def test_every_bad_distill_option_is_one_error_line_before_training(argv, expected, bad, capsys):
    argv = [a.format(**bad) for a in argv]
    code = _run(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert expected.format(**bad) in lines[0]
    assert "Traceback" not in out + err
    assert not Path(bad["ROOT"], "out").exists()  # refused before a run directory was even made


def test_the_cli_refuses_a_distill_option_in_a_fresh_process(bad):
    from tfxformers.testing import tfxformers_command

    argv = [a.format(**bad) for a in DISTILL + ["--student-layers", "0,0"]]
    result = subprocess.run(tfxformers_command() + argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: argument --student-layers: names block 0 twice")


def test_the_config_checks_the_distill_options_for_library_callers(tmp_path):
    from tfxformers.errors import UserError
    from tfxformers.models.classification.train import ClassifierTrainConfig, check_config

    base = dict(data="x.csv", output=str(tmp_path))
    bad = [(dict(mode="distill"), "--mode distill needs --teacher"),
           (dict(mode="distill", teacher="t", temperature=0.0), "--temperature must be a number > 0"),
           (dict(mode="distill", teacher="t", alpha=1.5), "--alpha must be in [0, 1]"),
           (dict(mode="distill", teacher="t", student_layers=[]), "--student-layers must name at least one block"),
           (dict(mode="distill", teacher="t", student_layers=[1, 1]), "--student-layers names block 1 twice"),
           (dict(mode="finetune", alpha=0.7), "--alpha applies to --mode distill only"),
           (dict(mode="frozen", teacher="t"), "--teacher applies to --mode distill only")]
    for options, expected in bad:
        with pytest.raises(UserError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            check_config(ClassifierTrainConfig(**base, **options))


@pytest.mark.parametrize("family", TINY_FAMILIES)  # DistilBERT: n_layers; MPNet: a bias outside the blocks
def test_a_student_of_some_blocks_computes_what_those_blocks_of_the_checkpoint_compute(family, tmp_path):
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.testing import make_tiny_checkpoint

    encoder = base.load_encoder(make_tiny_checkpoint(tmp_path, family, num_hidden_layers=3))
    rng = np.random.default_rng(0)
    for weight in base.main_layer(encoder).weights:  # random-init blocks differ little; these differ a lot
        weight.assign(weight + rng.normal(0, 0.3, weight.shape).astype(weight.dtype.as_numpy_dtype))
    student = distill.select_layers(encoder, [2, 0])
    assert encoders.num_layers(base.encoder_config_dict(student)) == 2
    module = encoders.family_module(encoder)
    main_layer = base.main_layer(encoder)
    blocks = module.layers(main_layer)
    ids = tf.constant([[2, 40, 41, 42, 3, 0]])
    mask = tf.constant([[1, 1, 1, 1, 1, 0]])
    hidden = module.embed(main_layer, ids)
    for index in (2, 0):
        hidden = module.run_layer(blocks[index], hidden, mask)[0]
    got = base.call_main_layer(base.main_layer(student), ids, mask, training=False).last_hidden_state
    np.testing.assert_allclose(got.numpy()[:, :5], hidden.numpy()[:, :5], atol=1e-4)


def test_a_run_started_before_the_distill_options_existed_still_resumes(tmp_path):
    """Its training_config.json has no teacher / temperature / ...: a finetune run with the same settings is it."""
    from tfxformers.models import run_dirs
    from tfxformers.models.classification.train import ClassifierTrainConfig, run_settings

    config = ClassifierTrainConfig(data="reviews.csv", output=str(tmp_path), mode="finetune")
    settings = run_settings(config)
    assert not set(settings) & set(distill.DISTILL_OPTIONS)
    (tmp_path / "training_config.json").write_text(json.dumps(settings))
    (tmp_path / "checkpoints" / "backup").mkdir(parents=True)
    assert run_dirs.plan(tmp_path, "classifier", settings)[0] == "in_place"
    distilled = run_settings(ClassifierTrainConfig(data="reviews.csv", output="o", mode="distill", teacher="t"))
    assert distilled["teacher"] == "t" and distilled["temperature"] == 2.0
