"""``tfxformers demo --task qa``: a SQuAD reader trained through the QA pipeline, served, and asked about two long
BBC News articles through the proxy's ``:answer``.

SQuAD 1.1 (fetched by ``tfxformers data fetch``) -> ``pipeline run --task qa`` with the demo's recipe (a seeded
slice of the training questions, MiniLM with a span head trained for a budget of CPU minutes, the evaluator
scoring the exported SavedModel on every 10th SQuAD dev question against the lexical baseline) ->
``serving_models/qa/N`` -> ``tfxformers serve`` -> ``tfxformers proxy`` -> questions about two BBC News articles
of the project's own data, each over 3,000 MiniLM tokens (so a dozen or more windows), some answered in the
last third of the article. Each answer is printed with its score, the sentence it came from and where in
the article it is; the expected answer is printed beside it (these articles are not SQuAD's).
"""
from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass

from tfxformers.demo.common import banner, pushed_versions, served, tfxformers_here

QA_MODEL_NAME = "qa"
# The demo's recipe (docs/benchmarks.md, "SQuAD 1.1": the demo recipe's full-dev figure and the curve it
# was chosen from): what fits 10 minutes of pipeline time on 2 CPU cores.
QA_LIMIT_TRAIN = 5000
QA_BUDGET_CPU_MINUTES = 12.0
QA_MAX_SEQ_LEN = 192
QA_DOC_STRIDE = 64
QA_BATCH_SIZE = 16
QA_LEARNING_RATE = 2e-4
QA_EVAL_STRIDE = 10
QA_TRAINER_EVAL_QUESTIONS = 100


@dataclass(frozen=True)
class Question:
    question: str
    expected: str


# Two of the longest BBC News articles in the bbc_news source, found by their first line (the title).
ARTICLES = {
    "Minimum wage increased to £5.05": (
        Question("How much must adults be paid an hour?", "£5.05"),
        Question("When was the minimum wage introduced?", "1999"),
        Question("Who is the chairman of the Low Pay Commission?", "Adair Turner"),
        Question("How many staff does the employer whose wages mirror the minimum wage employ?", "42"),
        Question("What share of the employer's costs is labour?", "80%"),
    ),
    "Losing yourself in online gaming": (
        Question("Which video game hit the shops in Europe last week?", "World of Warcraft"),
        Question("How much did the player sell his Jedi account for?", "£800"),
        Question("Which game dominated two years of the writer's life?", "Ultima Online"),
        Question("Which club does the Football Manager player win the league with?", "Cambridge United"),
    ),
}


def find_articles(texts) -> dict[str, str]:
    """The demo's articles out of the bbc_news texts, by title; a clear error if the data changed."""
    from tfxformers.errors import UserError

    found = {}
    for text in texts:
        title = text.strip().split("\n", 1)[0].strip()
        if title in ARTICLES and title not in found:
            found[title] = text
    missing = [t for t in ARTICLES if t not in found]
    if missing:
        raise UserError(f"the bbc_news data set has no article titled {missing[0]!r}; "
                        "run `tfxformers data fetch bbc_news`")
    return found


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence (or line) holding ``text[start:end]``: from the last sentence end before it to the next after."""
    left = max((m.end() for m in re.finditer(r"[.!?]\s|\n", text[:start])), default=0)
    tail = re.search(r"[.!?](\s|$)|\n", text[end:])
    right = end + tail.end() if tail else len(text)
    return " ".join(text[left:right].split())


def run_qa_demo(args: argparse.Namespace) -> int:
    """SQuAD -> the QA pipeline -> serve -> proxy :answer about two BBC articles (see the module docstring)."""
    import httpx

    from tfxformers.models.data.classification import load_classification
    from tfxformers.pipeline.qa.runner import QaRunOptions, report_qa, run_qa_local

    started = time.perf_counter()
    root = args.pipeline_root or f"pipelines/{QA_MODEL_NAME}"
    data = load_classification("bbc_news")
    articles = find_articles([*data.train.texts, *data.validation.texts, *data.test.texts])
    banner(f"TFX pipeline: SQuAD 1.1 ({QA_LIMIT_TRAIN:,} training questions, seeded) -> MiniLM + span head "
           f"({QA_BUDGET_CPU_MINUTES:g} CPU minutes, windows of {QA_MAX_SEQ_LEN} tokens) -> evaluator on every "
           f"{QA_EVAL_STRIDE}th dev question (must beat the lexical baseline) -> Pusher (LocalDagRunner, {root})")
    options = QaRunOptions(data="squad", eval_data="squad-dev", limit_train=QA_LIMIT_TRAIN, eval_stride=QA_EVAL_STRIDE,
                           budget_cpu_minutes=QA_BUDGET_CPU_MINUTES, max_seq_len=QA_MAX_SEQ_LEN,
                           doc_stride=QA_DOC_STRIDE, batch_size=QA_BATCH_SIZE, learning_rate=QA_LEARNING_RATE,
                           name=QA_MODEL_NAME, model_base=args.model_base, pipeline_root=root,
                           # The evaluator scores every eval question; the Trainer's own score is a quick check.
                           trainer_eval_questions=QA_TRAINER_EVAL_QUESTIONS)
    summary = run_qa_local(options)
    code = report_qa(summary)
    pipeline_seconds = time.perf_counter() - started
    if code != 0:
        return code
    pushed_versions(args.model_base, QA_MODEL_NAME, pipeline_seconds)
    e = summary.evaluation
    print(f"SQuAD 1.1 dev ({e['questions']:,} questions, every {QA_EVAL_STRIDE}th): served reader exact match "
          f"{e['exact_match']:.1f}, F1 {e['f1']:.1f}; lexical baseline {e['baseline_exact_match']:.1f} / "
          f"{e['baseline_f1']:.1f}")

    with served(args.model_base, QA_MODEL_NAME) as ports:
        url = f"{ports.proxy_url}/v1/models/{QA_MODEL_NAME}:answer"
        hits = total = 0
        for title, questions in ARTICLES.items():
            context = articles[title]
            banner(f"POST {url}: {title!r} ({len(context):,} characters)")
            for q in questions:
                reply = httpx.post(url, json={"question": q.question, "context": context}, timeout=120)
                reply.raise_for_status()
                body = reply.json()
                best = body["answers"][0]
                hit = best["answer"].strip(" .,").lower() == q.expected.lower()
                hits, total = hits + hit, total + 1
                where = best["start"] / len(context)
                print(f"[{'ok ' if hit else 'MISS'}] {q.question}\n       answer {best['answer']!r} (score "
                      f"{best['score']:.2f}, expected {q.expected!r}) at {where:.0%} of the article, "
                      f"{body['windows']} windows\n       sentence: {sentence_around(context, best['start'], best['end'])}")
        print(f"{hits} of {total} answers as expected; answered by {body['model']} version {body['version']}")

    banner(f"done in {time.perf_counter() - started:.0f} s; server and proxy stopped. Run the pieces by hand:")
    base, tfx = args.model_base, tfxformers_here()
    print(f"""  {tfx} pipeline run --task qa --data squad --eval-data squad-dev --limit-train {QA_LIMIT_TRAIN} \\
      --budget-cpu-minutes {QA_BUDGET_CPU_MINUTES:g} --max-seq-len {QA_MAX_SEQ_LEN} --learning-rate {QA_LEARNING_RATE:g} \\
      --name {QA_MODEL_NAME} --model-base {base} --pipeline-root {root}     # again: served from the cache
  {tfx} serve --model-base {base} --grpc-port 8500 --rest-port 8501 &
  {tfx} proxy --backend grpc://127.0.0.1:8500 --port 8000 &
  curl -s -X POST localhost:8000/v1/models/{QA_MODEL_NAME}:answer -H 'content-type: application/json' \\
      -d '{{"question": "When is the cake done?", "context": "Bake for 30 minutes. It is done when it springs back."}}'""")
    return 0
