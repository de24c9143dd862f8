"""Small files and marks tests share: a synthetic two-class reviews CSV, a SavedModel that computes for as
long as asked (drains, in-flight budgets), and the mark that skips tests needing real fetched sources."""
from __future__ import annotations

import os
from pathlib import Path


def write_two_class_reviews(path: str | os.PathLike, counts: dict[str, int], *, length: tuple[int, int] = (3, 8),
                            seed: int = 7) -> Path:
    """A CSV (text, label, split) of synthetic reviews, ``counts[split]`` rows a split, neg and pos in turn:
    each of ``length`` (min, max) words, mostly of its label's kind, the rest neutral filler."""
    import csv
    import random

    rng = random.Random(seed)
    good, bad = "good great brilliant fun loved best".split(), "bad worst boring dull awful mess".split()
    filler = "the movie film story plot was very".split()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "split"])
        for split, n in counts.items():
            for i in range(n):
                words, label = (good, "pos") if i % 2 else (bad, "neg")
                text = " ".join(rng.choice(words if rng.random() < 0.6 else filler) for _ in range(rng.randint(*length)))
                writer.writerow([text, label, split])
    return Path(path)


def requires_real(*names: str):
    """pytest mark: skip unless the real sources are fetched, except under CI (``make test`` fetches them
    first, so there a missing source is a failure, not a skip)."""
    import pytest

    from tfxformers.models.data.sources import is_fetched

    missing = [n for n in names if not is_fetched(n)]
    return pytest.mark.skipif(bool(missing) and not os.environ.get("CI"),
                              reason=f"needs `tfxformers data fetch {' '.join(missing)}`")


def write_slow_saved_model(path) -> None:
    """A SavedModel whose ``serving_default`` computes until ``seconds`` (float32 [N]) have passed, a TensorFlow
    loop on ``tf.timestamp()``, answering ``elapsed`` and ``steps`` per row: a request that holds the server
    for as long as a test needs (drains, in-flight budgets)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")], autograph=False)
    def slow(seconds):
        start = tf.timestamp()
        wanted = tf.cast(tf.reduce_max(seconds), tf.float64)
        steps, _ = tf.while_loop(lambda i, x: tf.timestamp() - start < wanted, lambda i, x: (i + 1, tf.sin(x) + 1.0),
                                 [tf.constant(0), tf.constant(0.0)])
        elapsed = tf.cast(tf.timestamp() - start, tf.float32)
        return {"elapsed": tf.fill(tf.shape(seconds), elapsed), "steps": tf.fill(tf.shape(seconds), steps)}

    tf.saved_model.save(tf.Module(), str(path), signatures={"serving_default": slow})


def cli_error_line(argv: list[str], capsys) -> str:
    """Run ``tfxformers ARGV`` in this process and return its one stderr line, asserting what every bad input
    must give: exit 2 and exactly one line starting ``error: `` (no traceback)."""
    from tfxformers.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    return err[0]


def run_notebook(path) -> tuple[str, object]:
    """Execute the notebook at ``path`` (``ROOT/examples/NAME.ipynb``) in a fresh Python kernel started in ROOT
    (the examples read ``tests/data`` relative to it) with this process's environment; returns (every code cell's printed
    text, the executed notebook). A failing cell raises nbclient's error naming the cell."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    root = Path(path).resolve().parent.parent
    notebook = nbformat.read(str(path), as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    printed = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    return printed, notebook
