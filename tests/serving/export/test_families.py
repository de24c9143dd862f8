"""RoBERTa, DistilBERT, ELECTRA and MPNet classifiers end to end (BERT's path is tests/serving/proxy/test_proxy.py):
tiny checkpoints saved from task heads or as tf_model.h5, fine-tuned a few steps, exported, served by one
real ``tfxformers serve`` with server-side batching, classified through a real proxy, every answer equal
to the Keras model's; concurrent requests of different lengths (padded by the batcher with each tensor's
first element) too; and the pipeline's ``serving_examples`` signature (in-graph tokenizer per family)."""
from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest

from tfxformers.testing import make_tiny_checkpoint, start_model_server, start_proxy, stop_model_server, stop_process

ROOT = Path(__file__).resolve().parents[3]
# Each family from another kind of checkpoint: a sequence-classification head's safetensors, Keras h5,
# ELECTRA's released form (ForPreTraining: the discriminator with its head), and MPNet's bare base model in
# safetensors as all-mpnet-base-v2 is (its WordPiece ids framed as <s> ... </s>, pad 1: the proxy and the
# batching-safe mask take them from the export's metadata).
FAMILIES = {"roberta": dict(head=True), "distilbert": dict(weights_format="h5"), "electra": dict(head=True),
            "mpnet": dict()}
# DistilBERT and ELECTRA frame WordPiece ids as BERT does, whose export both stacks serve in the proxy tests:
# they run on the current stack only where `make test` runs both (RoBERTa's byte-level BPE and MPNet's
# <s> ... </s> framing, the graphs most likely to differ between TF Text releases, run on both).
CURRENT_STACK_ONLY = ("distilbert", "electra")


def _params(families) -> list:
    return [pytest.param(f, marks=pytest.mark.once) if f in CURRENT_STACK_ONLY else f for f in families]


TEXTS = ["a brilliant and moving film", "boring , dull and far too long", "the plot", "Fun!",
         "It's   a  charming,\nfunny film"]
LONG_TEXT = " ".join(f"the acting was good but the script was {w} and slow" for w in ("weak", "flat", "dull", "weak"))


def _selected(request) -> list[str]:
    """The families some test of this module that is to run takes (after `-m` and `-k` deselected the rest)."""
    wanted = {item.callspec.params.get("family") for item in request.session.items
              if item.path == request.path and hasattr(item, "callspec")}
    return [f for f in FAMILIES if f in wanted]


@pytest.fixture(scope="module")
def family_models(request, tiny_reviews_csv, tmp_path_factory):
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.serving.export.trained import export_model

    root = tmp_path_factory.mktemp("families")
    runs = {}
    for family in _selected(request):
        kwargs = FAMILIES[family]
        checkpoint = make_tiny_checkpoint(root / f"{family}_checkpoint", family, **kwargs)
        run = root / f"{family}_run"
        train_classifier(ClassifierTrainConfig(
            data=str(tiny_reviews_csv), text_column="review", label_column="sentiment", encoder=str(checkpoint),
            mode="finetune", output=str(run), epochs=1, batch_size=32, max_length=32, verbose=0))
        export_model(run, family, root / "models")
        runs[family] = run
    return {"root": root, "base": root / "models", "runs": runs}


@pytest.fixture(scope="module")
def served(family_models):
    params = family_models["root"] / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 200000 }\n"
                      "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 20 }\n"
                      "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\npad_variable_length_inputs: true\n")
    server, grpc_port, rest_port = start_model_server(family_models["base"], enable_batching=True,
                                                      batching_parameters_file=params)
    proxy = None
    try:
        proxy, url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models=",".join(family_models["runs"]))
        yield {"rest_port": rest_port, "proxy": url}
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(server)


def _keras(run, texts):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import windowed_probabilities

    trained = load_trained(run)
    probabilities, windows, _ = windowed_probabilities(trained.keras_model, trained.tokenizer, texts,
                                                       max_length=trained.max_length, overlap=32)
    return probabilities, windows, trained


@pytest.mark.parametrize("family", _params(FAMILIES))
def test_classify_through_the_proxy_equals_the_keras_model(family, family_models, served):
    texts = TEXTS + [LONG_TEXT]
    response = httpx.post(f"{served['proxy']}/v1/models/{family}:classify", json={"texts": texts}, timeout=60)
    assert response.status_code == 200, response.text
    expected, windows, trained = _keras(family_models["runs"][family], texts)
    assert windows[-1] > 1  # the long text went through the family's own framing of windows
    for result, row, n in zip(response.json()["results"], expected, windows):
        np.testing.assert_allclose([result["probabilities"][label] for label in trained.label_names], row, atol=1e-5)
        assert result["windows"] == n


@pytest.mark.parametrize("family", _params(FAMILIES))
def test_concurrent_requests_padded_by_the_batcher_equal_the_keras_model(family, family_models, served):
    expected, _, trained = _keras(family_models["runs"][family], TEXTS)
    rows = [trained.tokenizer(text)["input_ids"] for text in TEXTS]
    assert len({len(r) for r in rows}) > 2
    answers, errors = {}, []
    barrier = threading.Barrier(len(rows))

    def call(i):
        body = json.dumps({"instances": [{"input_ids": rows[i], "attention_mask": [1] * len(rows[i])}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{served['rest_port']}/v1/models/{family}:predict",
                                         data=body, headers={"Content-Type": "application/json"})
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                answers[i] = np.asarray(json.loads(answer.read())["predictions"][0]["probabilities"])
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i, probabilities in answers.items():
        np.testing.assert_allclose(probabilities, expected[i], atol=1e-5)
    assert len(answers) == len(rows)


@pytest.mark.parametrize("family", _params(["roberta", "distilbert", "mpnet"]))
def test_pipeline_examples_signature_tokenizes_in_the_graph_like_the_keras_path(family, family_models, tmp_path):
    """The Trainer's Format-Serving signature for the Evaluator: tf.Examples in, the family's tokenizer in
    the graph (byte-level BPE for RoBERTa, WordPiece for DistilBERT and MPNet, whose <s> ... </s> ids come
    from its tokenizer), same probabilities as Keras."""
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.pipeline.classifier.signatures import EXAMPLES_SIGNATURE, examples_signature_builder
    from tfxformers.serving.export.trained import write_trained

    expected, _, trained = _keras(family_models["runs"][family], TEXTS)
    kind = encoders.spec_for(trained.info["encoder_config"]).tokenizer_kind
    assert kind == ("byte_bpe" if family == "roberta" else "wordpiece")
    out = write_trained(trained, tmp_path / "serving", name=family,
                        extra_signatures=examples_signature_builder(trained.tokenizer, trained.max_length, kind))
    examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in TEXTS]
    signature = tf.saved_model.load(str(out)).signatures[EXAMPLES_SIGNATURE]
    got = signature(examples=tf.constant(examples))["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
