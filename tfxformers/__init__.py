"""tfxformers: transformer NLP models from training to production on the TensorFlow stack.

Importing this package prepares the environment before anything imports TensorFlow:

- ``TF_USE_LEGACY_KERAS=1``: Hugging Face's TF model classes need Keras 2 (``tf-keras``), and TF 2.16
  otherwise picks Keras 3.
- Nothing downloads at run time (``HF_HUB_OFFLINE`` and friends).
- Quiet by default: TensorFlow's C++ start-up lines ("Unable to register cuDNN factory", "could not find
  cuda drivers", oneDNN and CPU-instruction notices), transformers' advisory warnings and the Python
  warnings this pinned stack always raises say nothing a CPU user can act on, and they buried one-line
  ``error: ...`` messages under a screen of text. ``TFXFORMERS_VERBOSE=1`` (or ``tfxformers --verbose``,
  which calls ``set_verbose()`` before any command imports TensorFlow) shows everything. Variables the
  user set explicitly (e.g. ``TF_CPP_MIN_LOG_LEVEL``) are never overridden.
"""
import os as _os
import warnings as _warnings

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Nothing may download at run time: the Hugging Face libraries must never try the Hub.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# Read by the libraries when they are imported (the C++ ones when their logging starts), so they are set here.
_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # 2 still lets the "Unable to register cuFFT/cuDNN/cuBLAS factory" errors out
    "TRANSFORMERS_VERBOSITY": "error",  # "TensorFlow and JAX classes are deprecated ..."
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "GRPC_VERBOSITY": "NONE",  # its C-core lines repeat errors the Python side reports in one line
}
# Python warnings that every run on this stack raises and that no user can act on.
_QUIET_WARNINGS = (
    (".*non-supported Python version.*", FutureWarning),  # google.api_core on Python 3.10 (TFX 1.16 needs it)
    (".*past its end of life.*", FutureWarning),  # the same, in newer google.api_core wording
    (".*pkg_resources is deprecated.*", UserWarning),  # tensorflow_hub, apache_beam
    (".*TensorFlow and JAX classes are deprecated.*", Warning),  # transformers 4.57
    (".*np\\.find_common_type is deprecated.*", DeprecationWarning),
)
_quieted: dict = {}  # variable -> the value this module set, so set_verbose() undoes only its own


def verbose_requested() -> bool:
    return _os.environ.get("TFXFORMERS_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


def _quiet() -> None:
    for key, value in _QUIET_ENV.items():
        if key not in _os.environ:
            _os.environ[key] = _quieted[key] = value
    for message, category in _QUIET_WARNINGS:
        _warnings.filterwarnings("ignore", message=message, category=category)


def set_verbose() -> None:
    """Let every library log again (the CLI's ``--verbose``); effective for libraries not imported yet."""
    _os.environ["TFXFORMERS_VERBOSE"] = "1"
    for key, value in list(_quieted.items()):
        if _os.environ.get(key) == value:
            del _os.environ[key]
        del _quieted[key]
    _warnings.filters[:] = [f for f in _warnings.filters
                            if not (f[0] == "ignore" and f[1] is not None
                                    and any(f[1].pattern == m for m, _ in _QUIET_WARNINGS))]


if not verbose_requested():
    _quiet()

__version__ = "0.1.0"
