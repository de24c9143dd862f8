"""The model side of tfxformers, one sub-package per concern:

- ``data/``: the built-in sources and their fetch, labelled texts for classification, pretraining corpora;
- ``encoders/``: the pretrained encoder families behind one registry that everything else asks;
- ``classification/``: classifiers on an encoder (fine-tuned, frozen, hub, partial), their training and CLI;
- ``lm/``: GPT-2 pretraining, its byte-level BPE tokenizer and in-graph generation;
- ``qa/``: extractive question answering (span head, SQuAD features, span decoding);
- shared modules here: ``artifacts`` (a trained run's directory), ``run_dirs``, ``tokenization``,
  ``buckets`` and ``windows``.

Modules are imported by full name (``tfxformers.models.encoders.bert``, ...); no package here imports
anything itself, because the serving proxy imports from them and must start without TensorFlow.
"""
