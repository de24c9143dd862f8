"""Extractive question answering: a span head on an encoder, SQuAD-format data, and span decoding over
windows of contexts of any length (``features``, ``metrics``, ``decode`` import neither TensorFlow nor
numpy: the tokenizer proxy uses them). This package imports nothing itself."""
