"""``tfxformers demo`` (the default task, what ``make demo`` runs): Rotten Tomatoes through the pipeline, served,
classified through the proxy."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tfxformers.demo.common import banner, tfxformers_here, tool_here

DEMO_MODEL_NAME = "sentiment"
# The cheapest setting bench/bench_partial.py found to beat TF-IDF by at least 3 points on the test split
# within the demo's time budget (docs/benchmarks.md, "Partial fine-tuning").
DEMO_MODE = "partial"
DEMO_TRAINABLE_LAYERS = 3
DEMO_EPOCHS = 1


def run_sentiment_demo(args: argparse.Namespace) -> int:
    import httpx

    from tfxformers.errors import UserError
    from tfxformers.models.classification.baseline import tfidf_baseline_for
    from tfxformers.models.data.classification import load_classification
    from tfxformers.pipeline.classifier.runner import RunOptions, report, run_local
    from tfxformers.serving.layout import version_dirs
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

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
    versions = version_dirs(Path(args.model_base) / DEMO_MODEL_NAME)
    if not versions:
        raise UserError(f"the pipeline pushed no version to {args.model_base}/{DEMO_MODEL_NAME} (not blessed); "
                        "see the Evaluator's output above")
    banner(f"pipeline done in {pipeline_seconds:.0f} s; {args.model_base}/{DEMO_MODEL_NAME} holds versions "
            f"{versions}")
    data = load_classification("rotten_tomatoes")
    baseline = tfidf_baseline_for(data)
    served = summary.test_metrics["accuracy"] if summary.test_metrics else float("nan")
    bow = baseline.accuracy(data.test.texts, data.test.labels)
    print(f"test accuracy on {len(data.test)} held-out reviews: served transformer {served:.3f} vs TF-IDF + "
          f"logistic regression {bow:.3f} (fitted just now on the same train split in {baseline.seconds:.0f} s): "
          f"{100 * (served - bow):+.1f} points")

    banner(f"starting tfxformers serve on {args.model_base} (TF Serving's gRPC and REST APIs)")
    server, grpc_port, rest_port = start_model_server(args.model_base, wait_for=DEMO_MODEL_NAME)
    proxy = None
    try:
        status = httpx.get(f"http://127.0.0.1:{rest_port}/v1/models/{DEMO_MODEL_NAME}", timeout=10).json()
        print(f"gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}; status: {json.dumps(status)}")
        banner("starting tfxformers proxy in front of it (gRPC backend; the proxy never imports TensorFlow)")
        proxy, proxy_url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models=DEMO_MODEL_NAME)
        url = f"{proxy_url}/v1/models/{DEMO_MODEL_NAME}:classify"
        print(f"proxy on {proxy_url}")

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
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(server)

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
