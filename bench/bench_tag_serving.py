"""A trained tagger served by ``tfxformers serve`` vs in process, on a whole held-out split: same answers? how fast?

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_tag_serving.py [--model runs/bench-tagging/ner-minilm]
      [--data ner-tweets] [--rounds 3] [--batch 32] [--limit N]
Needs a ``tfxformers train tagger`` run (``bench/bench_tagging.py --configs ner-minilm`` writes the default one).

The model is exported into a temporary model base and served with batching on; each test sentence (its words
joined by spaces, as ``tfxformers tag`` would get it) is tagged by ``tag_texts`` in process and by the same
function fed from the server's REST ``:predict`` on the ``tag`` signature, ``--batch`` texts per request.
Compared: every entity's (or word's) label, start and end; scores (rounded to 4 decimals) within 1.5e-4. Throughput: texts per second
of each side over the whole split, alternating sides, median of ``--rounds``; both sides run on this machine
in this process's run. The proxy's ``:tag`` route is not built yet, so the served side here is the model
server alone. Results: bench/results/tag_serving.json, one entry per model directory name.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def items(result: dict) -> list:
    key = "entities" if "entities" in result else "tokens"
    return [(i.get("type") or i.get("tag"), i["start"], i["end"], i["score"]) for i in result[key]]


def same(a: dict, b: dict) -> bool:
    x, y = items(a), items(b)
    # scores are rounded to 4 decimals: two values a float hair apart may round one unit apart
    return len(x) == len(y) and all(p[:3] == q[:3] and abs(p[3] - q[3]) <= 1.5e-4 for p, q in zip(x, y))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "bench-tagging" / "ner-minilm"))
    parser.add_argument("--data", default=None, help="default: the data the model was trained on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="only the first N test sentences (a smoke run)")
    args = parser.parse_args(argv)

    import tfxformers  # noqa: F401
    from tfxformers.models.tagging import decode
    from tfxformers.models.tagging.data import load_tagged
    from tfxformers.models.tagging.inference import tag_texts
    from tfxformers.models.tagging.model import load_tagger
    from tfxformers.serving.export.trained import export_model
    from tfxformers.testing import rest_tag_predict, start_model_server, stop_model_server

    trained = load_tagger(args.model)
    data = args.data or trained.info.get("data")
    test = load_tagged(data).test.subset(args.limit)
    texts = [decode.join_words(words)[0] for words in test.words]
    chunks = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        export_model(args.model, "tagger", Path(tmp) / "models")
        server, _, rest_port = start_model_server(Path(tmp) / "models", enable_batching=True, timeout=600)
        try:
            predict = rest_tag_predict(rest_port, "tagger")
            local = [r for chunk in chunks for r in tag_texts(trained, chunk)]
            served = [r for chunk in chunks for r in tag_texts(trained, chunk, predict=predict)]
            equal = sum(same(a, b) for a, b in zip(local, served))
            mismatches = [{"index": i, "text": a["text"], "in_process": items(a), "served": items(b)}
                          for i, (a, b) in enumerate(zip(local, served)) if not same(a, b)][:5]
            rates = {"in_process": [], "served": []}
            for _ in range(args.rounds):
                for side, fn in (("in_process", None), ("served", predict)):
                    started = time.perf_counter()
                    for chunk in chunks:
                        tag_texts(trained, chunk, predict=fn)
                    rates[side].append(len(texts) / (time.perf_counter() - started))
        finally:
            stop_model_server(server)
    medians = {side: statistics.median(v) for side, v in rates.items()}
    result = {"model": args.model, "data": data, "split": "test", "texts": len(texts), "equal": equal,
              "first_mismatches": [{**m, "in_process": [x for x in m["in_process"] if x not in m["served"]],
                                    "served": [x for x in m["served"] if x not in m["in_process"]]} for m in mismatches],
              "batch": args.batch, "rounds": args.rounds, "texts_per_second": {k: [round(x, 1) for x in v] for k, v in rates.items()},
              "median_texts_per_second": {k: round(v, 1) for k, v in medians.items()},
              "served_over_in_process": round(medians["served"] / medians["in_process"], 2),
              "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_tag_serving.py " + " ".join(argv or sys.argv[1:])}
    print(json.dumps(result, indent=2))
    if args.limit is None:
        out = ROOT / "bench" / "results" / "tag_serving.json"
        report = json.loads(out.read_text()) if out.is_file() else {}
        report = report if "model" not in report else {}  # the one-run layout of an older version
        report[Path(args.model).name] = result
        out.write_text(json.dumps(report, indent=2))
    return 0 if equal == len(texts) else 1


if __name__ == "__main__":
    sys.exit(main())
