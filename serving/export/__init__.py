"""The export wing: trained models -> versioned SavedModels that TensorFlow Serving loads as they are.

``trained.py`` is the entry point (``export_model``, ``export_trained``, ``write_trained``); one module per
model kind (``classifier``, ``gpt2``, ``encoder``, ``qa``, ``attention``), the signature pieces they share
(``signatures``), the version writer and warm-up records (``writer``), and ``tfxformers export`` (``cli``).
It shares only ``serving/layout.py`` with the server and proxy wings. Importing this package does not
import TensorFlow.
"""
