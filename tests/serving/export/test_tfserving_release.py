"""Every kind of export, written by this stack's TensorFlow, loaded by the runtime of the TF Serving release
that ``serving/export/release.py`` names for it (2.20.0: TF 2.20 + TF Text 2.20, from
``requirements/tfserving.lock`` in ``.venv-tfserving``, built by ``make tfserving-venv``).

The exports are written here: a BERT classifier carrying the ``attention`` signature (``export
--with-attention``) and the TFX Trainer's ``serving_examples`` one (WordPiece in the graph, TF Text ops), a
sentence encoder, GPT-2 with ``generate``, QA, and a RoBERTa classifier's ``serving_examples`` (byte-level
BPE in the graph). ``tfserving_runtime.py`` runs in the release's runtime as a subprocess, loads each the
way the model server does (TF1 session, ``serve`` tag), replays its warm-up records, runs every signature
on the inputs this side ran, and lists every op of each graph and function library against that runtime's
op registry. The answers must equal this runtime's, and no op or attribute may be unknown there; a
tampered copy (an op and an attribute no TensorFlow has) shows that the checks and the load can fail.

Interpreter: ``$TFXFORMERS_TFSERVING_PYTHON``, else ``.venv-tfserving/bin/python`` in the checkout (Python
3.12 from the host's pyenv, whose path the Debian 13 root has too). Without it the module skips and says
how to build it. Marked ``once``: where ``make test`` runs both stacks it runs on the current stack, the
one whose writer (TF 2.21) is newer than the release's runtime; the legacy stack's TF 2.16 graphs fall
under TensorFlow's backward-compatibility promise (``make test STACK=legacy`` runs it there too).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tfxformers.serving.export import release

REPO = Path(__file__).resolve().parents[3]
RUNTIME_SCRIPT = Path(__file__).with_name("tfserving_runtime.py")
TEXTS = ["a brilliant and moving film", "boring , dull and far too long", "the plot", "Fun! It's charming."]


def _tfserving_python() -> str | None:
    for candidate in (os.environ.get("TFXFORMERS_TFSERVING_PYTHON"), str(REPO / ".venv-tfserving" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


TFSERVING_PYTHON = _tfserving_python()
pytestmark = [pytest.mark.once, pytest.mark.skipif(
    TFSERVING_PYTHON is None, reason=f"no TF Serving {release.DEFAULT_RELEASE} runtime: make tfserving-venv "
                                     "(requirements/tfserving.lock) or set TFXFORMERS_TFSERVING_PYTHON")]


def _signature_inputs(signature, rng) -> dict:
    """Inputs for one signature from its input names: token ids of a small range (every tiny vocabulary
    has them), a mask with padding on the last row, two segments, a probe, tf.Examples, or GPT-2 options
    that take the greedy, sampled and beam paths in one call."""
    import tensorflow as tf

    from tfxformers.models.lm.generate import as_arrays, request_inputs

    names = set(signature.structured_input_signature[1])
    if "examples" in names:
        return {"examples": np.asarray([tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in TEXTS])}
    if "probe" in names:
        return {"probe": np.arange(2, dtype=np.int32)}
    if "prompt_length" in names:
        prompts = [list(rng.integers(5, 60, size=n)) for n in (5, 3, 4)]
        return as_arrays(request_inputs(prompts, 0, max_new_tokens=[4, 3, 3], strategy=[0, 1, 2], top_k=[0, 5, 0],
                                        seed=7, temperature=[1.0, 0.8, 1.0], num_beams=[1, 1, 2],
                                        num_return_sequences=[1, 2, 1]))
    rows, width = 3, 12
    inputs = {"input_ids": rng.integers(5, 60, size=(rows, width)).astype(np.int32),
              "attention_mask": np.ones((rows, width), dtype=np.int32)}
    inputs["attention_mask"][-1, 7:] = 0
    inputs["input_ids"][-1, 7:] = 0
    if "token_type_ids" in names:
        inputs["token_type_ids"] = (np.arange(width)[None, :] >= width // 2).repeat(rows, 0).astype(np.int32)
    assert names == set(inputs), f"no inputs written for {sorted(names - set(inputs))}"
    return inputs


def _classifier_export(run_dir, base: Path, name: str, *, attention: bool) -> Path:
    """A classifier export with the TFX Trainer's ``serving_examples`` signature (its in-graph tokenizer)
    and, with ``attention``, the ``attention`` signature of ``export --with-attention``: both add to the
    same module, so one version carries the plain classifier's signatures and the other two."""
    from tfxformers.models import encoders
    from tfxformers.models.artifacts import load_trained
    from tfxformers.pipeline.classifier.signatures import examples_signature_builder
    from tfxformers.serving.export.attention import attention_signatures
    from tfxformers.serving.export.trained import write_trained

    trained = load_trained(run_dir)
    kind = encoders.spec_for(trained.info["encoder_config"]).tokenizer_kind
    examples = examples_signature_builder(trained.tokenizer, trained.max_length, kind)
    sep_id = trained.tokenizer.sep_token_id

    def signatures(keras_model) -> dict:
        extra = examples(keras_model)
        if attention:
            extra.update(attention_signatures(keras_model, sep_id))
        return extra

    return write_trained(trained, base / name / "1", name=name, version=1, extra_signatures=signatures)


@pytest.fixture(scope="module")
def compared(trained_dir, tiny_gpt2_dir, tiny_reviews_csv, tmp_path_factory):
    """Every kind exported and run here; then loaded, run and op-checked in the release's runtime."""
    import tensorflow as tf

    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.models.qa.tiny import make_tiny_qa_checkpoint
    from tfxformers.serving.export.trained import export_model
    from tfxformers.testing import make_tiny_bert_checkpoint, make_tiny_checkpoint

    root = tmp_path_factory.mktemp("tfserving_release")
    base = root / "models"
    roberta = root / "roberta_run"
    train_classifier(ClassifierTrainConfig(
        data=str(tiny_reviews_csv), text_column="review", label_column="sentiment",
        encoder=str(make_tiny_checkpoint(root / "roberta_checkpoint", "roberta", head=True)), mode="finetune",
        output=str(roberta), epochs=1, batch_size=64, max_length=32, verbose=0))
    exports = {
        # WordPiece in the graph (TF Text's FastBert ops) and the attention signature.
        "classifier": _classifier_export(trained_dir, base, "classifier", attention=True),
        "encoder": export_model(make_tiny_bert_checkpoint(root / "encoder_checkpoint", max_position_embeddings=256),
                                "encoder", base),
        "gpt2": export_model(tiny_gpt2_dir, "gpt2", base),
        "qa": export_model(make_tiny_qa_checkpoint(root / "qa_checkpoint", hidden_size=16), "qa", base),
        # Byte-level BPE in the graph (TF Text's RegexSplitWithOffsets).
        "roberta": _classifier_export(roberta, base, "roberta", attention=False),
        "tagger": export_model(_untrained_tagger(root), "tagger", base),
    }
    rng = np.random.default_rng(0)
    manifest, expected = [], {}
    for name, path in exports.items():
        signatures = tf.saved_model.load(str(path)).signatures
        inputs = {}
        for signature_name, signature in signatures.items():
            arrays = _signature_inputs(signature, rng)
            npz = root / f"{name}.{signature_name}.inputs.npz"
            np.savez(npz, **arrays)
            inputs[signature_name] = str(npz)
            expected[name, signature_name] = {k: v.numpy() for k, v in signature(**{
                k: tf.constant(v) for k, v in arrays.items()}).items()}
        manifest.append({"name": name, "dir": str(path), "inputs": inputs})
    manifest.append({"name": "tampered", "dir": str(_tampered_copy(exports["classifier"], root / "tampered" / "1")),
                     "inputs": {"serving_default": manifest[0]["inputs"]["serving_default"]}})
    (root / "manifest.json").write_text(json.dumps(manifest))
    out = root / "runtime"
    out.mkdir()
    # The project's environment (TF_USE_LEGACY_KERAS, set by importing tfxformers) is not that runtime's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PYTHON"))}
    run = subprocess.run([TFSERVING_PYTHON, str(RUNTIME_SCRIPT), str(root / "manifest.json"), str(out)],
                         capture_output=True, text=True, timeout=600, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    return {"exports": exports, "expected": expected, "report": report, "out": out}


def _untrained_tagger(root: Path) -> Path:
    """A ``train tagger`` directory of a tiny BERT with a random head: the export's graph is what matters."""
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.tagging.model import build_tagger, save_tagger
    from tfxformers.testing import make_tiny_bert_checkpoint

    checkpoint = make_tiny_bert_checkpoint(root / "tagger_checkpoint")
    model = build_tagger(base.load_encoder(checkpoint), 3)
    return save_tagger(root / "tagger_run", model, encoders.load_tokenizer(checkpoint), task="ner",
                       label_names=["O", "B-x", "I-x"], max_length=32, overlap=4, mode="finetune")


FUTURE_OP, FUTURE_ATTR = "OpOfALaterTensorFlow", "attr_of_a_later_tensorflow"


def _tampered_copy(export: Path, target: Path) -> Path:
    """The classifier export with one MatMul of its function library renamed to an op no TensorFlow has,
    and an attribute no op definition has on one Identity: what a graph from a newer writer looks like to
    an older runtime. The checks must see both, and the load must fail."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(export, target)
    saved = saved_model_pb2.SavedModel.FromString((target / "saved_model.pb").read_bytes())
    nodes = [n for f in saved.meta_graphs[0].graph_def.library.function for n in f.node_def]
    next(n for n in nodes if n.op == "MatMul").op = FUTURE_OP
    next(n for n in nodes if n.op == "Identity").attr[FUTURE_ATTR].i = 1
    (target / "saved_model.pb").write_bytes(saved.SerializeToString())
    return target


KINDS = ("classifier", "encoder", "gpt2", "qa", "roberta", "tagger")


def test_the_runtime_is_the_release_the_table_maps_this_stack_to(compared):
    import tensorflow as tf

    report = compared["report"]
    served_by = release.serving_release(tf.__version__)
    # The runtime stands in for the release that serves this stack's exports, or for the default one
    # (which, being newer, also serves the legacy stack's).
    runtime = release.RELEASE_RUNTIME[release.DEFAULT_RELEASE]
    assert release.minor(report["tensorflow"]) == runtime["tensorflow"]
    assert release.minor(report["tensorflow_text"]) == runtime["tensorflow_text"]
    assert release.version_key(release.RELEASE_RUNTIME[served_by]["tensorflow"]) <= release.version_key(report["tensorflow"])
    for name in KINDS:  # every export records the TensorFlow that wrote it; the release follows from it
        assert compared["report"]["exports"][name]["writer"] == tf.__version__, name
    assert release.release_for_model_base(compared["exports"]["classifier"].parents[1]) == served_by


@pytest.mark.parametrize("kind", KINDS)
def test_every_signature_loads_and_answers_as_the_writer_does(compared, kind):
    assert {"classifier": {"attention", "serving_examples"}, "gpt2": {"generate"}, "qa": {"answer"}, "encoder": {"embed"},
            "roberta": {"serving_examples"}, "tagger": {"tag"}}[kind] <= {s for (k, s) in compared["expected"] if k == kind}
    entry = compared["report"]["exports"][kind]
    assert "load_error" not in entry, entry.get("load_error")
    assert entry["warmup_records"] >= 1  # replayed at load, as the server does
    signatures = {s for (k, s) in compared["expected"] if k == kind}
    assert set(entry["signatures"]) == signatures
    for signature in sorted(signatures):
        want = compared["expected"][kind, signature]
        with np.load(compared["out"] / f"{kind}.{signature}.npz", allow_pickle=True) as got:
            assert sorted(got.files) == sorted(want), (kind, signature)
            for key, value in want.items():
                if value.dtype.kind == "f":
                    np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5, err_msg=f"{kind}.{signature}.{key}")
                else:
                    np.testing.assert_array_equal(got[key], value, err_msg=f"{kind}.{signature}.{key}")


@pytest.mark.parametrize("kind", KINDS)
def test_no_op_the_stock_model_server_lacks(compared, kind):
    entry = compared["report"]["exports"][kind]
    assert len(entry["ops"]) > 10  # the listing saw the function library, not just the outer call
    assert entry["unknown_ops"] == [], f"ops outside TF {compared['report']['tensorflow']} core + TF Text"
    assert entry["unknown_attrs"] == [], "attributes this runtime's op definitions do not have"
    assert entry["xla_must_compile"] == [], "jit_compile functions: the model server runs them only with an XLA flag"


def test_a_graph_from_a_later_tensorflow_is_caught(compared):
    entry = compared["report"]["exports"]["tampered"]
    assert entry["unknown_ops"] == [FUTURE_OP]
    assert entry["unknown_attrs"] == [f"Identity.{FUTURE_ATTR}"]
    assert FUTURE_OP in entry["load_error"] or FUTURE_ATTR in entry["load_error"], entry["load_error"]


def test_the_examples_signatures_use_tf_text_ops(compared):
    """What the op check guards: the in-graph WordPiece path runs on TF Text's kernels, which a server
    without them (or with an older TF Text) refuses, so the listing must see them."""
    exports = compared["report"]["exports"]
    assert {"FastBertNormalize", "FastWordpieceTokenizeWithOffsets"} <= set(exports["classifier"]["ops"])
    assert "RegexSplitWithOffsets" in exports["roberta"]["ops"]  # serving#1490's missing op


def test_release_table_and_bad_input(tmp_path, capsys):
    assert release.serving_release("2.16.2") == "2.16.1"
    assert release.serving_release("2.21.0") == release.DEFAULT_RELEASE
    assert release.main([str(tmp_path / "missing")]) == 2
    assert "model base not found" in capsys.readouterr().err
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"\xff\xffnot a protobuf")
    assert release.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(release.UserError, match="no TF Serving release is known"):
        release.serving_release("2.99.0")


def test_dockerfile_defaults_to_the_release():
    text = (REPO / "Dockerfile.serving").read_text()
    assert f"ARG TF_SERVING_VERSION={release.DEFAULT_RELEASE}\n" in text
