"""tfxformers: transformer NLP models from training to production on the TensorFlow stack.

The repository keeps the design card's top-level folders (models/, pipeline/, serving/); they are
installed as sub-packages of one distinctive package, ``tfxformers``, so that installing the project
never puts a bare ``models`` or ``pipeline`` package into site-packages.
"""
from setuptools import setup

setup(
    name="tfxformers",
    version="0.1.0",
    description="Transformer NLP models from training to production with TensorFlow, TFX and TF Serving",
    python_requires=">=3.10,<3.11",
    packages=[
        "tfxformers",
        "tfxformers.models",
        "tfxformers.pipeline",
        "tfxformers.serving",
        "tfxformers.serving.proxy",
        "tfxformers.serving.proxy.routers",
    ],
    package_dir={
        "tfxformers": "tfxformers",
        "tfxformers.models": "models",
        "tfxformers.pipeline": "pipeline",
        "tfxformers.serving": "serving",
        "tfxformers.serving.proxy": "serving/proxy",
        "tfxformers.serving.proxy.routers": "serving/proxy/routers",
    },
    package_data={"tfxformers.pipeline": ["*.pbtxt", "schema/*.pbtxt"], "tfxformers.serving": ["*.proto", "*.config"]},
    # Honest ranges: what the code is written against. requirements/requirements.lock pins what CI tests.
    install_requires=[
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tfx>=1.16,<1.17",
        "transformers>=4.40,<5",
        "tokenizers>=0.19",
        "tensorflow-hub>=0.16.1,<0.17",
        "tensorflow-serving-api>=2.16,<2.17",
        "safetensors>=0.4",
        "numpy>=1.26,<2",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "httpx>=0.27",
        "pydantic-settings>=2.0",
        "prometheus-client>=0.20",
        "grpcio>=1.60",
        "tensorflow-text>=2.16,<2.17",
        "dill",
        "setuptools<81",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout", "nbclient", "nbformat", "ipykernel"],
        "bench": ["locust>=2.20"],
        "kfp": ["kfp-pipeline-spec>=0.1.10,<0.2"],
    },
    entry_points={"console_scripts": ["tfxformers=tfxformers.cli:main"]},
)
