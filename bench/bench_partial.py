"""Accuracy per CPU-minute on Rotten Tomatoes: TF-IDF, frozen, partial (1/2/3 top layers) and full fine-tuning.

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_partial.py   (40-60 CPU-minutes)
      ... --configs partial-2,finetune-1   (a subset)   --quick   (500 training texts, to check the script)
Writes bench/results/partial.json after every configuration (a cut-off run keeps what finished) and the
plot docs/partial_accuracy_vs_cpu.png; prints the Markdown table of docs/benchmarks.md.

Each configuration trains in a fresh Python process (no shared graphs, caches or memory between them) that
times ``train_classifier`` alone: process CPU seconds (``time.process_time``: every thread of the process,
so up to 2 s per wall second on 2 cores) and wall seconds. That covers loading the encoder, tokenizing,
building the hidden-state or feature cache (from nothing: every run uses a fresh output directory),
training with validation, and predicting the test split; not the Python / TensorFlow import.
Accuracy is on the fixed test split (1,282 snippets), never used for any choice.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import tfxformers  # noqa: F401
from child_runs import config_names, emit, open_report, run_child  # bench/child_runs.py (scripts run from bench/)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PLOT = ROOT / "docs" / "partial_accuracy_vs_cpu.png"
# name -> train_classifier options. Full fine-tuning uses the 8e-5 of bench_classification.py.
CONFIGS = {
    "tfidf": None,
    "partial-2": dict(mode="partial", trainable_layers=2, epochs=1),
    "finetune-1": dict(mode="finetune", epochs=1, learning_rate=8e-5),
    "partial-3": dict(mode="partial", trainable_layers=3, epochs=1),
    "partial-1": dict(mode="partial", trainable_layers=1, epochs=1),
    "frozen": dict(mode="frozen", epochs=20),
    "finetune-2": dict(mode="finetune", epochs=2, learning_rate=8e-5),
    "partial-2x2": dict(mode="partial", trainable_layers=2, epochs=2),
}


def run_one(name: str, options: dict | None, output: Path, limit_train: int | None) -> dict:
    """One configuration, timed in this process."""
    from tfxformers.models.data.classification import load_classification

    data = load_classification("rotten_tomatoes").limited(limit_train, None, None)
    cpu, wall = time.process_time(), time.perf_counter()
    if options is None:
        from tfxformers.models.classification.baseline import tfidf_baseline_for

        baseline = tfidf_baseline_for(data)
        result = {"test_accuracy": baseline.accuracy(data.test.texts, data.test.labels),
                  "validation_accuracy": baseline.validation_accuracy, "C": baseline.C}
    else:
        from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier

        shutil.rmtree(output, ignore_errors=True)
        config = ClassifierTrainConfig(data="rotten_tomatoes", output=str(output), encoder="minilm", verbose=2,
                                       batch_size=32, max_length=128, patience=2, limit_train=limit_train,
                                       **options)
        metrics = train_classifier(config)
        result = {"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                  **options}
        if config.mode == "partial" and config.learning_rate is None:
            from tfxformers.models.classification.partial import DEFAULT_LEARNING_RATE

            result["learning_rate"] = DEFAULT_LEARNING_RATE
        cache = [f for d in ("hidden_cache", "feature_cache") for f in (output / d).glob("*") if f.is_file()]
        result["cache_mb"] = round(sum(f.stat().st_size for f in cache) / 1e6, 1)
    result.update(cpu_seconds=round(time.process_time() - cpu, 1), wall_seconds=round(time.perf_counter() - wall, 1))
    result["test_accuracy"] = round(result["test_accuracy"], 4)
    return result


LABELS = {"tfidf": "TF-IDF + LR", "frozen": "frozen (20 head epochs)", "finetune-1": "full fine-tuning, 1 epoch",
          "finetune-2": "full fine-tuning, 2 epochs"}


def label(name: str, r: dict) -> str:
    if name.startswith("partial"):
        layers = r["trainable_layers"]
        return f"partial, top {layers} layer{'s' if layers > 1 else ''}, {r['epochs']} epoch{'s' if r['epochs'] > 1 else ''}"
    return LABELS.get(name, name)


def table(report: dict) -> str:
    runs = report["runs"]
    full = runs.get("finetune-1", {}).get("cpu_seconds")
    lines = ["| approach | test accuracy | CPU min | wall min | CPU vs 1 full epoch | cache MB |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in sorted(runs.items(), key=lambda kv: kv[1]["cpu_seconds"]):
        share = f"{100 * r['cpu_seconds'] / full:.0f}%" if full else "-"
        lines.append(f"| {label(name, r)} | {r['test_accuracy']:.4f} | {r['cpu_seconds'] / 60:.2f} | "
                     f"{r['wall_seconds'] / 60:.2f} | {share} | {r.get('cache_mb', '-')} |")
    return "\n".join(lines)


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in report["runs"].items():
        x = max(r["cpu_seconds"] / 60, 0.01)
        color = "tab:green" if name.startswith("partial") else "tab:blue" if name.startswith("finetune") else "gray"
        ax.scatter([x], [r["test_accuracy"]], color=color, s=50, zorder=3)
        ax.annotate(label(name, r), (x, r["test_accuracy"]), textcoords="offset points", xytext=(6, -10), fontsize=8)
    full = report["runs"].get("finetune-1")
    if full:
        ax.axvline(0.4 * full["cpu_seconds"] / 60, color="tab:red", ls=":", lw=1, label="40% of one full epoch")
    ax.axhline(0.81, color="tab:green", ls="--", lw=1, label="goal 0.81")
    ax.set_xscale("log")
    ax.set_xlabel("training CPU minutes (process CPU time, 2 cores; log scale)")
    ax.set_ylabel("test accuracy (Rotten Tomatoes)")
    ax.set_title("MiniLM-L6 on Rotten Tomatoes: accuracy vs training CPU time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    parser.add_argument("--quick", action="store_true", help="500 training texts, 1 epoch: checks the script only")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench-partial"))
    parser.add_argument("--results", default=None, help="default bench/results/partial[-quick].json")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)   # child process: run one configuration
    parser.add_argument("--override", default="{}", help="JSON merged into every configuration's options")
    args = parser.parse_args(argv)
    override = json.loads(args.override)
    limit = 500 if args.quick else None

    if args.one:
        options = CONFIGS[args.one]
        if options is not None:
            options = dict(options, **override)
            if args.quick:
                options["epochs"] = 1
        result = run_one(args.one, options, Path(args.runs_dir) / args.one, limit)
        emit(result)
        return 0

    names = config_names(parser, args.configs, CONFIGS)
    out = Path(args.results) if args.results else RESULTS / ("partial-quick.json" if args.quick else "partial.json")
    command = "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_partial.py " + " ".join(argv or sys.argv[1:])
    report = open_report(out, command=command,
                         data="rotten_tomatoes (10,246 train / 1,280 validation / 1,282 test), MiniLM-L6, max length 128")
    report.setdefault("runs", {})
    for name in names:
        print(f"== {name}", flush=True)
        child = [sys.executable, __file__, "--one", name, "--runs-dir", args.runs_dir, "--override", args.override]
        if args.quick:
            child.append("--quick")
        result = run_child(child)
        if result is None:
            print(f"{name} failed", flush=True)
            continue
        report["runs"][name] = dict(result, finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
        print(f"{name}: {json.dumps(report['runs'][name])}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        if not args.quick:
            plot(report, PLOT)
    print(table(report))
    print(f"wrote {out}" + ("" if args.quick else f" and {PLOT}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
