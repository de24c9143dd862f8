"""The tokenizer proxy: a small ASGI service in front of TensorFlow Serving that never imports TensorFlow.

It reads each served version's tokenizer and label names through TF Serving itself (the
``tfxformers_metadata`` signature), tokenizes raw text, pads it to the export's length buckets, calls
TF Serving over gRPC or REST and answers plain JSON. Start it with ``tfxformers proxy --backend
grpc://127.0.0.1:8500`` or build the app with ``tfxformers.serving.proxy.app.create_app(settings)``.

Layout: ``app.py`` wires the routers (``routers/``, whose request schemas share ``routers/fields.py``) and
``body_limit.py`` (oversized bodies refused unread); ``settings.py`` holds the one settings object;
``backends.py`` talks to TF Serving (``protos.py`` gives it the gRPC messages); ``models.py`` keeps one
tokenizer per served version; ``text.py`` turns texts into bucket-padded windows; ``service.py`` runs
requests; ``errors.py`` and ``metrics.py`` map failures to answers and count everything; ``cli.py`` is
``tfxformers proxy`` (and ``python -m tfxformers.serving.proxy``). It imports nothing from the export and
server wings.
"""
