"""A trained tagger answered by the proxy's ``:tag``, by the model server alone, and in process, on a whole
held-out split: the same answers? how fast?

Run:  flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_tag_serving.py [--model runs/bench-tagging/ner-minilm]
      [--data ner-tweets] [--rounds 3] [--batch 32] [--limit N]
Needs a ``tfxformers train tagger`` run (``bench/bench_tagging.py --configs ner-minilm`` writes the default one).

The model is exported into a temporary model base and served by ``tfxformers serve`` with batching on, with a
``tfxformers proxy`` (gRPC backend) in front. Each test sentence (its words joined by spaces, as ``tfxformers
tag`` would get it) is tagged three ways, ``--batch`` texts per request or call:

* ``in_process``: ``tag_texts`` on the Keras model (what ``tfxformers tag`` does);
* ``server``: the same function fed from the server's REST ``:predict`` on the ``tag`` signature;
* ``proxy``: ``POST /v1/models/tagger:tag`` with the raw texts (the proxy tokenizes, windows, calls the server over
  gRPC and decodes), one request at a time; ``proxy_4_clients``: four clients at once.

Compared with in process: every entity's (or word's) label, start and end; scores (rounded to 4 decimals)
within 1.5e-4. Throughput: texts per second of each side over the whole split, the sides in turn, median of
``--rounds``; all sides run on this machine in this one run. Results: bench/results/tag_serving.json, one entry
per model directory name.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def items(result: dict) -> list:
    key = "entities" if "entities" in result else "tokens"
    return [(i.get("entity") or i.get("tag"), i["start"], i["end"], i["score"]) for i in result[key]]


def same(a: dict, b: dict) -> bool:
    x, y = items(a), items(b)
    # scores are rounded to 4 decimals: two values a float hair apart may round one unit apart
    return len(x) == len(y) and all(p[:3] == q[:3] and abs(p[3] - q[3]) <= 1.5e-4 for p, q in zip(x, y))


def proxy_tag(url: str, texts: list[str]) -> list[dict]:
    """The proxy's ``:tag`` answers for ``texts``, each with its text (as ``tag_texts`` gives it)."""
    import httpx

    response = httpx.post(url + "/v1/models/tagger:tag", json={"texts": texts}, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f":tag answered {response.status_code}: {response.text[:500]}")
    return [{"text": text, **result} for text, result in zip(texts, response.json()["results"])]


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
    from tfxformers.testing import rest_tag_predict, start_model_server, start_proxy, stop_model_server, stop_process

    trained = load_tagger(args.model)
    data = args.data or trained.info.get("data")
    test = load_tagged(data).test.subset(args.limit)
    texts = [decode.join_words(words)[0] for words in test.words]
    chunks = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        export_model(args.model, "tagger", Path(tmp) / "models")
        server, grpc_port, rest_port = start_model_server(Path(tmp) / "models", enable_batching=True, timeout=600)
        proxy = None
        try:
            proxy, url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models="tagger", log_path=Path(tmp) / "proxy.log",
                                     extra_args=["--max-texts", str(max(64, args.batch))])
            predict = rest_tag_predict(rest_port, "tagger")
            sides = {"in_process": lambda chunk: tag_texts(trained, chunk),
                     "server": lambda chunk: tag_texts(trained, chunk, predict=predict),
                     "proxy": lambda chunk: proxy_tag(url, chunk)}
            local = [r for chunk in chunks for r in sides["in_process"](chunk)]
            equal, mismatches = {}, {}
            for side in ("server", "proxy"):
                answers = [r for chunk in chunks for r in sides[side](chunk)]
                equal[side] = sum(same(a, b) for a, b in zip(local, answers))
                mismatches[side] = [{"index": i, "text": a["text"],
                                     "in_process": [x for x in items(a) if x not in items(b)],
                                     side: [x for x in items(b) if x not in items(a)]}
                                    for i, (a, b) in enumerate(zip(local, answers)) if not same(a, b)][:5]
            rates = {side: [] for side in (*sides, "proxy_4_clients")}
            for _ in range(args.rounds):
                for side, fn in sides.items():
                    started = time.perf_counter()
                    for chunk in chunks:
                        fn(chunk)
                    rates[side].append(len(texts) / (time.perf_counter() - started))
                started = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda chunk: proxy_tag(url, chunk), chunks))
                rates["proxy_4_clients"].append(len(texts) / (time.perf_counter() - started))
        finally:
            if proxy is not None:
                stop_process(proxy)
            stop_model_server(server)
    medians = {side: statistics.median(v) for side, v in rates.items()}
    result = {"model": args.model, "data": data, "split": "test", "texts": len(texts),
              "labels_and_offsets_equal": equal, "first_mismatches": mismatches,
              "batch": args.batch, "rounds": args.rounds, "texts_per_second": {k: [round(x, 1) for x in v] for k, v in rates.items()},
              "median_texts_per_second": {k: round(v, 1) for k, v in medians.items()},
              "over_in_process": {k: round(v / medians["in_process"], 2) for k, v in medians.items() if k != "in_process"},
              "command": "flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/bench_tag_serving.py " + " ".join(argv or sys.argv[1:])}
    print(json.dumps(result, indent=2))
    if args.limit is None:
        out = ROOT / "bench" / "results" / "tag_serving.json"
        report = json.loads(out.read_text()) if out.is_file() else {}
        report = report if "model" not in report else {}  # the one-run layout of an older version
        report[Path(args.model).name] = result
        out.write_text(json.dumps(report, indent=2))
    return 0 if all(n == len(texts) for n in equal.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
