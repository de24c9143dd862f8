"""The model side of tfxformers: data sets and their splits, tokenizers, BERT classifiers and GPT-2.

Submodules are imported by name (``tfxformers.models.datasets``, ``tfxformers.models.bert``, ...);
this package imports nothing itself, because the serving proxy imports from it and must start without
TensorFlow.
"""
