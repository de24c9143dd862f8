"""The language-model TFX pipeline end to end: real LocalDagRunner, SQLite ML Metadata, a tiny GPT-2.

The corpus is twenty small documents of a cyclic word sequence: the next word follows from the current
one, so the tiny preset learns it in seconds and must beat the bigram baseline (interpolated with the
unigram, so never perfect) to be blessed. Beam runs in-process (see test_pipeline.py for why).

The tests on the trained run are marked ``once`` (the current stack only where ``make test`` runs both stacks),
as the QA pipeline's are: the legacy stack still runs this pipeline's components up to its gate (the empty and
non-UTF-8 documents test) and the classifier pipeline's whole Trainer -> Evaluator -> Pusher run, serving and
cache (``tests/pipeline/classifier``); the legacy run of this one cost about 3 worker-minutes of the test
budget (TFX 1.16's start-up, training, a server and a proxy) for the same TFX calls.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

IN_PROCESS_BEAM = ["--direct_running_mode=in_memory"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
PROMPTS = ["alpha beta gamma", "kappa lambda"]
NEW_TOKENS = 12


def write_cyclic_corpus(directory: Path, documents: int = 20, words: int = 300) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(documents):
        (directory / f"doc{i:02d}.txt").write_text(" ".join(WORDS[(i + k) % len(WORDS)] for k in range(words)) + "\n")
    return directory


def _options(root: Path, corpus: Path, **overrides):
    from tfxformers.pipeline.lm.runner import LmRunOptions

    values = dict(corpus=str(corpus), name="tinylm", model_base=str(root / "serving_models"),
                  pipeline_root=str(root / "pipeline"), preset="tiny", vocab_size=300, block_size=32, epochs=10,
                  batch_size=8, learning_rate=3e-3, beam_args=list(IN_PROCESS_BEAM))
    values.update(overrides)
    return LmRunOptions(**values)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("lm_pipeline_e2e")


@pytest.fixture(scope="module")
def corpus(root):
    return write_cyclic_corpus(root / "corpus")


@pytest.fixture(scope="module")
def first_run(root, corpus):
    from tfxformers.pipeline.lm.runner import report_lm, run_lm_local

    out = io.StringIO()
    summary = run_lm_local(_options(root, corpus), out=out)
    code = report_lm(summary, out=out)
    return summary, code, out.getvalue()


def _versions(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) if model_dir.is_dir() else []


@pytest.mark.once
def test_every_component_ran_and_the_blessed_model_was_pushed(first_run, root):
    from tfxformers.pipeline.lm.pipeline import COMPONENT_IDS

    summary, code, output = first_run
    executed = [c for c in COMPONENT_IDS if c != "latest_blessed_model_resolver"]
    assert {c: summary.states.get(c) for c in executed} == {c: "COMPLETE" for c in executed}, output
    for component in executed:
        assert f"] {component} ..." in output and f"] {component} done in " in output
    assert code == 0 and "pushed version 1 to" in output, output
    assert _versions(root / "serving_models" / "tinylm") == ["1"]
    e = summary.evaluation
    assert e["blessed"] and e["eval_perplexity"] < e["bigram_perplexity"] < e["unigram_perplexity"]
    # The evaluator scored the exported SavedModel; the Trainer scored the Keras model: the same number.
    assert e["eval_perplexity"] == pytest.approx(summary.training_metrics["validation_perplexity"], rel=1e-4)
    assert f"eval perplexity {e['eval_perplexity']:.2f} vs unigram" in output


@pytest.mark.once
def test_the_tokenizer_was_trained_on_the_train_split_and_saved_with_the_model(first_run, root, corpus):
    from transformers import AutoTokenizer

    summary, _, _ = first_run
    info = json.loads((summary.trained_dir / "tfxformers.json").read_text())
    assert info["kind"] == "gpt2" and info["preset"] == "tiny" and info["max_length"] == 32
    pushed = root / "serving_models" / "tinylm" / "1"
    for directory in (summary.trained_dir / "tokenizer", pushed / "assets.extra" / "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        assert tokenizer.eos_token == "</s>" and len(tokenizer) == info["vocab_size"]
        assert tokenizer.decode(tokenizer("alpha beta")["input_ids"]) == "alpha beta"
    pushed_info = json.loads((pushed / "assets.extra" / "tfxformers.json").read_text())
    assert pushed_info["kind"] == "gpt2" and pushed_info["version"] == 1
    assert (pushed / "assets.extra" / "tf_serving_warmup_requests").is_file()


def _input_specs(function) -> dict:
    """name -> TensorSpec of a SavedModel signature or of a tf.function with an input_signature."""
    if getattr(function, "input_signature", None):
        return {spec.name: spec for spec in function.input_signature}
    _, specs = function.structured_input_signature
    return dict(specs)


def _generate_inputs(signature, ids: list[int], **settings) -> dict:
    """The generate signature's inputs for one prompt, shaped as its specs say (scalars or a batch axis),
    so the test follows the signature's current shape (docs/contracts.md)."""
    values = {"input_ids": ids, "prompt_length": len(ids), "attention_mask": [1] * len(ids),
              "max_new_tokens": NEW_TOKENS, "strategy": 0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0,
              "num_beams": 1, "num_return_sequences": 1, "length_penalty": 1.0, "early_stopping": 0}
    values.update(settings)
    inputs = {}
    for name, spec in _input_specs(signature).items():
        value = np.asarray(values[name], dtype=spec.dtype.as_numpy_dtype)
        while value.ndim < spec.shape.rank:
            value = value[np.newaxis]
        inputs[name] = value
    return inputs


def _keras_greedy(trained_dir: Path, prompts: list[str]) -> list[list[int]]:
    """Greedy continuations by the trained Keras model with transformers' own eager generate."""
    import tensorflow as tf

    from tfxformers.models.artifacts import load_trained

    trained = load_trained(trained_dir)
    out = []
    for prompt in prompts:
        ids = tf.constant([trained.tokenizer(prompt)["input_ids"]], dtype=tf.int32)
        generated = trained.keras_model.generate(ids, attention_mask=tf.ones_like(ids), do_sample=False,
                                                 max_new_tokens=NEW_TOKENS, pad_token_id=trained.tokenizer.pad_token_id,
                                                 eos_token_id=trained.tokenizer.eos_token_id)
        out.append(generated.numpy()[0, ids.shape[1]:].tolist())
    return out


def _keras_generate(trained_dir: Path, ids: list[int], **settings) -> list[int]:
    """The trained Keras model's own in-graph generation (what the export saves), called in this process."""
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.lm.generate import make_generate_fn

    trained = load_trained(trained_dir)
    tokenizer = trained.tokenizer
    generate = make_generate_fn(trained.keras_model, tokenizer.eos_token_id, tokenizer.pad_token_id,
                                trained.max_length)
    out = generate(**_generate_inputs(generate, ids, **settings))
    return _strip_padding(out["output_ids"], out["num_generated"])


def _strip_padding(ids, count) -> list[int]:
    """The first row's first sequence, without the padding after its generated tokens."""
    return [int(i) for i in np.asarray(ids).reshape(-1)[:int(np.asarray(count).reshape(-1)[0])]]


@pytest.mark.once
def test_the_pushed_version_generates_like_the_keras_model_through_the_server_and_the_proxy(first_run, root):
    import httpx
    import tensorflow as tf

    from tfxformers.models.lm.tokenizer import load_tokenizer
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

    summary, _, _ = first_run
    expected = _keras_greedy(summary.trained_dir, PROMPTS)
    assert all(len(e) == NEW_TOKENS for e in expected)
    pushed = root / "serving_models" / "tinylm" / "1"
    signature = tf.saved_model.load(str(pushed)).signatures["generate"]
    tokenizer = load_tokenizer(pushed / "assets.extra" / "tokenizer")
    server, _, rest_port = start_model_server(root / "serving_models", wait_for="tinylm")
    proxy = None
    try:
        proxy, proxy_url = start_proxy(f"http://127.0.0.1:{rest_port}", models="tinylm")
        for prompt, want in zip(PROMPTS, expected):
            ids = tokenizer(prompt)["input_ids"]
            inputs = {k: v.tolist() for k, v in _generate_inputs(signature, ids).items()}
            answer = httpx.post(f"http://127.0.0.1:{rest_port}/v1/models/tinylm:predict",
                                json={"signature_name": "generate", "inputs": inputs}, timeout=60)
            answer.raise_for_status()
            outputs = answer.json()["outputs"]
            assert _strip_padding(outputs["output_ids"], outputs["num_generated"]) == want, prompt

            body = httpx.post(f"{proxy_url}/v1/models/tinylm:generate",
                              json={"prompt": prompt, "max_new_tokens": NEW_TOKENS, "strategy": "greedy"}, timeout=60)
            body.raise_for_status()
            assert body.json()["token_ids"] == want and body.json()["version"] == 1, prompt

            # Seeded sampling: the Keras model, the server and the proxy give the same tokens for one seed.
            sampled = dict(strategy=1, temperature=1.5, seed=11)
            keras_sampled = _keras_generate(summary.trained_dir, ids, **sampled)
            inputs = {k: v.tolist() for k, v in _generate_inputs(signature, ids, **sampled).items()}
            direct = httpx.post(f"http://127.0.0.1:{rest_port}/v1/models/tinylm:predict",
                                json={"signature_name": "generate", "inputs": inputs}, timeout=60).json()["outputs"]
            via_proxy = httpx.post(f"{proxy_url}/v1/models/tinylm:generate",
                                   json={"prompt": prompt, "max_new_tokens": NEW_TOKENS, "strategy": "sample",
                                         "temperature": 1.5, "seed": 11}, timeout=60).json()
            assert _strip_padding(direct["output_ids"], direct["num_generated"]) == keras_sampled, prompt
            assert via_proxy["token_ids"] == keras_sampled, prompt
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(server)


@pytest.mark.once
def test_a_second_run_comes_from_the_cache_and_pushes_nothing_new(first_run, root, corpus):
    from tfxformers.pipeline.lm.runner import report_lm, run_lm_local

    out = io.StringIO()
    summary = run_lm_local(_options(root, corpus), out=out)
    code = report_lm(summary, out=out)
    for node in ("ImportExampleGen", "StatisticsGen", "ExampleValidator", "BpeTokenizer", "Trainer"):
        assert summary.states[node] == "CACHED", (node, out.getvalue())
    # The evaluator re-ran only because the resolver now finds the first run's model blessed: it compares
    # the model with itself, which must not count as a regression.
    assert summary.evaluation["baseline_model"] and summary.evaluation["blessed"]
    assert code == 0 and "no new version" in out.getvalue()
    assert _versions(root / "serving_models" / "tinylm") == ["1"]


def _stopped(tmp_path, corpus: Path, capsys, **overrides) -> str:
    """Run the CLI on a corpus that must be stopped; returns its error line after checking nothing trained."""
    from tfxformers.cli import main
    from tfxformers.pipeline.lm.runner import summarize_lm, LmRunSummary

    options = _options(tmp_path, corpus, **overrides)
    argv = ["pipeline", "run", "--task", "lm", "--corpus", str(corpus), "--name", options.name, "--preset", "tiny",
            "--vocab-size", str(options.vocab_size), "--block-size", str(options.block_size),
            "--model-base", options.model_base, "--pipeline-root", options.pipeline_root,
            "--beam-args=" + " ".join(options.beam_args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not Path(options.model_base).exists()
    metadata = Path(options.pipeline_root) / "metadata.sqlite"
    summary = summarize_lm(metadata, f"tfxformers-{options.name}", LmRunSummary(tmp_path, metadata, tmp_path, 0.0))
    assert "Trainer" not in summary.states and "Pusher" not in summary.states, summary.states
    return err


def test_empty_and_non_utf8_documents_stop_the_run_before_training(tmp_path, capsys):
    corpus = write_cyclic_corpus(tmp_path / "bad")
    (corpus / "doc03.txt").write_text("   \n\n")
    (corpus / "doc07.txt").write_bytes("caf\u00e9 ".encode("latin-1") * 50)
    err = _stopped(tmp_path, corpus, capsys)
    assert "stopped before training" in err and "characters" in err and "invalid_utf8" in err
    assert "doc03.txt (train split): empty document" in err
    assert "doc07.txt (train split): 50 bytes that are not UTF-8" in err


# Stopped by the project's own BpeTokenizer component (CorpusTooSmallError), whatever the stack's TFX does.
@pytest.mark.once
def test_a_corpus_too_small_for_one_block_stops_the_run_before_training(tmp_path, capsys):
    corpus = write_cyclic_corpus(tmp_path / "small", documents=10, words=4)
    err = _stopped(tmp_path, corpus, capsys, block_size=64)
    assert "too small" in err and "fewer than one block of 64" in err and "--block-size" in err


def test_documents_and_held_out_split_are_train_gpt2s(tmp_path):
    from tfxformers.pipeline.lm.data import collect_documents, write_corpus_records

    corpus = write_cyclic_corpus(tmp_path / "c", documents=20, words=5)
    name, documents = collect_documents(corpus)
    assert name == "c" and len(documents) == 20
    records = write_corpus_records(corpus, tmp_path / "data")
    # Of every ten documents the 5th is held out for eval and the 10th for test (models.data.corpus).
    assert records.counts == {"train": 16, "eval": 2, "test": 2} and not records.problems
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.tfrecord")}
    write_corpus_records(corpus, tmp_path / "data")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.tfrecord")} == before


@pytest.mark.once
def test_the_evaluator_refuses_a_model_worse_than_the_bigram_baseline_and_the_latest_blessed_one(first_run, root,
                                                                                              corpus, tmp_path):
    import shutil

    from transformers import TFGPT2LMHeadModel

    from tfxformers.models.artifacts import file_sizes, load_trained
    from tfxformers.pipeline.lm.components import evaluate
    from tfxformers.pipeline.lm.data import _split_positions, collect_documents
    from tfxformers.serving.export.trained import write_trained

    summary, _, _ = first_run
    # The same architecture and tokenizer with untrained weights: far worse on every measure.
    untrained = tmp_path / "untrained"
    shutil.copytree(summary.trained_dir, untrained)
    trained = load_trained(summary.trained_dir)
    fresh = TFGPT2LMHeadModel(trained.keras_model.config)
    fresh(fresh.dummy_inputs)
    shutil.rmtree(untrained / "model")
    fresh.save_pretrained(str(untrained / "model"))
    info = json.loads((untrained / "tfxformers.json").read_text())
    info["files"] = file_sizes(untrained, ("model", "tokenizer"))
    (untrained / "tfxformers.json").write_text(json.dumps(info))
    write_trained(load_trained(untrained), tmp_path / "export", name="tinylm")

    splits = _split_positions(collect_documents(corpus)[1])
    train, held_out = ([d.raw.decode() for d in splits[s]] for s in ("train", "eval"))
    blessed = str(root / "serving_models" / "tinylm" / "1")
    result = evaluate(str(tmp_path / "export"), blessed, train, held_out)
    assert not result["blessed"] and len(result["reasons"]) == 2, result
    assert "not below the bigram baseline" in result["reasons"][0]
    assert "worse than the latest blessed model" in result["reasons"][1]
    assert result["eval_nats_per_byte"] > result["baseline_nats_per_byte"]
    same = evaluate(blessed, blessed, train, held_out)
    assert same["blessed"] and same["eval_nats_per_byte"] == pytest.approx(same["baseline_nats_per_byte"])
