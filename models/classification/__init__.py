"""Text classifiers on an encoder: full fine-tuning, a frozen encoder (cached features or a TF Hub layer),
partial fine-tuning of the top layers, the TF-IDF baseline, and the ``train classifier`` CLI. Imports
nothing itself."""
