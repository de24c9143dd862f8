"""Score a trained question-answering model on the full SQuAD 1.1 dev set (10,570 questions) with the official v1.1 metric.

    flock /tmp/tfxformers-heavy.lock nice -n 5 .venv/bin/python bench/bench_squad_eval.py \
        --model pipelines/qa/artifacts/Trainer/model_run/N/model --output bench/results/squad_demo_reader.json

``--model`` is a ``tfxformers train qa`` directory (what the QA pipeline's Trainer writes under its model run,
and what ``bench/bench_squad.py`` keeps in ``weights/`` is not: that one scores itself). The model answers every
dev question with its own window length and stride (``models.qa.inference.predict_examples``, the code
``tfxformers answer`` runs); ``--every N`` scores every N-th question only (1,057 at 10, the curve's subset).
Writes exact match, F1, the lexical baseline on the same questions, the seconds it took and the model's recipe.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a `tfxformers train qa` directory")
    parser.add_argument("--output", required=True, help="JSON file for the scores")
    parser.add_argument("--every", type=int, default=1, help="score every N-th dev question (default: all)")
    args = parser.parse_args(argv)

    from tfxformers.models.qa import baseline, inference, metrics, squad
    from tfxformers.models.qa.model import load_qa

    dev, _ = squad.load("squad-dev")
    dev = dev[::args.every]
    trained = load_qa(args.model)
    started = time.perf_counter()
    predictions = inference.predict_examples(trained, dev, max_answer_len=30)
    seconds = time.perf_counter() - started
    scores = metrics.score_v1(predictions, {e.id: [t for t, _ in e.answers] for e in dev})
    info_file = Path(args.model) / "metrics.json"
    result = {"model": str(args.model), "questions": len(dev), "every": args.every, **scores,
              "seconds": round(seconds, 1), "baseline": baseline.evaluate(dev),
              "max_seq_len": trained.max_seq_len, "doc_stride": trained.doc_stride,
              "training": json.loads(info_file.read_text()) if info_file.is_file() else None}
    if result["training"]:
        result["training"].pop("examples", None)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"{len(dev)} dev questions: exact match {scores['exact_match']:.1f}, F1 {scores['f1']:.1f} "
          f"(lexical baseline {result['baseline']['exact_match']:.1f} / {result['baseline']['f1']:.1f}) in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
