"""tfxformers: transformer NLP models from training to production on the TensorFlow stack.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` before anything imports TensorFlow:
Hugging Face's TF model classes need Keras 2 (``tf-keras``), and TF 2.16 otherwise picks Keras 3.
"""
import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Nothing may download at run time: the Hugging Face libraries must never try the Hub.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# Noise that says nothing actionable to a user of this pinned stack (Python 3.10 is what TFX 1.16 needs).
import warnings as _warnings

_warnings.filterwarnings("ignore", message=".*non-supported Python version.*", category=FutureWarning)
_warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*", category=UserWarning)
_warnings.filterwarnings("ignore", message=".*TensorFlow and JAX classes are deprecated.*")

__version__ = "0.1.0"
