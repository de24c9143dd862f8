"""Offline stand-ins and real-process helpers for tests and demos that must download nothing.

Everything is importable from here (``from tfxformers.testing import make_tiny_checkpoint``); the modules
say what each part is for:

- ``checkpoints``: tiny random checkpoints of every encoder family in Hugging Face layout (``TINY_FAMILIES``).
- ``samples``: a synthetic reviews CSV, a deliberately slow SavedModel, the ``requires_real`` mark,
  ``cli_error_line`` (a bad command's one ``error:`` line and exit 2).
- ``processes``: ``tfxformers serve`` / ``tfxformers proxy`` as real subprocesses on free 127.0.0.1 ports.
- ``shared``: ``built_once``, a read-only session artifact built by one pytest-xdist worker for all of them.
"""
from tfxformers.testing.checkpoints import (BPE_SPECIAL_TOKENS, SPECIAL_TOKENS, TINY_FAMILIES, TINY_NER_LABELS, TINY_WORDS,
                                            make_tiny_bert_checkpoint, make_tiny_checkpoint, make_tiny_tagger,
                                            save_pytorch_safetensors, tiny_mpnet_vocab, tiny_sentences, tiny_vocab)
from tfxformers.testing.processes import (_die_with_parent, free_port, rest_tag_predict, start_model_server, start_process,
                                          start_proxy, stop_model_server, stop_process, tfxformers_command,
                                          train_until_epochs_then_kill)
from tfxformers.testing.samples import (cli_error_line, requires_real, run_notebook, write_slow_saved_model,
                                       write_two_class_reviews)
from tfxformers.testing.shared import built_once

__all__ = ["BPE_SPECIAL_TOKENS", "SPECIAL_TOKENS", "TINY_FAMILIES", "TINY_NER_LABELS", "TINY_WORDS", "built_once", "cli_error_line", "free_port",
           "make_tiny_bert_checkpoint", "make_tiny_checkpoint", "make_tiny_tagger", "requires_real", "rest_tag_predict", "run_notebook", "save_pytorch_safetensors",
           "start_model_server", "start_process", "start_proxy", "stop_model_server", "stop_process",
           "tfxformers_command", "tiny_mpnet_vocab", "tiny_sentences", "tiny_vocab", "train_until_epochs_then_kill",
           "write_slow_saved_model", "write_two_class_reviews"]
