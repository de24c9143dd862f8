"""Do the pipeline's Beam stages gain from more Beam workers? ExampleGen, StatisticsGen and the Evaluator on
Rotten Tomatoes replicated about 20x, under Beam's DirectRunner in multi_processing mode with
``--direct_num_workers`` 1 and 2 (and in_memory as a reference), timed in one run.

    flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_beam_workers.py [--repeats 2] [--copies 20]

Each timed run is a fresh three-stage TFX pipeline (CsvExampleGen -> StatisticsGen; an Importer of a tiny
trained classifier -> Evaluator with the project's eval config on the eval split) under LocalDagRunner, with
caching off; a stage's time is its execution's span in ML Metadata (start to finish, Beam workers' start-up
included, since that is what a user waits for). Settings alternate within each repeat; the median per stage
is reported, with the ratio 1 worker / 2 workers (above 1: two workers are faster). The model is a tiny
random BERT fine-tuned for a moment: the Evaluator's cost is Beam's and TFMA's, plus a small model's
inference; MiniLM would make the inference part larger. Results: bench/results/beam_workers.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

STAGES = ("CsvExampleGen", "StatisticsGen", "Evaluator")
SETTINGS = {
    "mp1": ["--direct_running_mode=multi_processing", "--direct_num_workers=1"],
    "mp2": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "in_memory": ["--direct_running_mode=in_memory"],
}
RESULTS = Path(__file__).resolve().parent / "results" / "beam_workers.json"


def replicate(source_dir: Path, target_dir: Path, copies: int) -> dict[str, int]:
    """The split CSVs with every row ``copies`` times (a count suffix keeps rows distinct)."""
    counts = {}
    for split_dir in sorted(p for p in source_dir.iterdir() if p.is_dir()):
        rows = list(csv.DictReader((split_dir / "data.csv").open(encoding="utf-8")))
        (target_dir / split_dir.name).mkdir(parents=True, exist_ok=True)
        with open(target_dir / split_dir.name / "data.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for copy in range(copies):
                for row in rows:
                    writer.writerow(dict(row, text=row["text"] if copy == 0 else f"{row['text']} ({copy})"))
        counts[split_dir.name] = len(rows) * copies
    (target_dir / "labels.json").write_text((source_dir / "labels.json").read_text())
    return counts


def tiny_model(work: Path, data_dir: Path) -> tuple[Path, list[str]]:
    """A Model artifact directory (``Format-Serving/`` as the Trainer writes it) of a tiny classifier."""
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.pipeline.classifier.signatures import examples_signature_builder
    from tfxformers.serving.export.trained import write_trained
    from tfxformers.testing import make_tiny_bert_checkpoint

    encoder = make_tiny_bert_checkpoint(work / "tiny_bert", hidden_size=32, num_hidden_layers=2)
    trained_dir = work / "trained"
    train_classifier(ClassifierTrainConfig(
        data="rotten_tomatoes", encoder=str(encoder), mode="finetune", output=str(trained_dir), epochs=1,
        batch_size=32, max_length=64, limit_train=2000, limit_eval=200, learning_rate=1e-3, verbose=0))
    trained = load_trained(trained_dir)
    model_uri = work / "model_artifact"
    write_trained(trained, model_uri / "Format-Serving", name="bench",
                  extra_signatures=examples_signature_builder(trained.tokenizer, trained.max_length))
    return model_uri, list(trained.label_names)


def stage_pipeline(root: Path, data_dir: Path, model_uri: Path, label_names: list[str], beam_args: list[str]):
    from tfx import v1 as tfx

    from tfxformers.pipeline.classifier.pipeline import eval_config
    from tfxformers.pipeline.classifier.signatures import SPLITS

    splits = [tfx.proto.Input.Split(name=name, pattern=f"{directory}/*") for name, directory in SPLITS.items()]
    example_gen = tfx.components.CsvExampleGen(input_base=str(data_dir), input_config=tfx.proto.Input(splits=splits))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    model = tfx.dsl.Importer(source_uri=str(model_uri), artifact_type=tfx.types.standard_artifacts.Model,
                             reimport=True).with_id("model_importer")
    config = eval_config(label_names, 0.0, 0.0)
    for spec in config.metrics_specs:  # no baseline model here, so no change threshold either
        for metric in spec.metrics:
            if metric.HasField("threshold"):
                metric.threshold.ClearField("change_threshold")
    evaluator = tfx.components.Evaluator(examples=example_gen.outputs["examples"], model=model.outputs["result"],
                                         example_splits=["eval"], eval_config=config)
    return tfx.dsl.Pipeline(
        pipeline_name="bench-beam-workers", pipeline_root=str(root / "artifacts"),
        components=[example_gen, statistics_gen, model, evaluator], enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")),
        beam_pipeline_args=beam_args)


def stage_seconds(metadata_path: Path) -> dict[str, float]:
    """Each stage's execution span from ML Metadata (milliseconds since the epoch -> seconds)."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    store = mlmd.MetadataStore(config)
    types = {t.id: t.name for t in store.get_execution_types()}
    out = {}
    for execution in store.get_executions():
        node = execution.custom_properties.get("__tfx_node_id__") if hasattr(execution, "custom_properties") else None
        name = types.get(execution.type_id, "")
        stage = next((s for s in STAGES if name.endswith("." + s) or name == s), None)
        if stage is None and node is not None:
            stage = next((s for s in STAGES if node.string_value == s), None)
        if stage:
            out[stage] = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20, help="how many times Rotten Tomatoes is replicated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--settings", default="mp1,mp2,in_memory", help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--work", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    chosen = args.settings.split(",")

    from tfx import v1 as tfx

    from tfxformers.pipeline.classifier.data import write_split_csvs

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-beam-"))
    source = write_split_csvs("rotten_tomatoes", work / "rt")
    counts = replicate(source.directory, work / f"rt{args.copies}", args.copies)
    print(f"data: {counts} rows ({args.copies}x Rotten Tomatoes)", flush=True)
    model_uri, label_names = tiny_model(work, source.directory)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    totals: dict[str, list[float]] = {name: [] for name in chosen}
    for repeat in range(args.repeats):
        order = chosen if repeat % 2 == 0 else list(reversed(chosen))
        for name in order:
            root = work / f"run-{name}-{repeat}"
            started = time.perf_counter()
            tfx.orchestration.LocalDagRunner().run(
                stage_pipeline(root, work / f"rt{args.copies}", model_uri, label_names, SETTINGS[name]))
            totals[name].append(time.perf_counter() - started)
            runs[name].append(stage_seconds(root / "metadata.sqlite"))
            print(f"repeat {repeat + 1} {name}: " + ", ".join(f"{s} {runs[name][-1].get(s, float('nan')):.1f} s"
                                                              for s in STAGES)
                  + f"; pipeline {totals[name][-1]:.1f} s", flush=True)
    medians = {name: {s: statistics.median(r[s] for r in runs[name]) for s in STAGES} for name in chosen}
    result = {"copies": args.copies, "rows": counts, "repeats": args.repeats, "cpus": os.cpu_count(),
              "settings": {name: SETTINGS[name] for name in chosen}, "runs": runs, "pipeline_seconds": totals,
              "median_seconds": medians,
              "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_beam_workers.py "
                         + " ".join(sys.argv[1:])}
    if "mp1" in medians and "mp2" in medians:
        result["ratio_1_over_2_workers"] = {s: medians["mp1"][s] / medians["mp2"][s] for s in STAGES}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{'stage':<15}" + "".join(f"{name:>12}" for name in chosen) + "   1/2 workers")
    for stage in STAGES:
        ratio = result.get("ratio_1_over_2_workers", {}).get(stage)
        print(f"{stage:<15}" + "".join(f"{medians[name][stage]:>11.1f}s" for name in chosen)
              + (f"   {ratio:.2f}x" if ratio else ""))
    print(f"results in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
