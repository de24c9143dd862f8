"""The server wing: the embedded TF-Serving-compatible model server (``tfxformers serve``).

Dependencies point one way: ``errors`` <- ``tensors`` <- ``servable`` <- ``manager`` (with ``config``,
``batching``, ``limits``, ``metrics``) <- the front ends (``status`` shared by ``grpc_api`` and
``rest_routes``, ``rest_codec``, ``rest_server``) <- ``server`` (composes them) <- ``cli``. It shares only
``serving/layout.py`` with the export and proxy wings. Importing this package does not import TensorFlow.
"""
