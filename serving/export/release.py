"""Which TensorFlow Serving release serves the SavedModels a TensorFlow version writes: the one table.

TensorFlow promises GraphDef backward compatibility within a major version but forward compatibility
only within patch releases, so a model server must be built on a TensorFlow at least as new as the
writer, or be proven to load its graphs. ``SERVING_RELEASES`` maps the writer's ``major.minor`` to the
``tensorflow/serving`` image tag that serves it:

- the legacy stack (TF 2.16) -> ``2.16.1``: the same minor, covered by TensorFlow's promise;
- the current stack (TF 2.21) -> ``2.20.0``: no TF Serving 2.21 is tagged; 2.20.0 is the newest release,
  and ``tests/serving/export/test_tfserving_release.py`` loads every kind of export in that release's
  runtime (TF 2.20 + TF Text 2.20 from ``requirements/tfserving.lock``), runs every signature against the
  writer's answers and checks every op against that runtime's op registry.

``DEFAULT_RELEASE`` is ``Dockerfile.serving``'s default (it also loads the legacy stack's exports:
older graphs are covered by the backward promise). For a given model base the release comes from the
SavedModels themselves (``meta_info_def.tensorflow_version``, written by ``tf.saved_model.save``)::

    python -m tfxformers.serving.export.release serving_models     # prints e.g. 2.20.0
    docker build -f Dockerfile.serving --build-arg TF_SERVING_VERSION=$(make -s serving-release) .
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfxformers.errors import UserError

SERVING_RELEASES = {"2.16": "2.16.1", "2.21": "2.20.0"}
DEFAULT_RELEASE = "2.20.0"
# The runtime each release is built on, for the scratch venv that stands in for it (requirements/tfserving.in).
RELEASE_RUNTIME = {"2.16.1": {"tensorflow": "2.16", "tensorflow_text": "2.12.1"},
                   "2.20.0": {"tensorflow": "2.20", "tensorflow_text": "2.20"}}


def version_key(version: str) -> tuple[int, ...]:
    """``2.20.0`` -> ``(2, 20, 0)``: versions compared as numbers (2.9 < 2.16)."""
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def minor(tensorflow_version: str) -> str:
    """``2.21.0`` / ``2.21.0-rc1`` -> ``2.21``."""
    parts = tensorflow_version.strip().split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise UserError(f"not a TensorFlow version: {tensorflow_version!r}")
    return f"{parts[0]}.{parts[1]}"


def serving_release(tensorflow_version: str) -> str:
    """The TF Serving release that serves SavedModels written by ``tensorflow_version``."""
    wanted = minor(tensorflow_version)
    if wanted not in SERVING_RELEASES:
        known = ", ".join(f"TF {k} -> {v}" for k, v in sorted(SERVING_RELEASES.items(), key=lambda kv: version_key(kv[0])))
        raise UserError(f"no TF Serving release is known to load SavedModels written by TensorFlow {tensorflow_version} "
                        f"(known: {known}); add it to serving/export/release.py once a test has shown it loads")
    return SERVING_RELEASES[wanted]


def writer_version(version_dir: str | Path) -> str:
    """The TensorFlow version recorded in a SavedModel's ``saved_model.pb`` by the process that wrote it."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(version_dir) / "saved_model.pb"
    if not path.is_file():
        raise UserError(f"{version_dir}: no saved_model.pb (not a SavedModel version directory)")
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf's DecodeError has no stable import path across its versions
        raise UserError(f"{path}: not a readable SavedModel ({error})") from None
    versions = {m.meta_info_def.tensorflow_version for m in saved.meta_graphs if m.meta_info_def.tensorflow_version}
    if not versions:
        raise UserError(f"{path}: records no TensorFlow version")
    return max(versions, key=version_key)


def version_directories(model_base: str | Path) -> list[Path]:
    """Every ``MODEL_BASE/NAME/<integer>/`` holding a SavedModel."""
    base = Path(model_base)
    if not base.is_dir():
        raise UserError(f"model base not found: {model_base}")
    found = sorted(v for m in base.iterdir() if m.is_dir() for v in m.iterdir()
                   if v.is_dir() and v.name.isdigit() and (v / "saved_model.pb").is_file())
    if not found:
        raise UserError(f"{model_base}: no exported versions (MODEL_BASE/NAME/<version>/saved_model.pb)")
    return found


def release_for_model_base(model_base: str | Path) -> str:
    """The one release that serves every version in the base: the newest any of them needs (a newer
    runtime loads older graphs)."""
    return max((serving_release(writer_version(v)) for v in version_directories(model_base)), key=version_key)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfxformers.serving.export.release",
                                     description="print the TF Serving release that serves a model base's exports")
    parser.add_argument("model_base", nargs="?", default="serving_models")
    args = parser.parse_args(argv)
    try:
        print(release_for_model_base(args.model_base))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
