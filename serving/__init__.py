"""Serving: SavedModel exports with explicit signatures for TensorFlow Serving (``export.py``).

Importing this package does not import TensorFlow.
"""
