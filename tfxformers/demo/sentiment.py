"""``tfxformers demo`` (the default task, what ``make demo`` runs): Rotten Tomatoes through the pipeline, served,
classified through the proxy."""
from __future__ import annotations

import argparse
import json
import time

from tfxformers.demo.common import banner, pushed_versions, served, tfxformers_here, tool_here

DEMO_MODEL_NAME = "sentiment"
# The cheapest setting bench/bench_partial.py found to beat TF-IDF by at least 3 points on the test split
# within the demo's time budget (docs/benchmarks.md, "Partial fine-tuning").
DEMO_MODE = "partial"
DEMO_TRAINABLE_LAYERS = 3
DEMO_EPOCHS = 1


def run_sentiment_demo(args: argparse.Namespace) -> int:
    import httpx

    from tfxformers.models.classification.baseline import tfidf_baseline_for
    from tfxformers.models.data.classification import load_classification
    from tfxformers.pipeline.classifier.runner import RunOptions, report, run_local

    started = time.perf_counter()
    args.pipeline_root = args.pipeline_root or f"pipelines/{DEMO_MODEL_NAME}"
    banner(f"TFX pipeline: Rotten Tomatoes -> MiniLM, top {DEMO_TRAINABLE_LAYERS} layers fine-tuned on cached "
            f"lower-layer outputs ({DEMO_EPOCHS} epoch{'s' if DEMO_EPOCHS > 1 else ''}) -> Evaluator (must beat TF-IDF) -> Pusher "
            f"(LocalDagRunner, ML Metadata in {args.pipeline_root})")
    summary = run_local(RunOptions(task="sentiment", data="rotten_tomatoes", mode=DEMO_MODE,
                                   trainable_layers=DEMO_TRAINABLE_LAYERS, epochs=DEMO_EPOCHS, name=DEMO_MODEL_NAME,
                                   model_base=args.model_base, pipeline_root=args.pipeline_root))
    code = report(summary)
    pipeline_seconds = time.perf_counter() - started
    if code != 0:
        return code
    versions = pushed_versions(args.model_base, DEMO_MODEL_NAME, pipeline_seconds,
                               " (not blessed); see the Evaluator's output above")
    data = load_classification("rotten_tomatoes")
    baseline = tfidf_baseline_for(data)
    accuracy = summary.test_metrics["accuracy"] if summary.test_metrics else float("nan")
    bow = baseline.accuracy(data.test.texts, data.test.labels)
    print(f"test accuracy on {len(data.test)} held-out reviews: served transformer {accuracy:.3f} vs TF-IDF + "
          f"logistic regression {bow:.3f} (fitted just now on the same train split in {baseline.seconds:.0f} s): "
          f"{100 * (accuracy - bow):+.1f} points")

    with served(args.model_base, DEMO_MODEL_NAME) as ports:
        status = httpx.get(f"http://127.0.0.1:{ports.rest_port}/v1/models/{DEMO_MODEL_NAME}", timeout=10).json()
        print(f"model status (REST): {json.dumps(status)}")
        url = f"{ports.proxy_url}/v1/models/{DEMO_MODEL_NAME}:classify"

        picks = list(range(0, 8 * args.reviews, 8))
        reviews = [data.test.texts[i] for i in picks]
        truth = [data.label_names[data.test.labels[i]] for i in picks]
        banner(f"POST {url} with {len(reviews)} held-out reviews")
        answer = httpx.post(url, json={"texts": reviews}, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        for result, expected, text in zip(body["results"], truth, reviews):
            mark = "ok " if result["label"] == expected else "MISS"
            print(f"[{mark}] {result['label']:>6} {result['probability']:.2f} (true: {expected:>6})  {text[:80]}")
        print(f"answered by {body['model']} version {body['version']}")

    banner(f"done in {time.perf_counter() - started:.0f} s; server and proxy stopped. Run the pieces by hand:")
    root, base = args.pipeline_root, args.model_base
    tfx, saved_model_cli = tfxformers_here(), tool_here("saved_model_cli") or "saved_model_cli"
    print(f"""  {tfx} pipeline run --task sentiment --data rotten_tomatoes --mode {DEMO_MODE} \\
      --trainable-layers {DEMO_TRAINABLE_LAYERS} --epochs {DEMO_EPOCHS} \\
      --model-base {base} --pipeline-root {root}        # again: served from the cache
  {tfx} serve --model-base {base} --grpc-port 8500 --rest-port 8501 &
  {tfx} proxy --backend grpc://127.0.0.1:8500 --port 8000 &
  curl -s localhost:8501/v1/models/{DEMO_MODEL_NAME}
  curl -s -X POST localhost:8000/v1/models/{DEMO_MODEL_NAME}:classify \\
      -H 'content-type: application/json' -d '{{"texts": ["a charming, funny film", "a tedious mess"]}}'
  open http://127.0.0.1:8000/docs                      # the proxy's OpenAPI page
  {saved_model_cli} show --dir {base}/{DEMO_MODEL_NAME}/{versions[-1]} --all
  docker build -f Dockerfile.serving -t tfxformers-serving .   # TF Serving (GPU) with {base}/""")
    return 0
