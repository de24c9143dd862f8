"""``tfxformers demo``: the main job end to end on this machine, as ``make demo`` runs it.

Today that is the text-classification path: Rotten Tomatoes (fetched by ``make demo``) -> the frozen
MiniLM encoder with cached encoder outputs and a trained head -> test-split metrics and plots -> the
trained model answering real reviews it never saw. It ends with the commands to run each piece by hand.
A finished model directory is reused; ``--retrain`` trains again.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Dockerfile.serving copies this directory into TF Serving's image.
DEMO_MODEL_BASE = "serving_models"
DEMO_MODEL_NAME = "sentiment"


def register(commands, train_commands) -> None:
    demo = commands.add_parser("demo", help="run the main job end to end (what `make demo` runs)")
    demo.add_argument("--output", default="runs/demo-sentiment", help="where the demo's model goes")
    demo.add_argument("--epochs", type=int, default=15, help="head epochs (cheap: encoder outputs are cached)")
    demo.add_argument("--retrain", action="store_true", help="train again even if the model exists")
    demo.set_defaults(func=run_demo)


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from tfxformers.models.classifier_train import ClassifierTrainConfig, predict_texts, train_classifier
    from tfxformers.models.datasets import load_classification

    output = Path(args.output)
    started = time.perf_counter()
    trained_now = args.retrain or not (output / "metrics.json").is_file()
    if trained_now:
        _banner("training a sentiment classifier: frozen MiniLM encoder + dense head on Rotten Tomatoes")
        train_classifier(ClassifierTrainConfig(data="rotten_tomatoes", output=str(output), encoder="minilm",
                                               mode="frozen", epochs=args.epochs, verbose=2))
    else:
        _banner(f"reusing the trained model in {output} (--retrain to train again)")
    from tfxformers.serving.export import export_model, version_dirs

    if trained_now or not version_dirs(Path(DEMO_MODEL_BASE) / DEMO_MODEL_NAME):  # a new model, a new version
        exported = export_model(output, DEMO_MODEL_NAME, DEMO_MODEL_BASE)
        _banner(f"exported for TensorFlow Serving as {exported} (Dockerfile.serving serves {DEMO_MODEL_BASE}/)")
    metrics = json.loads((output / "metrics.json").read_text())
    _banner(f"test split: accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} "
            f"on {metrics['examples']} reviews; plots in {output / 'plots'}")
    data = load_classification("rotten_tomatoes")
    picks = list(range(0, 40, 8))
    reviews = [data.test.texts[i] for i in picks]
    truth = [data.label_names[data.test.labels[i]] for i in picks]
    _banner("the model on reviews from the held-out test split")
    for result, expected in zip(predict_texts(output, reviews), truth):
        mark = "ok " if result["label"] == expected else "MISS"
        print(f"[{mark}] {result['label']:>6} {result['probability']:.2f} (true: {expected:>6})  {result['text'][:90]}")
    _banner(f"done in {time.perf_counter() - started:.0f} s. Run the pieces by hand:")
    print(f"""  .venv/bin/tfxformers data list
  .venv/bin/tfxformers train classifier --data rotten_tomatoes --mode frozen --output {output}
  .venv/bin/tfxformers train classifier --data rotten_tomatoes --mode finetune --output runs/rt-finetune
  .venv/bin/tfxformers evaluate --model {output}
  .venv/bin/tfxformers predict --model {output} "a charming, funny film" "a tedious, overlong mess"
  .venv/bin/tensorboard --logdir {output / 'logs'}
  .venv/bin/tfxformers export --model {output} --name {DEMO_MODEL_NAME} --model-base {DEMO_MODEL_BASE}
  .venv/bin/saved_model_cli show --dir {DEMO_MODEL_BASE}/{DEMO_MODEL_NAME}/1 --all""")
    return 0
