"""Serving, in three wings that import nothing from each other, only the shared ``layout.py`` (model names,
version directories, the files of a version):

* ``export/``: trained models -> versioned SavedModels for TensorFlow Serving (``tfxformers export``);
* ``server/``: the embedded TF-Serving-compatible model server (``tfxformers serve``);
* ``proxy/``: the tokenizer proxy in front of any TF Serving, without TensorFlow (``tfxformers proxy``).

Importing this package does not import TensorFlow.
"""
