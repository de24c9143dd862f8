"""``tfxformers demo``: the main job end to end on this machine, as ``make demo`` runs it.

Rotten Tomatoes (fetched by ``make demo``) -> the TFX pipeline (CsvExampleGen ... Trainer fine-tuning
MiniLM's top layers on cached lower-layer outputs (``--mode partial``), Evaluator, whose threshold is the
TF-IDF + logistic-regression baseline's accuracy, Pusher) -> a blessed SavedModel version in
``serving_models/sentiment/N`` ->
``tfxformers serve`` (the embedded TF-Serving-compatible server) -> ``tfxformers proxy`` (raw text in,
labels out) -> real held-out reviews sent to the proxy's REST API. Everything the demo starts it stops;
it ends with the commands to run each piece by hand and to query it with curl.

A second ``make demo`` with nothing changed is served from the pipeline's cache (no new version).

``tfxformers demo --task lm`` does the same for GPT-2 pretraining: Emma -> the language-model pipeline
(``pipeline.lm.pipeline``: documents, validation, a BPE trained on the train chapters, ``train gpt2``'s
recipe, held-out perplexity against unigram and bigram baselines, Pusher) -> ``serving_models/emma/N`` ->
``tfxformers serve`` -> the proxy's ``:generate`` on a few prompts, greedy and sampled.

The server and the proxy are started with the same helpers the tests use (``tfxformers.testing``): real
subprocesses on free 127.0.0.1 ports that die with the demo if it is killed.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

# Dockerfile.serving copies this directory into TF Serving's image.
DEMO_MODEL_BASE = "serving_models"
DEMO_MODEL_NAME = "sentiment"
# The cheapest setting bench/bench_partial.py found to beat TF-IDF by at least 3 points on the test split
# within the demo's time budget (docs/benchmarks.md, "Partial fine-tuning").
DEMO_MODE = "partial"
DEMO_TRAINABLE_LAYERS = 3
DEMO_EPOCHS = 1


def register(commands, train_commands) -> None:
    demo = commands.add_parser("demo", help="run the main job end to end (what `make demo` runs)")
    demo.add_argument("--model-base", default=DEMO_MODEL_BASE, help="where blessed versions are pushed")
    demo.add_argument("--pipeline-root", default=f"pipelines/{DEMO_MODEL_NAME}",
                      help="TFX artifacts, ML Metadata (SQLite) and logs")
    demo.add_argument("--reviews", type=int, default=6, help="held-out reviews to send through the proxy")
    demo.add_argument("--task", default="sentiment", choices=["sentiment", "lm"],
                      help="sentiment (Rotten Tomatoes classifier, what `make demo` runs) or lm (GPT-2 on Emma)")
    demo.set_defaults(func=run_demo)


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (``.venv/bin/tfxformers``), else whole."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tfxformers_here(argv0: str | None = None, executable: str | None = None) -> str:
    """The ``tfxformers`` command that is running this demo, for the "run the pieces by hand" lines.

    Each stack has its own venv (``.venv``, ``.venv-current``, ``/opt/tfxformers-venv`` in the Debian 13
    root), so a fixed path would name a command that does not exist on the other stacks: the script this
    process was started as, else the one beside its Python, else ``python -m tfxformers``.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if Path(argv0).name == "tfxformers" and Path(argv0).is_file():
        return shlex.quote(_shown(Path(os.path.abspath(argv0))))
    return tool_here("tfxformers", executable) or f"{shlex.quote(_shown(Path(executable)))} -m tfxformers"


def tool_here(name: str, executable: str | None = None) -> str | None:
    """A console script installed beside the running Python (``saved_model_cli``), or None."""
    # Not resolved: a venv's python is a symlink to the base interpreter, whose bin has no venv scripts.
    candidate = Path(os.path.abspath(sys.executable if executable is None else executable)).parent / name
    return shlex.quote(_shown(candidate)) if candidate.is_file() else None


def run_demo(args: argparse.Namespace) -> int:
    if args.task == "lm":
        return run_lm_demo(args)
    return run_sentiment_demo(args)


def run_sentiment_demo(args: argparse.Namespace) -> int:
    import httpx

    from tfxformers.errors import UserError
    from tfxformers.models.classification.baseline import tfidf_baseline_for
    from tfxformers.models.data.classification import load_classification
    from tfxformers.pipeline.classifier.runner import RunOptions, report, run_local
    from tfxformers.serving.layout import version_dirs
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

    started = time.perf_counter()
    _banner(f"TFX pipeline: Rotten Tomatoes -> MiniLM, top {DEMO_TRAINABLE_LAYERS} layers fine-tuned on cached "
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
    _banner(f"pipeline done in {pipeline_seconds:.0f} s; {args.model_base}/{DEMO_MODEL_NAME} holds versions "
            f"{versions}")
    data = load_classification("rotten_tomatoes")
    baseline = tfidf_baseline_for(data)
    served = summary.test_metrics["accuracy"] if summary.test_metrics else float("nan")
    bow = baseline.accuracy(data.test.texts, data.test.labels)
    print(f"test accuracy on {len(data.test)} held-out reviews: served transformer {served:.3f} vs TF-IDF + "
          f"logistic regression {bow:.3f} (fitted just now on the same train split in {baseline.seconds:.0f} s): "
          f"{100 * (served - bow):+.1f} points")

    _banner(f"starting tfxformers serve on {args.model_base} (TF Serving's gRPC and REST APIs)")
    server, grpc_port, rest_port = start_model_server(args.model_base, wait_for=DEMO_MODEL_NAME)
    proxy = None
    try:
        status = httpx.get(f"http://127.0.0.1:{rest_port}/v1/models/{DEMO_MODEL_NAME}", timeout=10).json()
        print(f"gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}; status: {json.dumps(status)}")
        _banner("starting tfxformers proxy in front of it (gRPC backend; the proxy never imports TensorFlow)")
        proxy, proxy_url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models=DEMO_MODEL_NAME)
        url = f"{proxy_url}/v1/models/{DEMO_MODEL_NAME}:classify"
        print(f"proxy on {proxy_url}")

        picks = list(range(0, 8 * args.reviews, 8))
        reviews = [data.test.texts[i] for i in picks]
        truth = [data.label_names[data.test.labels[i]] for i in picks]
        _banner(f"POST {url} with {len(reviews)} held-out reviews")
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

    _banner(f"done in {time.perf_counter() - started:.0f} s; server and proxy stopped. Run the pieces by hand:")
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


LM_MODEL_NAME = "emma"
LM_PRESET = "mini"
LM_EPOCHS = 6
LM_PROMPTS = ("Emma Woodhouse, handsome, clever, and rich,", "Mr. Knightley", "It was a beautiful morning, and")
LM_NEW_TOKENS = 24


def run_lm_demo(args: argparse.Namespace) -> int:
    """Emma -> the LM pipeline -> serve -> proxy :generate (see the module docstring)."""
    import httpx

    from tfxformers.errors import UserError
    from tfxformers.pipeline.lm.runner import LmRunOptions, report_lm, run_lm_local
    from tfxformers.serving.layout import version_dirs
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

    started = time.perf_counter()
    root = args.pipeline_root if args.pipeline_root != f"pipelines/{DEMO_MODEL_NAME}" else f"pipelines/{LM_MODEL_NAME}"
    _banner(f"TFX pipeline: Emma's chapters -> BPE on the train chapters -> GPT-2 {LM_PRESET} ({LM_EPOCHS} epochs, "
            f"train gpt2's recipe) -> perplexity vs unigram / bigram baselines -> Pusher (LocalDagRunner, {root})")
    # Beam in-process: one novel is a few hundred examples, less than the start-up of Beam worker processes.
    summary = run_lm_local(LmRunOptions(corpus="emma", name=LM_MODEL_NAME, model_base=args.model_base,
                                        pipeline_root=root, preset=LM_PRESET, epochs=LM_EPOCHS,
                                        beam_args=["--direct_running_mode=in_memory"]))
    code = report_lm(summary)
    pipeline_seconds = time.perf_counter() - started
    if code != 0:
        return code
    versions = version_dirs(Path(args.model_base) / LM_MODEL_NAME)
    if not versions:
        raise UserError(f"the pipeline pushed no version to {args.model_base}/{LM_MODEL_NAME}")
    _banner(f"pipeline done in {pipeline_seconds:.0f} s; {args.model_base}/{LM_MODEL_NAME} holds versions {versions}")
    e = summary.evaluation
    print(f"held-out chapters: GPT-2 perplexity {e['eval_perplexity']:.1f}, unigram {e['unigram_perplexity']:.1f}, "
          f"bigram {e['bigram_perplexity']:.1f} ({e['eval_tokens']:,} tokens)")

    _banner(f"starting tfxformers serve on {args.model_base}")
    server, grpc_port, rest_port = start_model_server(args.model_base, wait_for=LM_MODEL_NAME)
    proxy = None
    try:
        print(f"gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}")
        proxy, proxy_url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models=LM_MODEL_NAME)
        url = f"{proxy_url}/v1/models/{LM_MODEL_NAME}:generate"
        _banner(f"POST {url}: {len(LM_PROMPTS)} prompts, greedy and sampled (seeded)")
        for prompt in LM_PROMPTS:
            for settings in ({"strategy": "greedy"}, {"strategy": "sample", "temperature": 0.8, "top_k": 40, "seed": 7}):
                answer = httpx.post(url, json={"prompt": prompt, "max_new_tokens": LM_NEW_TOKENS, **settings}, timeout=60)
                answer.raise_for_status()
                body = answer.json()
                print(f"[{settings['strategy']:>6}] {prompt}|{body['text']}".replace("\n", " "))
        print(f"answered by {body['model']} version {body['version']}")
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(server)

    _banner(f"done in {time.perf_counter() - started:.0f} s; server and proxy stopped. Run the pieces by hand:")
    base, tfx = args.model_base, tfxformers_here()
    print(f"""  {tfx} pipeline run --task lm --corpus emma --preset {LM_PRESET} --epochs {LM_EPOCHS} \\
      --name {LM_MODEL_NAME} --model-base {base} --pipeline-root {root}     # again: served from the cache
  {tfx} serve --model-base {base} --grpc-port 8500 --rest-port 8501 &
  {tfx} proxy --backend grpc://127.0.0.1:8500 --port 8000 &
  curl -s -X POST localhost:8000/v1/models/{LM_MODEL_NAME}:generate \\
      -H 'content-type: application/json' -d '{{"prompt": "Emma", "max_new_tokens": 20}}'""")
    return 0
