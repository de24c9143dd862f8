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
- TensorFlow 2.21 writes its import-time lines ("oneDNN custom operations are on", "Could not find cuda
  drivers") through absl before any log level is read (tensorflow issue 100442), so when quiet, file
  descriptor 2 is pointed at a temporary file while the ``tensorflow`` package itself is first imported
  (a ``sys.meta_path`` hook), and restored right after; if that import fails, what it wrote is replayed
  before the exception propagates, so the reason is never hidden.
"""
import os as _os
import sys as _sys
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


class _SilentTensorFlowLoader:
    """Runs the real loader of the ``tensorflow`` package with file descriptor 2 sent to a temporary file.

    Only the descriptor changes, for the length of that one import: C++ writes to it directly, so
    ``sys.stderr`` tricks cannot catch those lines, and everything after the import (the one-line
    ``error: ...``, tracebacks, later logs) reaches the real stderr.
    """

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps the real loader (importlib.resources, reload and pickling look at it).
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        if verbose_requested():
            return self.loader.exec_module(module)
        import tempfile  # here, not at the top: the proxy imports tfxformers and starts in milliseconds

        try:
            _sys.stderr.flush()  # what Python wrote before belongs on the real stderr
            captured = tempfile.TemporaryFile()
            saved = _os.dup(2)
        except (OSError, ValueError, AttributeError):  # no stderr or no temporary directory: import loudly
            return self.loader.exec_module(module)
        with captured:
            _os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            except BaseException:
                _restore_stderr(saved)
                captured.seek(0)
                _os.write(2, captured.read())  # the noise may explain the failure: show it
                raise
            _restore_stderr(saved)


def _restore_stderr(saved: int) -> None:
    try:
        _sys.stderr.flush()  # noise Python buffered during the import goes where the import's noise went
    except (OSError, ValueError, AttributeError):
        pass
    _os.dup2(saved, 2)
    _os.close(saved)


class _QuietTensorFlowImport:
    """``sys.meta_path`` hook that wraps the first import of the ``tensorflow`` package (see above)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or self not in _sys.meta_path:
            return None
        # Let the finders after this one find it; remove the hook first: TensorFlow is imported once per
        # process, and this must not find itself.
        _sys.meta_path.remove(self)
        for finder in _sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            return None  # the import system reports the missing module as usual
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _SilentTensorFlowLoader(spec.loader)
        return spec


def _hook_installed() -> bool:
    return any(type(finder).__name__ == "_QuietTensorFlowImport" for finder in _sys.meta_path)


def _quiet() -> None:
    for key, value in _QUIET_ENV.items():
        if key not in _os.environ:
            _os.environ[key] = _quieted[key] = value
    for message, category in _QUIET_WARNINGS:
        _warnings.filterwarnings("ignore", message=message, category=category)
    if "tensorflow" not in _sys.modules and not _hook_installed():
        _sys.meta_path.insert(0, _QuietTensorFlowImport())


def set_verbose() -> None:
    """Let every library log again (the CLI's ``--verbose``); effective for libraries not imported yet."""
    _os.environ["TFXFORMERS_VERBOSE"] = "1"
    _sys.meta_path[:] = [f for f in _sys.meta_path if type(f).__name__ != "_QuietTensorFlowImport"]
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
