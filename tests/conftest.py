"""Shared fixtures (a tiny random BERT checkpoint in Hugging Face layout, small data files, a tiny trained
classifier) and the rule that marks which tests depend on the stack (see pytest.ini's `stack` marker)."""
from __future__ import annotations

import os
from pathlib import Path

# One compute thread per TensorFlow process (the test workers and every server, CLI and cluster worker they
# start, which inherit this environment). pytest-xdist already keeps both cores busy with one module per
# worker, and the models here are tiny: a per-process pool of 2 threads only made the processes spin-wait
# against each other (measured on tests/models/classification/test_partial.py beside another run: 46.8 -> 41.4 CPU-s,
# 59 -> 44 s wall). Set before anything imports TensorFlow; a value the caller set wins.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

TESTS = Path(__file__).resolve().parent
# tests/models/ exercises the model code itself (tf-keras layers, training, data, the CLI around them), which
# both stacks run through the same tf-keras API; everything else (serving, pipeline, the quiet start-up)
# crosses protobuf, TFX/TFMA, the serving API, SavedModel export/load or the servers, whose versions differ.
STACK_INDEPENDENT_DIRECTORIES = ("models",)
# The slowest modules (each a minute or more in the clean-clone runs' --durations) go to the workers first:
# pytest-xdist's `--dist loadfile` hands out modules in collection order, and one of these collected last
# kept one core busy for minutes while the other had nothing left to do.
SLOWEST_MODULES_FIRST = ("test_qa_learning.py", "test_multiworker.py", "test_pipeline.py", "test_gpt2.py",
                         "test_classifier.py", "test_notebook_and_real.py", "test_scaleout_trainer.py",
                         "test_families.py", "test_proxy_bad_input.py", "test_server_bad_input.py")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects on the markers
def pytest_collection_modifyitems(items):
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if parts[0] not in STACK_INDEPENDENT_DIRECTORIES:
            item.add_marker(pytest.mark.stack)
    # A stable sort: tests keep their order within a module, so module fixtures are built once.
    items.sort(key=lambda item: (item.path.name not in SLOWEST_MODULES_FIRST,
                                 SLOWEST_MODULES_FIRST.index(item.path.name) if item.path.name in SLOWEST_MODULES_FIRST else 0))

@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    from tfxformers.testing import built_once, make_tiny_bert_checkpoint

    return built_once(tmp_path_factory, "tiny_bert", make_tiny_bert_checkpoint)


@pytest.fixture(scope="session")
def tiny_reviews_csv(tmp_path_factory):
    """A small, learnable two-class CSV in the tiny vocabulary's words (read-only: one file for all workers)."""
    from tfxformers.testing import built_once

    def build(directory):
        _write_reviews(directory / "reviews.csv")

    return built_once(tmp_path_factory, "reviews", build) / "reviews.csv"


def _write_reviews(path):
    import csv
    import random

    rng = random.Random(0)
    good = "good great brilliant wonderful charming moving smart fresh fun funny loved best".split()
    bad = "bad worst boring dull awful terrible mess weak rotten flat tedious slow".split()
    filler = "the movie film story plot acting script music was very too so".split()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        for i in range(240):
            words, label = (good, "pos") if i % 2 else (bad, "neg")
            text = " ".join(rng.choice(filler) if rng.random() < 0.5 else rng.choice(words) for _ in range(rng.randint(4, 14)))
            writer.writerow([text, label])


@pytest.fixture(scope="session")
def trained_dir(tiny_bert_dir, tiny_reviews_csv, tmp_path_factory):
    """A tiny fine-tuned classifier's trained-model directory (read-only: tests export from it), trained by one
    worker for all of them (``built_once``)."""
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.testing import built_once

    def build(directory):
        train_classifier(ClassifierTrainConfig(
            data=str(tiny_reviews_csv), text_column="review", label_column="sentiment", encoder=str(tiny_bert_dir),
            mode="finetune", output=str(directory / "clf"), epochs=1, batch_size=16, max_length=32, verbose=0))

    return built_once(tmp_path_factory, "trained", build) / "clf"
