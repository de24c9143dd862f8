"""Two real encoders on Rotten Tomatoes: MPNet-base (110M) in its training modes, MiniLM-L6 (22M), and
MiniLM students distilled from the MPNet teacher; test accuracy and what each run costs.

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_encoders.py --configs mpnet-finetune-1
      (needs `tfxformers data fetch mpnet`; MPNet fine-tuning takes about an hour of both cores)
      ... --configs NAME[,NAME]  (see CONFIGS)   --quick  (300 training texts: checks the script only)
Writes bench/results/encoders.json after every configuration and prints the Markdown table of
docs/benchmarks.md.

Every configuration trains with ``train_classifier`` in a fresh Python process into
``runs/bench-encoders/NAME`` (the students read their teacher's run from there). A run that is cut off
resumes from its last checkpoint when the same command is run again (the trainer's own resume); the CPU
seconds of every attempt are added up in ``NAME.cost.json`` beside the run, so the cost reported is what
the whole run took, not its last piece. CPU is process CPU time (every thread: up to 2 CPU-seconds per
wall second on 2 cores), wall is elapsed time; both cover loading the encoder, tokenizing, any cache,
training with validation and predicting the test split, not the Python / TensorFlow import.
Accuracy is on the fixed test split (1,282 snippets), never used for any choice. One run per
configuration, seed 42.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import tfxformers  # noqa: F401
from child_runs import config_names, emit, open_report, run_child  # bench/child_runs.py (scripts run from bench/)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "runs" / "bench-encoders"
TEACHER = str(RUNS / "mpnet-finetune-1")
AUGMENTED = str(RUNS / "rt-train-spans.txt")
COMMON = dict(data="rotten_tomatoes", batch_size=32, max_length=128, patience=2, seed=42)
# name -> train_classifier options.
CONFIGS = {
    "mpnet-finetune-1": dict(encoder="mpnet", mode="finetune", epochs=1, learning_rate=3e-5),
    "mpnet-partial-4": dict(encoder="mpnet", mode="partial", trainable_layers=4, epochs=1),
    "mpnet-frozen": dict(encoder="mpnet", mode="frozen", epochs=20),
    "minilm-finetune-1": dict(encoder="minilm", mode="finetune", epochs=1, learning_rate=8e-5),
    # Students of the MPNet teacher (its run above), on the training texts plus one augmented copy of each
    # (AUGMENTED: unlabeled, soft labels only). The 3-layer student keeps MiniLM's blocks 0, 2 and 4.
    "student-6": dict(encoder="minilm", mode="distill", teacher=TEACHER, unlabeled=AUGMENTED, epochs=2,
                      learning_rate=8e-5),
    "student-3": dict(encoder="minilm", mode="distill", teacher=TEACHER, unlabeled=AUGMENTED, epochs=2,
                      learning_rate=8e-5, student_layers=[0, 2, 4]),
}
LABELS = {
    "mpnet-finetune-1": "MPNet-base fine-tuned, 1 epoch (lr 3e-5)",
    "mpnet-partial-4": "MPNet-base partial (top 4 of 12 layers), 1 epoch",
    "mpnet-frozen": "MPNet-base frozen (head only, 20 epochs)",
    "minilm-finetune-1": "MiniLM-L6 fine-tuned, 1 epoch (lr 8e-5)",
    "student-6": "MiniLM-L6 student of MPNet, 2 epochs (T 2, alpha 0.5, + spans)",
    "student-3": "MiniLM 3-layer student (blocks 0,2,4) of MPNet, 2 epochs (T 2, alpha 0.5, + spans)",
}


def write_spans(path: Path, seed: int = 42) -> int:
    """Unlabeled in-domain texts for distillation: one contiguous span (50-85% of the words, at least 4) of
    every training snippet, the "n-gram sampling" augmentation of Tang et al. 2019 ("Distilling
    task-specific knowledge from BERT into simple neural networks"): the teacher labels them, so the
    student sees the teacher's judgement on partial evidence that no hard label covers. Seeded."""
    import random

    from tfxformers.models.data.classification import load_classification

    rng = random.Random(seed)
    spans = []
    for text in load_classification("rotten_tomatoes").train.texts:
        words = text.split()
        if len(words) < 6:
            continue
        n = max(4, int(len(words) * rng.uniform(0.5, 0.85)))
        start = rng.randrange(0, len(words) - n + 1)
        spans.append(" ".join(words[start:start + n]).replace("\n", " "))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(spans) + "\n", encoding="utf-8")
    return len(spans)


def run_one(name: str, options: dict, output: Path, limit_train: int | None) -> dict:
    """One configuration in this process; resumes an unfinished run in ``output``."""
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier

    cost_file = output.parent / f"{name}.cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.is_file() else {"cpu_seconds": 0.0, "wall_seconds": 0.0,
                                                                          "attempts": 0}
    cost["attempts"] += 1
    cpu, wall = time.process_time(), time.perf_counter()

    def save_cost():
        cost_file.parent.mkdir(parents=True, exist_ok=True)
        now = {"cpu_seconds": round(cost["cpu_seconds"] + time.process_time() - cpu, 1),
               "wall_seconds": round(cost["wall_seconds"] + time.perf_counter() - wall, 1),
               "attempts": cost["attempts"]}
        cost_file.write_text(json.dumps(now))
        return now

    if options.get("unlabeled") and not Path(options["unlabeled"]).is_file():
        print(f"wrote {write_spans(Path(options['unlabeled']))} training-text spans to {options['unlabeled']}", flush=True)
    config = ClassifierTrainConfig(output=str(output), verbose=2, limit_train=limit_train,
                                   limit_eval=200 if limit_train else None, **{**COMMON, **options})
    try:
        metrics = train_classifier(config)
    finally:
        total = save_cost()
    return {"test_accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4),
            **options, **total}


def table(report: dict) -> str:
    lines = ["| model | test accuracy | macro-F1 | CPU min | wall min |", "| --- | --- | --- | --- | --- |"]
    for name, r in sorted(report["runs"].items(), key=lambda kv: -kv[1]["test_accuracy"]):
        lines.append(f"| {LABELS.get(name, name)} | {r['test_accuracy']:.4f} | {r['macro_f1']:.4f} | "
                     f"{r['cpu_seconds'] / 60:.1f} | {r['wall_seconds'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="mpnet-finetune-1,minilm-finetune-1",
                        help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--quick", action="store_true", help="300 training texts: checks the script only")
    parser.add_argument("--runs-dir", default=None, help="default runs/bench-encoders[-quick]")
    parser.add_argument("--results", default=None, help="default bench/results/encoders[-quick].json")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)   # child process: run one configuration
    args = parser.parse_args(argv)
    limit = 300 if args.quick else None
    runs = Path(args.runs_dir) if args.runs_dir else RUNS.with_name(RUNS.name + ("-quick" if args.quick else ""))

    if args.one:
        options = dict(CONFIGS[args.one], **({"epochs": 1} if args.quick else {}))
        result = run_one(args.one, options, runs / args.one, limit)
        emit(result)
        return 0

    names = config_names(parser, args.configs, CONFIGS)
    out = Path(args.results) if args.results else RESULTS / ("encoders-quick.json" if args.quick else "encoders.json")
    report = open_report(out, data="rotten_tomatoes (10,246 train / 1,280 validation / 1,282 test), max length 128, "
                                   "batch 32, seed 42")
    report.setdefault("runs", {})
    for name in names:
        print(f"== {name}", flush=True)
        child = [sys.executable, __file__, "--one", name, "--runs-dir", str(runs)] + (["--quick"] if args.quick else [])
        result = run_child(child)
        if result is None:
            print(f"{name} failed; run the same command again to resume it", flush=True)
            continue
        report["runs"][name] = dict(result, finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                    command="flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_encoders.py "
                                            f"--configs {name}" + (" --quick" if args.quick else ""))
        print(f"{name}: {json.dumps(report['runs'][name])}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
