"""Pretrained encoders (BERT today; one module per family) loaded from local Hugging Face checkpoints.
Imports nothing itself: the proxy imports from ``tfxformers.models`` without TensorFlow."""
