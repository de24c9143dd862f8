"""Data: the built-in sources and their one-time fetch (``sources``), labelled texts (``classification``) and
pretraining corpora (``corpus``). Imports nothing, so that importing a submodule stays cheap."""
