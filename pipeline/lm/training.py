"""What the language-model Trainer's ``run_fn`` does: documents in, a trained GPT-2 and its export out.

The recipe is ``tfxformers train gpt2``'s, through the same ``models.lm.gpt2`` functions: documents
joined with ``</s>`` and packed into blocks of ``block_size + 1`` tokens, a ``build_lm`` Keras model
(loss on the logits alone, AdamW with linear warm-up and cosine decay), the eval split as validation
data, TensorBoard logs and a CSV history. The tokenizer is the one ``BpeTokenizer`` trained on the
train split earlier in the run (``fn_args.transform_graph_path``); it is saved with the model.

Outputs (``fn_args`` paths from TFX):

* ``model_run_dir/model/``: a trained-model directory as ``train gpt2`` writes it (``tfxformers.json``,
  ``model/``, ``tokenizer/``, ``metrics.json``, ``logs/``), so ``tfxformers generate / export`` work on it;
* ``serving_model_dir`` (``Format-Serving``): ``serving.export.trained.write_trained`` of that model, the same
  export as ``tfxformers export`` (``serving_default`` logits, ``generate``, ``tfxformers_metadata``,
  warm-up records), which the evaluator scores and the Pusher copies to the next integer version.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

TRAINED_SUBDIR = "model"


def _test_patterns(train_patterns: list[str]) -> list[str]:
    """ExampleGen writes every split beside the train split as ``Split-<name>``."""
    return [p.replace("Split-train", "Split-test") for p in train_patterns if "Split-train" in p]


def train_and_export(fn_args) -> dict:
    """Train per ``fn_args.custom_config`` and fill ``fn_args.serving_model_dir``; returns the metrics."""
    import tensorflow as tf

    from tfxformers.errors import UserError
    from tfxformers.models.artifacts import file_sizes, load_trained
    from tfxformers.models.lm.gpt2 import (build_lm, lm_dataset, make_config, ngram_baselines, pack_blocks,
                                           perplexity, tokenize_documents)
    from tfxformers.models.lm.tokenizer import load_tokenizer
    from tfxformers.pipeline.lm.components import TOKENIZER_SUBDIR
    from tfxformers.pipeline.lm.data import read_documents
    from tfxformers.serving.export.trained import write_trained

    config = dict(fn_args.custom_config or {})
    block_size, batch_size = int(config["block_size"]), int(config["batch_size"])
    epochs, seed = int(config["epochs"]), int(config["seed"])
    run_dir = Path(fn_args.model_run_dir)
    model_dir = run_dir / TRAINED_SUBDIR
    model_dir.mkdir(parents=True, exist_ok=True)

    tf.keras.utils.set_random_seed(seed)
    tokenizer_dir = Path(fn_args.transform_graph_path) / TOKENIZER_SUBDIR
    tokenizer = load_tokenizer(tokenizer_dir)
    documents = {"train": read_documents(fn_args.train_files), "validation": read_documents(fn_args.eval_files),
                 "test": read_documents(_test_patterns(fn_args.train_files))}
    streams = {split: tokenize_documents(tokenizer, docs) for split, docs in documents.items() if docs}
    blocks = {}
    for split, stream in streams.items():
        try:
            blocks[split] = pack_blocks(stream, block_size)
        except UserError:
            if split != "test":   # BpeTokenizer checked train and eval already; a short test split is skipped
                raise
    model_config = make_config(tokenizer, config["preset"], block_size)
    steps = math.ceil(len(blocks["train"]) / batch_size) * epochs
    model = build_lm(model_config, learning_rate=float(config["learning_rate"]), num_train_steps=steps)
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=str(model_dir / "logs")),
                 tf.keras.callbacks.CSVLogger(str(model_dir / "history.csv"))]
    initial = perplexity(model, blocks["validation"])
    model.fit(lm_dataset(blocks["train"], batch_size, shuffle=True, seed=seed),
              validation_data=lm_dataset(blocks["validation"], batch_size), epochs=epochs, verbose=2,
              callbacks=callbacks)
    baselines = ngram_baselines(streams["train"], streams["validation"], len(tokenizer))
    metrics = {"initial_validation_perplexity": initial,
               "validation_perplexity": perplexity(model, blocks["validation"]),
               "test_perplexity": perplexity(model, blocks["test"]) if "test" in blocks else None,
               "validation_unigram_perplexity": baselines["unigram"],
               "validation_bigram_perplexity": baselines["bigram"],
               "train_tokens": int(len(streams["train"])), "train_blocks": int(len(blocks["train"])),
               "vocab_size": len(tokenizer), "epochs": epochs}
    model.hf_model.save_pretrained(str(model_dir / "model"))
    shutil.copytree(tokenizer_dir, model_dir / "tokenizer", dirs_exist_ok=True)
    (model_dir / "training_config.json").write_text(json.dumps(config, indent=2))
    (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    # The keys `train gpt2` writes, so every tool that reads a trained GPT-2 reads this one.
    info = {"kind": "gpt2", "format_version": 1, "preset": config["preset"], "block_size": block_size,
            "max_length": block_size, "corpus": config.get("corpus"), "vocab_size": len(tokenizer),
            "bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id, "pad_id": tokenizer.pad_token_id,
            "input_names": ["input_ids"], "files": file_sizes(model_dir, ("model", "tokenizer"))}
    (model_dir / "tfxformers.json").write_text(json.dumps(info, indent=2))

    serving_dir = Path(fn_args.serving_model_dir)
    if serving_dir.is_dir() and not any(serving_dir.iterdir()):
        serving_dir.rmdir()  # write_trained renames the finished SavedModel into place
    write_trained(load_trained(model_dir), serving_dir, name=config.get("model_name", "lm"), version=None)
    return metrics
