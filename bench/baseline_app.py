"""The textbook baseline for the load tests: one FastAPI process that tokenizes and runs the Keras model
in-process for every request ("Mastering Transformers", ch. 10, plain FastAPI + in-process model).

    .venv/bin/python bench/baseline_app.py --model runs/rt-frozen --port 8100

It answers ``POST /v1/models/{name}:classify`` with the proxy's request and answer shape, so one Locust
file drives both. Each request is tokenized with the Hugging Face tokenizer (padding to the longest text,
truncation at the model's max length) and run through the Keras model eagerly, as the textbook does.

``--graph`` is a stronger in-process variant that is not the textbook's: the model call is one
``tf.function`` with a dynamic-shape signature and texts are padded to length buckets, so it runs as a
graph like the SavedModel does. It separates "graph vs eager" from "separate server vs in-process".
"""
from __future__ import annotations

import argparse
import sys

from pydantic import BaseModel, Field, StrictStr

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)


class TextsRequest(BaseModel):
    texts: list[StrictStr] = Field(..., min_length=1)


def create_app(model_dir: str, graph: bool = False):
    import numpy as np
    from fastapi import FastAPI

    from tfxformers.models.artifacts import load_trained

    trained = load_trained(model_dir)
    model, tokenizer, labels = trained.keras_model, trained.tokenizer, trained.label_names
    app = FastAPI(title="textbook baseline: tokenizer + Keras model in-process")
    run = lambda features: model(features, training=False)  # noqa: E731
    if graph:
        import tensorflow as tf

        spec = tf.TensorSpec((None, None), tf.int32)
        run = tf.function(lambda ids, mask: model({"input_ids": ids, "attention_mask": mask}, training=False),
                          input_signature=[spec, spec])

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    # A plain ``def`` endpoint: FastAPI runs it in its thread pool, as the textbook's app does.
    @app.post("/v1/models/{name}:classify")
    def classify(name: str, body: TextsRequest):
        if graph:
            from tfxformers.models.tokenization import tokenize_batch

            features = tokenize_batch(tokenizer, body.texts, trained.max_length)
            logits = np.asarray(run(features["input_ids"], features["attention_mask"]))
        else:
            features = tokenizer(body.texts, padding=True, truncation=True, max_length=trained.max_length,
                                 return_tensors="np", return_token_type_ids=False)
            logits = np.asarray(run({k: features[k].astype(np.int32) for k in ("input_ids", "attention_mask")}))
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities = exp / exp.sum(-1, keepdims=True)
        results = [{"label": labels[int(p.argmax())], "probability": float(p.max()),
                    "probabilities": dict(zip(labels, map(float, p)))} for p in probabilities]
        return {"model": name, "version": 0, "results": results}

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a `tfxformers train classifier` output directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--graph", action="store_true", help="tf.function + length buckets (not the textbook)")
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(create_app(args.model, args.graph), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
