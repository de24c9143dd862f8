"""The TFX pipeline end to end: real LocalDagRunner, SQLite ML Metadata, a tiny BERT on a small CSV.

All TFX tests live in this one module and share module-scoped runs: the first ``from tfx import v1``
costs about 40 s. Beam runs in-process here (``--direct_running_mode=in_memory``): a multi-processing
worker imports TensorFlow and TFX again (about a minute per Beam component on this machine); the CLI's
default multi-processing mode is what ``docs/benchmarks.md``'s pipeline figures measure.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tfxformers.testing import requires_real

IN_PROCESS_BEAM = ["--direct_running_mode=in_memory"]
REVIEWS = ["a charming and moving film , great acting", "the plot is a tedious mess and the acting is flat",
           "fun", "boring boring boring slow dull script that was too long and the music was awful"]


def _options(root: Path, data: Path, encoder: Path, **overrides):
    from tfxformers.pipeline.classifier.runner import RunOptions

    values = dict(task="sentiment", data=str(data), text_column="review", label_column="sentiment",
                  encoder=str(encoder), name="tiny", model_base=str(root / "serving_models"),
                  pipeline_root=str(root / "pipeline"), epochs=8, learning_rate=3e-3, min_accuracy=0.0,
                  mode="partial", trainable_layers=1, beam_args=list(IN_PROCESS_BEAM))
    values.update(overrides)
    return RunOptions(**values)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("pipeline_e2e")


@pytest.fixture(scope="module")
def first_run(root, tiny_reviews_csv, tiny_bert_dir):
    from tfxformers.pipeline.classifier.runner import report, run_local

    out = io.StringIO()
    summary = run_local(_options(root, tiny_reviews_csv, tiny_bert_dir), out=out)
    code = report(summary, out=out)
    return summary, code, out.getvalue()


@pytest.fixture(scope="module")
def second_and_third_runs(first_run, root, tiny_reviews_csv, tiny_bert_dir):
    from tfxformers.pipeline.classifier.runner import run_local

    options = _options(root, tiny_reviews_csv, tiny_bert_dir)
    return run_local(options, out=io.StringIO()), run_local(options, out=io.StringIO())


def _versions(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) if model_dir.is_dir() else []


def test_every_component_ran_and_printed_its_progress(first_run):
    from tfxformers.pipeline.classifier.pipeline import COMPONENT_IDS

    summary, code, output = first_run
    executed = [c for c in COMPONENT_IDS if c != "latest_blessed_model_resolver"]
    assert {c: summary.states.get(c) for c in executed} == {c: "COMPLETE" for c in executed}, output
    for component in executed:
        assert f"] {component} ..." in output and f"] {component} done in " in output
    assert code == 0 and "pushed version 1 to" in output
    assert summary.test_metrics["examples"] > 0
    # The Trainer trained in partial mode (the top layer of 2 on cached states) and left no cache behind.
    info = json.loads((summary.trained_dir / "tfxformers.json").read_text())
    assert info["mode"] == "partial" and info["trainable_layers"] == 1
    assert not (summary.trained_dir / "hidden_cache").exists()
    # The Trainer handed its examples to fit_classifier with the real label names: no CSV in between, and
    # nothing rewritten afterwards.
    assert info["label_names"] == ["neg", "pos"]
    metrics = json.loads((summary.trained_dir / "metrics.json").read_text())
    assert sorted(metrics["per_class"]) == ["neg", "pos"] and metrics["label_names"] == ["neg", "pos"]
    assert sorted(p.name for p in summary.trained_dir.parent.iterdir()) == ["model"]
    # TFX's INFO logging went to the run's log file, not the terminal.
    assert "Component Trainer is running" in summary.log_file.read_text() and "INFO" not in output


def _examples(texts):
    import tensorflow as tf

    return [tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString()
        for t in texts]


def _keras_probabilities(trained_dir, texts):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import softmax
    from tfxformers.models.tokenization import tokenize_batch

    trained = load_trained(trained_dir)
    features = tokenize_batch(trained.tokenizer, texts)
    return softmax(np.asarray(trained.keras_model(features, training=False))), features


def test_pushed_version_is_an_integer_and_answers_like_the_trained_keras_model(first_run, root):
    import tensorflow as tf

    summary, _, _ = first_run
    model_dir = root / "serving_models" / "tiny"
    assert _versions(model_dir) == ["1"] and summary.pushed_version == 1
    expected, features = _keras_probabilities(summary.trained_dir, REVIEWS)

    served = tf.saved_model.load(str(model_dir / "1"))
    assert set(served.signatures) == {"serving_default", "tfxformers_metadata"}
    got = served.signatures["serving_default"](input_ids=tf.constant(features["input_ids"]),
                                               attention_mask=tf.constant(features["attention_mask"]))
    np.testing.assert_allclose(got["probabilities"].numpy(), expected, atol=1e-5)
    info = json.loads((model_dir / "1" / "assets.extra" / "tfxformers.json").read_text())
    assert info["version"] == 1 and info["label_names"] == ["neg", "pos"]
    assert (model_dir / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()

    # The Evaluator's model: the same weights, plus tf.Examples tokenized in the graph.
    evaluated = tf.saved_model.load(str(Path(summary.model_uri) / "Format-Serving"))
    by_example = evaluated.signatures["serving_examples"](examples=tf.constant(_examples(REVIEWS)))
    np.testing.assert_allclose(by_example["probabilities"].numpy(), expected, atol=1e-5)


def test_the_pushed_version_serves_through_tfxformers_serve_and_the_proxy(first_run, root):
    """Fresh server and proxy processes (neither imports tensorflow_text) answer like the trained Keras model."""
    import urllib.request

    import httpx

    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

    summary, _, _ = first_run
    expected, features = _keras_probabilities(summary.trained_dir, REVIEWS)
    process, grpc_port, rest_port = start_model_server(root / "serving_models", wait_for="tiny")
    proxy = None
    try:
        body = json.dumps({"signature_name": "serving_default",
                           "inputs": {k: features[k].tolist() for k in ("input_ids", "attention_mask")}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{rest_port}/v1/models/tiny:predict", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            outputs = json.loads(answer.read())["outputs"]
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/tiny", timeout=60) as answer:
            status = json.loads(answer.read())["model_version_status"]
        proxy, url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", log_path=root / "proxy.log")
        classified = httpx.post(url + "/v1/models/tiny:classify", json={"texts": REVIEWS}, timeout=60)
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(process)
    np.testing.assert_allclose(np.asarray(outputs["probabilities"]), expected, atol=1e-5)
    assert [str(s["version"]) for s in status if s["state"] == "AVAILABLE"] == ["1"]
    assert classified.status_code == 200, classified.text
    answer = classified.json()
    assert answer["version"] == 1
    got = [[result["probabilities"][label] for label in ("neg", "pos")] for result in answer["results"]]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_second_run_reuses_the_cache_and_pushes_nothing_new(second_and_third_runs, root):
    second, third = second_and_third_runs
    upstream = ["CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate", "Trainer"]
    assert {c: second.states.get(c) for c in upstream} == {c: "CACHED" for c in upstream}
    # The resolver now finds the model the first run blessed, so the Evaluator compares against it once;
    # the Pusher recognises the model and adds no version. After that, everything is cached.
    assert second.pushed and second.pushed_version == 1 and second.already_pushed
    # (The resolver is not a component that produces anything: it records a fresh lookup every run.)
    states = {node: state for node, state in third.states.items() if node != "latest_blessed_model_resolver"}
    assert len(states) == 8 and set(states.values()) == {"CACHED"}, third.states
    assert _versions(root / "serving_models" / "tiny") == ["1"]


def test_a_model_under_the_threshold_is_not_pushed_and_the_run_says_so(second_and_third_runs, root, tiny_reviews_csv,
                                                                       tiny_bert_dir):
    from tfxformers.pipeline.classifier.runner import report, run_local

    out = io.StringIO()
    summary = run_local(_options(root, tiny_reviews_csv, tiny_bert_dir, min_accuracy=1.0), out=out)
    code = report(summary, out=out)
    assert code == 1 and summary.blessed is False and summary.pushed is False
    assert "NOT pushed" in out.getvalue() and "sparse_categorical_accuracy" in out.getvalue()
    assert _versions(root / "serving_models" / "tiny") == ["1"]


def test_data_that_breaks_the_curated_schema_stops_before_training(tmp_path, tiny_bert_dir, capsys):
    from tfxformers.cli import main
    from tfxformers.pipeline.mlmd import latest_run_executions

    data = tmp_path / "three_classes.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(60):
            writer.writerow([f"the film was {['good', 'bad', 'fine'][i % 3]} {i}", ["pos", "neg", "mixed"][i % 3]])
    code = main(["pipeline", "run", "--task", "sentiment", "--data", str(data), "--encoder", str(tiny_bert_dir),
                 "--name", "bad", "--pipeline-root", str(tmp_path / "pipeline"),
                 "--model-base", str(tmp_path / "serving_models"), "--beam-args=" + " ".join(IN_PROCESS_BEAM)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the data does not match the curated schema")
    assert "'label'" in err and "Out-of-range" in err and "Traceback" not in err
    executions = latest_run_executions(tmp_path / "pipeline" / "metadata.sqlite", "tfxformers-bad")
    assert "ExampleValidator" in executions and "Trainer" not in executions
    assert not (tmp_path / "serving_models" / "bad").exists()


def test_data_without_the_text_column_is_refused_before_tfx_starts(tmp_path, tiny_reviews_csv, tiny_bert_dir, capsys):
    from tfxformers.cli import main

    code = main(["pipeline", "run", "--data", str(tiny_reviews_csv), "--encoder", str(tiny_bert_dir),
                 "--pipeline-root", str(tmp_path / "pipeline"), "--model-base", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == 2 and "has no column 'text'" in err
    assert not (tmp_path / "pipeline" / "metadata.sqlite").exists()


@pytest.mark.parametrize("flags, message", [
    (["--mode", "distilled"], "unknown mode 'distilled'"),
    (["--task", "translation"], "unknown task 'translation'"),
    (["--min-accuracy", "1.5"], "--min-accuracy must be between 0 and 1"),
    (["--epochs", "0"], "--epochs and --batch-size must be at least 1"),
    (["--max-length", "4"], "--max-length must be between 8 and 512"),
    (["--mode", "partial", "--trainable-layers", "3"], "--trainable-layers must be between 1 and the encoder's depth (2)"),
    (["--mode", "partial", "--trainable-layers", "0"], "--trainable-layers must be at least 1"),
    (["--mode", "frozen", "--trainable-layers", "1"], "--trainable-layers applies to --mode partial only"),
    (["--name", "a/b"], "model name 'a/b'"),
    (["--encoder", "/no/such/checkpoint"], "neither 'minilm', 'mpnet' nor a checkpoint directory"),
])
def test_bad_options_are_refused_before_tfx_starts(tmp_path, tiny_reviews_csv, tiny_bert_dir, capsys, flags, message):
    from tfxformers.cli import main

    argv = ["pipeline", "run", "--data", str(tiny_reviews_csv), "--text-column", "review", "--label-column",
            "sentiment", "--encoder", str(tiny_bert_dir), "--pipeline-root", str(tmp_path / "p"),
            "--model-base", str(tmp_path / "m")]
    code = main(argv + flags)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "p" / "metadata.sqlite").exists()


def test_the_sentiment_threshold_is_the_tfidf_baselines_eval_accuracy(tmp_path, tiny_reviews_csv):
    from tfxformers.models.classification.baseline import fit_tfidf_baseline
    from tfxformers.pipeline.classifier.data import read_split_csv, write_split_csvs
    from tfxformers.pipeline.classifier.runner import RunOptions, evaluator_threshold

    prepared = write_split_csvs(str(tiny_reviews_csv), tmp_path / "data", "review", "sentiment")
    threshold, baseline = evaluator_threshold(RunOptions(task="sentiment"), prepared.directory)
    val_texts, val_labels = read_split_csv(prepared.directory, "validation")
    expected = fit_tfidf_baseline(*read_split_csv(prepared.directory, "train"), val_texts, val_labels)
    assert threshold == baseline == expected.validation_accuracy and 0.5 < threshold <= 1.0
    assert len(val_texts) == prepared.counts["validation"]
    assert evaluator_threshold(RunOptions(task="sentiment", min_accuracy=0.6), prepared.directory) == (0.6, None)
    assert evaluator_threshold(RunOptions(task="classification"), prepared.directory) == (0.7, None)


def test_compiled_vertex_spec_names_every_component(tmp_path, tiny_reviews_csv, tiny_bert_dir, monkeypatch, capsys):
    from tfxformers.cli import main
    from tfxformers.pipeline.classifier.pipeline import COMPONENT_IDS

    monkeypatch.chdir(tmp_path)
    output = tmp_path / "pipeline.json"
    code = main(["pipeline", "compile", "--runner", "vertex", "--output", str(output), "--data", str(tiny_reviews_csv),
                 "--text-column", "review", "--label-column", "sentiment", "--image", "example.com/tfxformers:1",
                 "--pipeline-root", "gs://bucket/root", "--data-root", "gs://bucket/data",
                 "--model-base", "gs://bucket/serving_models"])
    assert code == 0, capsys.readouterr()
    spec = json.loads(output.read_text())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"] if "pipelineSpec" in spec else spec["root"]["dag"]["tasks"]
    # Kubeflow V2 compiles the resolver into one lookup task per channel, named after it.
    missing = [c for c in COMPONENT_IDS if not any(t == c or t.startswith(c + "-") for t in tasks)]
    assert missing == [] and len(tasks) >= len(COMPONENT_IDS)
    text = output.read_text()
    assert "example.com/tfxformers:1" in text and "gs://bucket/data" in text
    assert "/opt/tfxformers/pipeline/schema/sentiment.pbtxt" in text


def _tokenizer_mismatches(tokenizer, texts, max_length=128):
    import tensorflow as tf

    from tfxformers.models.tokenization import encode_texts
    from tfxformers.pipeline.classifier.signatures import InGraphTokenizer

    expected = encode_texts(tokenizer, texts, max_length).ids
    ids, mask = InGraphTokenizer(tokenizer, max_length)(tf.constant(texts))
    ids, mask = ids.numpy(), mask.numpy()
    return [(text, want, ids[i][mask[i] == 1].tolist()) for i, (text, want) in enumerate(zip(texts, expected))
            if ids[i][mask[i] == 1].tolist() != want]


def test_in_graph_tokenizer_gives_the_hugging_face_ids(tiny_bert_dir):
    from tfxformers.models.encoders.bert import load_bert_tokenizer

    tokenizer = load_bert_tokenizer(tiny_bert_dir)
    texts = ["Hello, World!", "  ÉMMA   was  Café-bound\tand\nhappy ", "½ price\u00ad deals \u2011 today",
             "x" * 150, " ".join(["film"] * 300), "unknown日本語 words"]
    assert _tokenizer_mismatches(tokenizer, texts) == []
    assert _tokenizer_mismatches(tokenizer, texts, max_length=16) == []


def test_in_graph_tokenizer_gives_the_hugging_face_ids_for_mpnet(tmp_path):
    """MPNet's WordPiece: <s> ... </s> framing, pad 1 and [UNK] (not <unk>) from its own tokenizer."""
    import tensorflow as tf

    from transformers import MPNetTokenizerFast

    from tfxformers.models import encoders
    from tfxformers.pipeline.classifier.signatures import in_graph_tokenizer
    from tfxformers.testing import tiny_mpnet_vocab

    (tmp_path / "vocab.txt").write_text("\n".join(tiny_mpnet_vocab()) + "\n")  # make_tiny_checkpoint's vocabulary
    tokenizer = MPNetTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), do_lower_case=True)
    texts = ["Hello, World!", "  ÉMMA   was  Café-bound\tand\nhappy ", "unknown日本語 words", "x" * 150]
    assert _tokenizer_mismatches(tokenizer, texts) == [] and _tokenizer_mismatches(tokenizer, texts, 16) == []
    ids, mask = in_graph_tokenizer(tokenizer, 16, encoders.spec_for("mpnet").tokenizer_kind)(tf.constant(["a", "the plot"]))
    assert ids.numpy()[0].tolist()[:4] == [0, tokenizer.convert_tokens_to_ids("a"), 2, 1]  # <s> a </s> <pad>


@pytest.mark.real
@requires_real("rotten_tomatoes", "minilm")
def test_in_graph_tokenizer_matches_hugging_face_on_the_rotten_tomatoes_test_split():
    from tfxformers.models.data.classification import load_classification
    from tfxformers.models.data.sources import minilm_dir
    from tfxformers.models.encoders.bert import load_bert_tokenizer

    texts = load_classification("rotten_tomatoes").test.texts
    mismatches = _tokenizer_mismatches(load_bert_tokenizer(minilm_dir()), texts)
    assert len(texts) > 1000 and mismatches == []
