"""One module per endpoint group: ``classify``, ``embed``, ``generate`` (model endpoints) and ``health``."""
