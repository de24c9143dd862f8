"""Tiny, offline stand-ins of real checkpoints, for tests and examples that must download nothing.

``make_tiny_bert_checkpoint(dir)`` writes a random BERT in the same Hugging Face layout as the real
MiniLM (config.json, vocab.txt, tokenizer files, model.safetensors with PyTorch weight names), so code
under test goes through exactly the loading path real checkpoints use.
"""
from __future__ import annotations

import os
import string
from pathlib import Path

import tfxformers  # noqa: F401

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Enough whole words that test sentences tokenize into real words, plus every letter and digit (and its
# "##" continuation) so that any ASCII text tokenizes without [UNK].
TINY_WORDS = (
    "the a an and or but not no is was were be been it this that of to in on for with as at by from "
    "movie film story plot acting actor actors director good great fine best fun funny love loved "
    "brilliant wonderful charming moving smart fresh bad worst boring dull awful terrible mess weak "
    "rotten flat tedious slow long script scene scenes characters performance performances music "
    "emma was she he her his they very much more most too so all one two time never ever well "
    "business sport politics tech entertainment news government market team game happy sad neutral"
).split()


def tiny_vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL_TOKENS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    vocab += TINY_WORDS
    return list(dict.fromkeys(vocab))  # first occurrence wins; a repeated token would leave a hole


def make_tiny_bert_checkpoint(
    directory: str | os.PathLike,
    *,
    hidden_size: int = 16,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 32,
    max_position_embeddings: int = 128,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT checkpoint (Hugging Face layout, safetensors) and return its path."""
    return make_tiny_checkpoint(directory, "bert", hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                                num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                                max_length=max_position_embeddings, seed=seed)


def save_pytorch_safetensors(model, path: Path, *, strip: str, add: str = "", extra: dict | None = None) -> None:
    """Write a transformers TF model's weights to ``path/model.safetensors`` under the PyTorch names the Hub's
    checkpoints use: ``strip`` is the TF base-model prefix to drop (``"bert."``), ``add`` the PyTorch prefix
    to put back (a ``*For...`` class's), ``extra`` more arrays by name (a head the TF model lacks)."""
    import numpy as np
    import safetensors.numpy
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    state = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, start_prefix_to_remove=strip,
                                                                   tf_weight_shape=weight.shape)
        value = weight.numpy()
        if transpose is TransposeType.SIMPLE:
            value = value.T
        state[add + name] = np.ascontiguousarray(value)
    state.update(extra or {})
    safetensors.numpy.save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


# Families make_tiny_checkpoint writes (the registry's model types), for parametrised tests.
TINY_FAMILIES = ("bert", "roberta", "distilbert", "electra")
BPE_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def tiny_sentences() -> list[str]:
    """A small corpus to train the tiny byte-level BPE on: the tiny words in varied short sentences."""
    words = TINY_WORDS
    out = [" ".join(words[i:i + 7]) for i in range(0, len(words), 3)]
    out += [" ".join(words[i::5]).capitalize() + "." for i in range(5)]
    out += ["It's a charming, funny film!", "The plot is a tedious mess; the acting: flat.", "2 stars, 10/10 bad"]
    return out


def _tiny_bpe_tokenizer(path: Path, max_length: int):
    """A RoBERTa byte-level BPE tokenizer trained offline on ``tiny_sentences`` (about 400 tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=BPE_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(tiny_sentences() * 3, trainer=trainer)
    bpe.model.save(str(path))  # vocab.json, merges.txt
    tokenizer = RobertaTokenizerFast(vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt"))
    tokenizer.model_max_length = max_length
    return tokenizer


def make_tiny_checkpoint(
    directory: str | os.PathLike,
    family: str = "bert",
    *,
    head: bool = False,
    weights_format: str = "safetensors",
    hidden_size: int = 16,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 32,
    max_length: int = 128,
    seed: int = 0,
) -> Path:
    """A tiny random checkpoint of any registered family in Hugging Face layout; returns its path.

    ``family``: bert, roberta (byte-level BPE trained here, pad id 1, positions offset by 2), distilbert or
    electra (embeddings narrower than the blocks, so ``embeddings_project`` is exercised). ``head=True``
    saves it from a task head (``*ForSequenceClassification``; ELECTRA: ``ForPreTraining``, the released
    discriminator), so weight names carry the base-model prefix and extra head weights.
    ``weights_format``: ``safetensors`` (PyTorch names, as the Hub's) or ``h5`` (``tf_model.h5``).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import transformers as hf

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    sizes = dict(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                 intermediate_size=intermediate_size)
    if family == "roberta":
        tokenizer = _tiny_bpe_tokenizer(path, max_length)
        config = hf.RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_length + 2, type_vocab_size=1,
                                  pad_token_id=1, bos_token_id=0, eos_token_id=2, **sizes)
        classes = (hf.TFRobertaModel, hf.TFRobertaForSequenceClassification)
    else:
        vocab = tiny_vocab()
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer_class = {"bert": hf.BertTokenizerFast, "distilbert": hf.DistilBertTokenizerFast,
                           "electra": hf.ElectraTokenizerFast}[family]
        tokenizer = tokenizer_class(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
        tokenizer.model_max_length = max_length
        if family == "bert":
            config = hf.BertConfig(vocab_size=len(vocab), max_position_embeddings=max_length, type_vocab_size=2,
                                   pad_token_id=0, **sizes)
            classes = (hf.TFBertModel, hf.TFBertForSequenceClassification)
        elif family == "distilbert":
            config = hf.DistilBertConfig(vocab_size=len(vocab), max_position_embeddings=max_length, dim=hidden_size,
                                         n_layers=num_hidden_layers, n_heads=num_attention_heads,
                                         hidden_dim=intermediate_size, pad_token_id=0)
            classes = (hf.TFDistilBertModel, hf.TFDistilBertForSequenceClassification)
        elif family == "electra":
            config = hf.ElectraConfig(vocab_size=len(vocab), max_position_embeddings=max_length, type_vocab_size=2,
                                      embedding_size=max(hidden_size // 2, 4), pad_token_id=0, **sizes)
            classes = (hf.TFElectraModel, hf.TFElectraForPreTraining)
        else:
            raise ValueError(f"unknown family {family!r}; choose one of {TINY_FAMILIES}")
    tokenizer.save_pretrained(str(path))
    tf.keras.utils.set_random_seed(seed)
    model = classes[1 if head else 0](config)
    model(model.dummy_inputs, training=False)
    if weights_format == "h5":
        model.save_pretrained(str(path), safe_serialization=False)
        return path
    config.save_pretrained(str(path))
    save_pytorch_safetensors(model, path, strip="" if head else model.base_model_prefix + ".")
    return path


def write_two_class_reviews(path: str | os.PathLike, counts: dict[str, int], *, length: tuple[int, int] = (3, 8),
                            seed: int = 7) -> Path:
    """A CSV (text, label, split) of synthetic reviews, ``counts[split]`` rows a split, neg and pos in turn:
    each of ``length`` (min, max) words, mostly of its label's kind, the rest neutral filler."""
    import csv
    import random

    rng = random.Random(seed)
    good, bad = "good great brilliant fun loved best".split(), "bad worst boring dull awful mess".split()
    filler = "the movie film story plot was very".split()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "split"])
        for split, n in counts.items():
            for i in range(n):
                words, label = (good, "pos") if i % 2 else (bad, "neg")
                text = " ".join(rng.choice(words if rng.random() < 0.6 else filler) for _ in range(rng.randint(*length)))
                writer.writerow([text, label, split])
    return Path(path)


def requires_real(*names: str):
    """pytest mark: skip unless the real sources are fetched, except under CI (``make test`` fetches them
    first, so there a missing source is a failure, not a skip)."""
    import pytest

    from tfxformers.models.data.sources import is_fetched

    missing = [n for n in names if not is_fetched(n)]
    return pytest.mark.skipif(bool(missing) and not os.environ.get("CI"),
                              reason=f"needs `tfxformers data fetch {' '.join(missing)}`")


def write_slow_saved_model(path) -> None:
    """A SavedModel whose ``serving_default`` computes until ``seconds`` (float32 [N]) have passed, a TensorFlow
    loop on ``tf.timestamp()``, answering ``elapsed`` and ``steps`` per row: a request that holds the server
    for as long as a test needs (drains, in-flight budgets)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")], autograph=False)
    def slow(seconds):
        start = tf.timestamp()
        wanted = tf.cast(tf.reduce_max(seconds), tf.float64)
        steps, _ = tf.while_loop(lambda i, x: tf.timestamp() - start < wanted, lambda i, x: (i + 1, tf.sin(x) + 1.0),
                                 [tf.constant(0), tf.constant(0.0)])
        elapsed = tf.cast(tf.timestamp() - start, tf.float32)
        return {"elapsed": tf.fill(tf.shape(seconds), elapsed), "steps": tf.fill(tf.shape(seconds), steps)}

    tf.saved_model.save(tf.Module(), str(path), signatures={"serving_default": slow})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tfxformers_command() -> list[str]:
    """The CLI as a subprocess command, with the interpreter running the tests."""
    import sys

    return [sys.executable, "-m", "tfxformers"]


def train_until_epochs_then_kill(command: list[str], history_csv, epochs: int = 1, timeout: float = 240) -> list[int]:
    """Start a training command, SIGKILL it once ``history_csv`` records ``epochs`` epochs, and return the
    epoch numbers recorded before the kill (for resume tests)."""
    import signal
    import subprocess
    import time

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if history_csv.is_file() and len(history_csv.read_text().strip().splitlines()) >= epochs + 1:
                break
            if process.poll() is not None:
                raise AssertionError("training exited early: " + process.stdout.read()[-2000:])
            time.sleep(0.05)
        else:
            raise AssertionError(f"training never finished {epochs} epoch(s) in {timeout} s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return [int(line.split(",")[0]) for line in history_csv.read_text().strip().splitlines()[1:]]


def _die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM the child when the process that started it dies, so that a
    test run killed by a timeout (or a demo killed with SIGKILL) leaves no server holding ports behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the caller's own cleanup still stops it
        pass


def start_process(command: list[str], log_path=None, log_prefix: str = "tfxformers-"):
    """Start ``command`` with its output in a log file (``process.log_path``), dying with this process."""
    import subprocess
    import tempfile

    if log_path is None:
        handle = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)
        log_path = handle.name
        handle.close()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=_die_with_parent)
    process.log_path = str(log_path)
    return process


def stop_process(process, timeout: float = 30) -> int:
    """SIGTERM ``process`` (waking it first if a test froze it with SIGSTOP), SIGKILL after ``timeout``."""
    import signal
    import subprocess

    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_model_server(model_base=None, *, model_config_file=None, wait_for=None, timeout: float = 180,
                       **flags):
    """Run ``tfxformers serve`` as a real subprocess on free 127.0.0.1 ports and wait until it serves.

    ``flags`` become command-line flags (``enable_batching=True`` -> ``--enable-batching``,
    ``file_system_poll_wait_seconds=0.2`` -> ``--file-system-poll-wait-seconds 0.2``). ``wait_for`` is
    the model name that must be AVAILABLE before returning (default: every model directory under
    ``model_base``, or the ready log line with a config file). Returns ``(process, grpc_port, rest_port)``;
    the server's log is in ``process.log_path``. Stop it with ``stop_model_server(process)``.
    """
    import json
    import time
    import urllib.request
    from pathlib import Path

    grpc_port, rest_port = free_port(), free_port()
    while rest_port == grpc_port:
        rest_port = free_port()
    command = tfxformers_command() + ["serve", "--host", "127.0.0.1", "--grpc-port", str(grpc_port),
                                      "--rest-port", str(rest_port)]
    if model_base is not None:
        command += ["--model-base", str(model_base)]
    if model_config_file is not None:
        command += ["--model-config-file", str(model_config_file)]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            command.append(flag)
        elif value not in (None, False):
            command += [flag, str(value)]
    if wait_for is None and model_base is not None:
        names = [p.name for p in Path(model_base).iterdir() if p.is_dir() and not p.name.startswith(".")]
    else:
        names = [wait_for] if wait_for else []
    process = start_process(command, log_prefix="tfxformers-serve-")
    process.grpc_port, process.rest_port = grpc_port, rest_port
    deadline = time.time() + timeout

    def available(name):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/{name}", timeout=5) as answer:
                states = json.loads(answer.read())["model_version_status"]
        except Exception:
            return False
        return any(s["state"] == "AVAILABLE" for s in states)

    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tfxformers serve exited with {process.returncode}:\n"
                               + Path(process.log_path).read_text()[-3000:])
        if names and all(available(n) for n in names):
            return process, grpc_port, rest_port
        if not names and "serving " in Path(process.log_path).read_text():
            return process, grpc_port, rest_port
        time.sleep(0.2)
    stop_model_server(process)
    raise RuntimeError(f"tfxformers serve did not serve {names or 'anything'} within {timeout} s:\n"
                       + Path(process.log_path).read_text()[-3000:])


def stop_model_server(process, timeout: float = 30) -> int:
    """SIGTERM a server started by ``start_model_server`` and wait for it (SIGKILL after ``timeout``)."""
    return stop_process(process, timeout)


def start_proxy(backend: str, *, models: str | None = None, log_path=None, timeout: float = 60,
                extra_args: list[str] = ()):
    """Run ``tfxformers proxy --backend BACKEND [EXTRA_ARGS]`` on a free 127.0.0.1 port and wait until
    ``/healthz`` answers (and ``/readyz`` for ``models``, if given). Returns ``(process, url)``; stop it
    with ``stop_process``."""
    import time

    import httpx

    port = free_port()
    command = tfxformers_command() + ["proxy", "--backend", backend, "--host", "127.0.0.1", "--port", str(port),
                                      "--log-level", "warning"]
    if models:
        command += ["--models", models]
    command += list(extra_args)
    process = start_process(command, log_path, log_prefix="tfxformers-proxy-")
    url = f"http://127.0.0.1:{port}"
    check = ("/readyz", {"model": models.split(",")}) if models else ("/healthz", None)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            if httpx.get(url + check[0], params=check[1], timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_process(process)
    with open(process.log_path, errors="replace") as log:
        raise RuntimeError(f"tfxformers proxy was not ready within {timeout:.0f} s:\n" + log.read()[-3000:])

