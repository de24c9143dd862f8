"""tfxformers: transformer NLP models from training to production on the TensorFlow stack.

The repository keeps the design card's top-level folders (models/, pipeline/, serving/); they are
installed as sub-packages of one distinctive package, ``tfxformers``, so that installing the project
never puts a bare ``models`` or ``pipeline`` package into site-packages.
"""
from setuptools import setup

_PROXY = [
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "httpx>=0.27",
    "pydantic-settings>=2.0",
    "prometheus-client>=0.20",
    "grpcio>=1.60",
    "protobuf>=3.20,<7",
]
_MODELS = [
    "numpy>=1.26,<3",
    "tensorflow>=2.16,<2.22",
    "tf-keras>=2.16,<2.22",
    # transformers 5 removed every TF model class.
    "transformers>=4.40,<5",
    "safetensors>=0.4",
    # Its ops are built against one TensorFlow minor version: install the one matching tensorflow.
    "tensorflow-text>=2.16,<2.22",
    "scikit-learn>=1.3",
    "matplotlib>=3.7",
    "tqdm>=4.60",
]
# `--mode hub` only (imported lazily). 0.15 imports tf.compat.v1.estimator, gone since TF 2.16, but TFX
# 1.16-1.21 pin <0.16: pip cannot install [hub] together with [pipeline]; both locks override TFX's pin.
_HUB = [
    "tensorflow-hub>=0.16.1,<0.17",
    # tensorflow_hub imports pkg_resources.
    "setuptools<81",
]
_SERVING = _MODELS + _PROXY + ["tensorflow-serving-api>=2.16,<2.22"]
_PIPELINE = _SERVING + [
    "tfx>=1.16,<1.22",
    # tfx_bsl imports dill; newer apache-beam releases no longer pull it in.
    "dill",
    # 0.1.x for TFX 1.16 (protobuf 3/4), >=0.2 for TFX 1.21 (protobuf 6).
    "kfp-pipeline-spec>=0.1.10",
]

# Installed package name (under tfxformers.) -> folder in the repository.
_SUBPACKAGES = {
    "": "tfxformers",
    "demo": "tfxformers/demo",
    "testing": "tfxformers/testing",
    "models": "models",
    "models.data": "models/data",
    "models.encoders": "models/encoders",
    "models.classification": "models/classification",
    "models.lm": "models/lm",
    "models.qa": "models/qa",
    "pipeline": "pipeline",
    "pipeline.classifier": "pipeline/classifier",
    "pipeline.lm": "pipeline/lm",
    "serving": "serving",
    "serving.export": "serving/export",
    "serving.server": "serving/server",
    "serving.proxy": "serving/proxy",
    "serving.proxy.routers": "serving/proxy/routers",
}


def _extras():
    return {
        "proxy": _PROXY,
        "models": _MODELS,
        "hub": _MODELS + _HUB,
        "serving": _SERVING,
        "pipeline": _PIPELINE,
        "all": sorted(set(_PIPELINE)),
        "test": ["pytest>=8", "pytest-timeout", "nbclient", "nbformat", "ipykernel"],
        "bench": ["locust>=2.20"],
    }


setup(
    name="tfxformers",
    version="0.1.0",
    description="Transformer NLP models from training to production with TensorFlow, TFX and TF Serving",
    # Two tested stacks: legacy (3.10, TF 2.16, TFX 1.16) and current (3.12, TF 2.21, TFX 1.21).
    python_requires=">=3.10,<3.13",
    packages=[f"tfxformers.{name}" if name else "tfxformers" for name in _SUBPACKAGES],
    package_dir={f"tfxformers.{name}" if name else "tfxformers": folder for name, folder in _SUBPACKAGES.items()},
    package_data={"tfxformers.pipeline": ["*.pbtxt", "schema/*.pbtxt"], "tfxformers.serving": ["*.proto", "*.config"]},
    # Honest ranges: what the code is written against and tested with (TensorFlow 2.16 to 2.21, TFX 1.16 to
    # 1.21). The two locks in requirements/ pin what CI tests: requirements.lock (legacy) and current.lock.
    # The base install is only what every part shares, so `pip install tfxformers[proxy]` never pulls
    # TensorFlow; `[models]` is training and export, `[serving]` adds the embedded model server, `[pipeline]`
    # adds TFX, `[all]` is everything the CLI can do but `--mode hub` (`[hub]`, which TFX's pin excludes).
    install_requires=["tokenizers>=0.19"],
    extras_require=_extras(),
    entry_points={"console_scripts": ["tfxformers=tfxformers.cli:main"]},
)
