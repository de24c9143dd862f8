"""The comparison report: McNemar and bootstrap numbers by hand, and `tfxformers compare` on two tiny runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfxformers.cli import main


def test_mcnemar_exact_binomial_by_hand():
    from tfxformers.models.classification.compare import mcnemar

    labels = np.array([0, 1] * 10)
    a = labels.copy()
    b = labels.copy()
    b[:5] = 1 - b[:5]      # 5 texts only A gets right
    a[10] = 1 - a[10]      # 1 text only B gets right
    a[12] = 1 - a[12]
    b[12] = 1 - b[12]      # 1 text both get wrong
    test = mcnemar(labels, a, b)
    assert (test["only_a_right"], test["only_b_right"], test["both_wrong"], test["both_right"]) == (5, 1, 1, 13)
    assert test["method"] == "exact binomial"
    # Two-sided: 2 * P(X <= 1) for X ~ Binomial(6, 1/2) = 2 * (1 + 6) / 64.
    assert test["p_value"] == pytest.approx(14 / 64)


def test_mcnemar_chi_square_with_continuity_correction_by_hand():
    from tfxformers.models.classification.compare import mcnemar

    labels = np.zeros(100, dtype=int)
    a = np.zeros(100, dtype=int)
    b = np.zeros(100, dtype=int)
    b[:30] = 1   # only A right on 30
    a[30:40] = 1  # only B right on 10
    test = mcnemar(labels, a, b)
    assert (test["only_a_right"], test["only_b_right"]) == (30, 10)
    assert test["statistic"] == pytest.approx((20 - 1) ** 2 / 40)
    from scipy.stats import chi2

    assert test["p_value"] == pytest.approx(chi2.sf(19 ** 2 / 40, 1), rel=1e-9)
    assert mcnemar(labels, a, a)["p_value"] == 1.0


def test_bootstrap_intervals_hold_the_estimate_and_are_degenerate_for_a_perfect_model():
    from tfxformers.models.classification.compare import bootstrap_intervals

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    noisy = np.where(rng.random(400) < 0.8, labels, rng.integers(0, 3, 400))
    ci = bootstrap_intervals(labels, {"perfect": labels, "noisy": noisy}, 3, samples=300)
    assert ci["perfect"] == {"accuracy": [1.0, 1.0], "macro_f1": [1.0, 1.0]}
    low, high = ci["noisy"]["accuracy"]
    accuracy = float(np.mean(noisy == labels))
    assert low < accuracy < high and 0.02 < high - low < 0.15
    from sklearn.metrics import f1_score

    f1 = f1_score(labels, noisy, average="macro")
    assert ci["noisy"]["macro_f1"][0] < f1 < ci["noisy"]["macro_f1"][1]


@pytest.fixture(scope="module")
def frozen_dir(tiny_bert_dir, tiny_reviews_csv, tmp_path_factory):
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier

    out = tmp_path_factory.mktemp("compare") / "frozen"
    train_classifier(ClassifierTrainConfig(
        data=str(tiny_reviews_csv), text_column="review", label_column="sentiment", encoder=str(tiny_bert_dir),
        mode="frozen", output=str(out), epochs=2, batch_size=16, max_length=32, verbose=0))
    return out


def test_compare_two_tiny_runs_and_the_baseline(trained_dir, frozen_dir, tmp_path, capsys):
    from tfxformers.models import artifacts
    from tfxformers.models.data.classification import load_classification
    from tfxformers.models.tokenization import predict_logits

    out = tmp_path / "report"
    assert main(["compare", str(trained_dir), str(frozen_dir), "--baseline", "tfidf", "--output", str(out),
                 "--bootstrap", "200", "--latency-texts", "3"]) == 0
    assert "report.md" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    for png in ("confusion_matrices.png", "scores.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    markdown = (out / "report.md").read_text()
    assert "## McNemar tests" in markdown and "clf" in markdown and "frozen" in markdown and "tfidf" in markdown

    info = artifacts.read_info(trained_dir)
    data = load_classification(info["data"], "review", "sentiment")
    labels = data.test.labels
    predictions = {}
    for name, path in (("clf", trained_dir), ("frozen", frozen_dir)):
        trained = artifacts.load_trained(path)
        predictions[name] = predict_logits(trained.keras_model, trained.tokenizer, data.test.texts,
                                           max_length=32).argmax(axis=-1)
        model = report["models"][name]
        assert model["accuracy"] == pytest.approx(float(np.mean(predictions[name] == labels)))
        assert model["accuracy_ci"][0] <= model["accuracy"] <= model["accuracy_ci"][1]
        assert np.sum(model["confusion_matrix"]) == len(labels)
        assert model["parameters"] > model["trained_parameters"] > 0
        if name == "frozen":
            assert model["trained_parameters"] == 16 * 2 + 2  # the head: hidden x labels + biases
        assert model["size_bytes"] == 4 * model["parameters"] and model["checkpoint_bytes"] > 0 and model["latency"]["texts"] == 3
        assert model["train_seconds"] == json.loads((path / "metrics.json").read_text())["train_seconds"]
    pair = next(p for p in report["pairs"] if (p["a"], p["b"]) == ("clf", "frozen"))
    right_a, right_b = predictions["clf"] == labels, predictions["frozen"] == labels
    assert pair["only_a_right"] == int(np.sum(right_a & ~right_b))
    assert pair["only_b_right"] == int(np.sum(~right_a & right_b))
    assert pair["disagree"] == int(np.sum(predictions["clf"] != predictions["frozen"]))
    assert len(report["pairs"]) == 3 and report["examples"] == len(labels)
    assert report["models"]["tfidf"]["kind"] == "baseline"


def test_trained_parameters_of_a_partial_run_are_the_top_blocks_and_the_head(tiny_bert_dir):
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.classification.compare import trained_parameters

    model = base.build_classifier(base.load_encoder(tiny_bert_dir), 2, compile=False)
    by_name = {w.name: int(np.prod(w.shape)) for w in model.weights}
    top_block = sum(n for name, n in by_name.items() if "/layer_._1/" in name)
    head = sum(n for name, n in by_name.items() if name.startswith("logits/"))
    assert top_block > 0 and head == 16 * 2 + 2
    assert trained_parameters(model, {"mode": "partial", "trainable_layers": 1}) == top_block + head
    assert trained_parameters(model, {"mode": "frozen"}) == head


@pytest.mark.parametrize("make_argv, message", [
    (lambda tmp, run: ["compare", str(tmp), "--output", str(tmp / "o")], "not a tfxformers model directory"),
    (lambda tmp, run: ["compare", "--output", str(tmp / "o")], "nothing to compare"),
    (lambda tmp, run: ["compare", "--baseline", "tfidf", "--output", str(tmp / "o")], "needs --data"),
    (lambda tmp, run: ["compare", str(run), "--baseline", "bow", "--output", str(tmp / "o")], "argument --baseline"),
    (lambda tmp, run: ["compare", str(run), "--output", str(run / "labels.json")], "argument --output"),
])
def test_bad_input_is_one_error_line(trained_dir, tmp_path, capsys, make_argv, message):
    try:
        code = main(make_argv(tmp_path, trained_dir))
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err


def test_runs_with_different_labels_are_refused(trained_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(trained_dir, other)
    info = json.loads((other / "tfxformers.json").read_text())
    info["label_names"] = ["bad", "good"]
    (other / "tfxformers.json").write_text(json.dumps(info))
    assert main(["compare", str(trained_dir), str(other), "--output", str(tmp_path / "o")]) == 2
    assert "must share their labels" in capsys.readouterr().err
