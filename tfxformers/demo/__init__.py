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

``tfxformers demo --task qa``: SQuAD 1.1 -> the question-answering pipeline (``pipeline.qa``: a seeded slice of
the training questions, a MiniLM reader trained for a budget of CPU minutes, scored on SQuAD dev against the
lexical baseline, Pusher) -> ``serving_models/qa/N`` -> ``tfxformers serve`` -> the proxy's ``:answer`` on
questions about two long BBC News articles.

One module per task (``sentiment``, ``lm``, ``qa``), what they share in ``common``.

The server and the proxy are started with the same helpers the tests use (``tfxformers.testing``): real
subprocesses on free 127.0.0.1 ports that die with the demo if it is killed.
"""
from __future__ import annotations

import argparse

from tfxformers.demo.common import DEMO_MODEL_BASE

TASKS = ("sentiment", "lm", "qa")


def register(commands, train_commands) -> None:
    demo = commands.add_parser("demo", help="run the main job end to end (what `make demo` runs)")
    demo.add_argument("--model-base", default=DEMO_MODEL_BASE, help="where blessed versions are pushed")
    demo.add_argument("--pipeline-root", default=None,
                      help="TFX artifacts, ML Metadata (SQLite) and logs (default pipelines/MODEL: sentiment, emma, qa)")
    demo.add_argument("--reviews", type=int, default=6, help="held-out reviews to send through the proxy")
    demo.add_argument("--task", default="sentiment", choices=TASKS,
                      help="sentiment (Rotten Tomatoes classifier, what `make demo` runs), lm (GPT-2 on Emma) or "
                           "qa (a SQuAD reader answering questions about long BBC News articles)")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.task == "lm":
        from tfxformers.demo.lm import run_lm_demo

        return run_lm_demo(args)
    if args.task == "qa":
        from tfxformers.demo.qa import run_qa_demo

        return run_qa_demo(args)
    from tfxformers.demo.sentiment import run_sentiment_demo

    return run_sentiment_demo(args)
