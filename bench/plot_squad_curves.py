"""One plot of every SQuAD run's dev F1 against training CPU minutes, so a user can pick a budget.

    .venv/bin/python bench/plot_squad_curves.py [--output bench/results/squad_curves.png]

Reads the runs ``bench/bench_squad.py`` left in ``bench/results/`` (each a folder with ``curve.csv`` and,
once finished, ``metrics.json`` with the full-dev score): a run's dev-subset rows are a line, its full-dev
score a star at its last CPU minute. A run on the budget schedule decays its learning rate to 0 at its
budget, so only its last point is what that budget buys; its earlier points are a run still on its way.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# (folder under bench/results, legend label)
RUNS = (
    ("squad_curve", "one-epoch schedule (cut at 93 CPU-min), subset"),
    ("squad_b160", "budget schedule, 160 CPU-min, subset"),
)


def rows(folder: Path) -> list[dict]:
    with open(folder / "curve.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(RESULTS / "squad_curves.png"))
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    baseline = None
    for name, label in RUNS:
        folder = RESULTS / name
        if not (folder / "curve.csv").exists():
            continue
        points = rows(folder)
        line, = ax.plot([p["cpu_minutes"] for p in points], [p["dev_f1"] for p in points], "o-", label=label)
        metrics_file = folder / "metrics.json"
        if metrics_file.exists():
            metrics = json.loads(metrics_file.read_text())
            baseline = metrics.get("baseline", baseline)
            full = metrics.get("full_dev")
            if full:
                ax.plot([metrics["cpu_minutes"]], [full["f1"]], "*", ms=14, color=line.get_color(),
                        label=f"{label.rsplit(',', 1)[0]}: full dev F1 {full['f1']:.1f} / EM {full['exact_match']:.1f}")
    demo = RESULTS / "squad_demo_reader.json"
    if demo.exists():
        scores = json.loads(demo.read_text())
        full = scores.get("full_dev", scores)
        ax.plot([12.0], [full["f1"]], "*", ms=14, color="black",
                label=f"the demo's reader, 12 CPU-min: full dev F1 {full['f1']:.1f}")
    ax.axhline(80, color="green", lw=1, ls="--", label="goal: full dev F1 80")
    if baseline:
        ax.axhline(baseline["f1"], color="grey", lw=1, ls=":", label=f"lexical baseline F1 {baseline['f1']:.1f}")
    ax.set_xlabel("training CPU minutes (2 cores: 1 wall minute is at most 2)")
    ax.set_ylabel("SQuAD 1.1 dev F1 (v1.1 metric)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
