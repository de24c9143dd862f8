"""What the language-model Trainer's ``run_fn`` does: documents in, a trained GPT-2 and its export out.

The Trainer's documents are read with its own data accessor (``pipeline.examples``: TFXIO against the
curated schema), put into a ``models.data.corpus.Corpus`` and handed, with the tokenizer ``BpeTokenizer``
trained on the train split earlier in the run (``fn_args.transform_graph_path``), to
``models.lm.gpt2.fit_gpt2``: the recipe ``tfxformers train gpt2`` runs (documents joined with ``</s>`` and
packed into blocks, AdamW with warm-up and cosine decay, the eval split as validation data, backups to
resume from, TensorBoard logs and a CSV history), not a copy of it.

Outputs (``fn_args`` paths from TFX):

* ``model_run_dir/model/``: a trained-model directory as ``train gpt2`` writes it (``tfxformers.json``,
  ``model/``, ``tokenizer/``, ``metrics.json``, ``logs/``), so ``tfxformers generate / export`` work on it;
* ``serving_model_dir`` (``Format-Serving``): ``serving.export.trained.write_trained`` of that model, the same
  export as ``tfxformers export`` (``serving_default`` logits, ``generate``, ``tfxformers_metadata``,
  warm-up records), which the evaluator scores and the Pusher copies to the next integer version.
"""
from __future__ import annotations

from pathlib import Path

from tfxformers.pipeline.examples import read_features, read_schema, test_split_patterns
from tfxformers.pipeline.lm.data import TEXT_KEY

TRAINED_SUBDIR = "model"


def examples_corpus(fn_args, name: str):
    """The Trainer's train / eval / test documents as a ``Corpus`` (an empty test split stays empty)."""
    from tfxformers.models.data.corpus import Corpus

    schema = read_schema(fn_args.schema_path)

    def read(patterns: list[str]) -> list[str]:
        return read_features(fn_args.data_accessor, patterns, schema, (TEXT_KEY,))[TEXT_KEY]

    return Corpus(name, read(fn_args.train_files), read(fn_args.eval_files),
                  read(test_split_patterns(fn_args.train_files)))


def train_and_export(fn_args) -> dict:
    """Train per ``fn_args.custom_config`` and fill ``fn_args.serving_model_dir``; returns the metrics."""
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.lm.gpt2 import Gpt2TrainConfig, fit_gpt2
    from tfxformers.models.lm.tokenizer import load_tokenizer
    from tfxformers.pipeline.lm.components import TOKENIZER_SUBDIR
    from tfxformers.serving.export.trained import write_trained

    config = dict(fn_args.custom_config or {})
    model_dir = Path(fn_args.model_run_dir) / TRAINED_SUBDIR
    tokenizer = load_tokenizer(Path(fn_args.transform_graph_path) / TOKENIZER_SUBDIR)
    corpus = examples_corpus(fn_args, config.get("corpus") or "corpus")
    train_config = Gpt2TrainConfig(
        corpus=config.get("corpus") or "corpus", output=str(model_dir), preset=config["preset"],
        vocab_size=int(config.get("vocab_size", len(tokenizer))), block_size=int(config["block_size"]),
        epochs=int(config["epochs"]), batch_size=int(config["batch_size"]),
        learning_rate=float(config["learning_rate"]), lowercase=bool(config.get("lowercase", False)),
        seed=int(config["seed"]), verbose=2)
    metrics = fit_gpt2(tokenizer, corpus, train_config, model_dir)

    serving_dir = Path(fn_args.serving_model_dir)
    if serving_dir.is_dir() and not any(serving_dir.iterdir()):
        serving_dir.rmdir()  # write_trained renames the finished SavedModel into place
    write_trained(load_trained(model_dir), serving_dir, name=config.get("model_name", "lm"), version=None)
    return metrics
