"""PNG figures for the comparison report and the attention maps (matplotlib, Agg backend, no display).

Comparison: ``confusion_matrices`` (one panel per model, side by side, row-normalised colours with counts
written in) and ``scores`` (accuracy and macro-F1 with their bootstrap intervals). Attention:
``attention_head`` (one head, tokens on both axes), ``attention_grid`` (every layer x head, small) and
``attention_rollout`` (how much each token reaches the first token, layer by layer). Every function
takes the output path and returns it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: a display (or its absence) must not matter
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# --- comparison report -------------------------------------------------------------------------------

def confusion_matrices(names: list[str], matrices: list, label_names: list[str], path) -> Path:
    plt = _pyplot()
    n = len(names)
    size = 1.0 + 0.6 * len(label_names)
    fig, axes = plt.subplots(1, n, figsize=(max(3.2, size) * n, max(3.0, size)), squeeze=False)
    for ax, name, matrix in zip(axes[0], names, matrices):
        matrix = np.asarray(matrix)
        rows = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(matrix / rows, cmap="Blues", vmin=0, vmax=1)
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                share = matrix[i, j] / rows[i, 0]
                ax.text(j, i, f"{matrix[i, j]}", ha="center", va="center",
                        color="white" if share > 0.6 else "black", fontsize=9)
        ticks = range(len(label_names))
        ax.set_xticks(ticks, label_names, rotation=30 if len(label_names) > 3 else 0)
        ax.set_yticks(ticks, label_names if ax is axes[0][0] else [""] * len(label_names))
        ax.set_xlabel("predicted")
        ax.set_title(name, fontsize=10)
    axes[0][0].set_ylabel("true")
    fig.suptitle("confusion matrices on the test split (colour: share of the true class)", fontsize=10, y=1.04)
    return _save(fig, path)


def scores(names: list[str], accuracy: list[tuple[float, float, float]], macro_f1: list[tuple[float, float, float]],
           path) -> Path:
    """Bars of (value, low, high) per model for accuracy and macro-F1."""
    plt = _pyplot()
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2.5, 3.6))
    for offset, label, values in ((-0.2, "accuracy", accuracy), (0.2, "macro-F1", macro_f1)):
        v = np.array([t[0] for t in values])
        err = np.array([[t[0] - t[1] for t in values], [t[2] - t[0] for t in values]])
        ax.bar(x + offset, v, width=0.38, yerr=err, capsize=4, label=label)
    low = min(min(t[1] for t in accuracy), min(t[1] for t in macro_f1))
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.set_xticks(x, names, rotation=15)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))  # outside: bars reach the top
    ax.set_title("test scores with 95% bootstrap intervals", fontsize=10)
    return _save(fig, path)


# --- attention ---------------------------------------------------------------------------------------

def _labels(tokens: list[str]) -> list[str]:
    return [t if len(t) <= 14 else t[:13] + "…" for t in tokens]


def attention_head(tokens: list[str], matrix, path, *, title: str = "") -> Path:
    plt = _pyplot()
    n = len(tokens)
    side = min(14.0, 2.0 + 0.28 * n)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(np.asarray(matrix), cmap="viridis", vmin=0.0)
    labels = _labels(tokens)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("attended to (key)")
    ax.set_ylabel("attending (query)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def attention_grid(weights, path, *, title: str = "") -> Path:
    """Every layer (rows) x head (columns) as small heat maps without tick labels."""
    plt = _pyplot()
    weights = np.asarray(weights)
    layers, heads = weights.shape[:2]
    fig, axes = plt.subplots(layers, heads, figsize=(1.3 * heads + 0.5, 1.3 * layers + 0.6), squeeze=False)
    for l in range(layers):
        for h in range(heads):
            ax = axes[l][h]
            ax.imshow(weights[l, h], cmap="viridis", vmin=0.0)  # own scale: diffuse heads stay readable
            ax.set_xticks([])
            ax.set_yticks([])
            if l == 0:
                ax.set_title(f"head {h}", fontsize=7)
            if h == 0:
                ax.set_ylabel(f"layer {l}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def attention_rollout(tokens: list[str], flow, path, *, title: str = "") -> Path:
    """``flow`` ``[layers, tokens]``: the first token's row of the rollout after each layer. The first
    token's share of itself (the residual path keeps it large) is written in, and the colours are scaled
    to the other tokens so that they are not all black beside it."""
    plt = _pyplot()
    flow = np.asarray(flow)
    n = len(tokens)
    fig, ax = plt.subplots(figsize=(min(16.0, 2.0 + 0.3 * n), 1.0 + 0.45 * flow.shape[0]))
    top = float(flow[:, 1:].max()) if n > 1 else float(flow.max())
    image = ax.imshow(flow, cmap="magma", aspect="auto", vmin=0.0, vmax=top or None)
    for l in range(flow.shape[0]):
        ax.text(0, l, f"{flow[l, 0]:.2f}", ha="center", va="center", fontsize=6, color="black")
    ax.set_xticks(range(n), _labels(tokens), rotation=90, fontsize=8)
    ax.set_yticks(range(flow.shape[0]), [f"after layer {l}" for l in range(flow.shape[0])], fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    return _save(fig, path)
