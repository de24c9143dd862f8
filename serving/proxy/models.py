"""Which version of each model the server serves, and that version's tokenizer and metadata.

``ModelRegistry.get(name, deadline)`` answers a ``ServedModel`` for the newest AVAILABLE version. The
tokenizer and metadata come from the version's ``tfxformers_metadata`` signature, fetched once per
version; the served version is re-checked with GetModelStatus (or REST status) at most every
``refresh_seconds``, so a newly exported version is picked up (and its tokenizer fetched) within about
that long. Requests then pin that exact version, so tokenizer and weights always match.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import Backend, Deadline
from tfxformers.serving.proxy.text import TextEncoder

METADATA_SIGNATURE = "tfxformers_metadata"
# What TF Serving accepts as a model name; anything else cannot be served, so it is a 404 straight away.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class ServedModel:
    name: str
    version: int
    metadata: dict
    encoder: TextEncoder
    checked_at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "unknown")

    @property
    def label_names(self) -> list[str]:
        return list(self.metadata.get("label_names") or [])


class ModelRegistry:
    def __init__(self, backend: Backend, refresh_seconds: float):
        self.backend = backend
        self.refresh_seconds = refresh_seconds
        self._models: dict[str, ServedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, name: str) -> None:
        self._models.pop(name, None)

    async def get(self, name: str, deadline: Deadline) -> ServedModel:
        if not _MODEL_NAME.match(name):
            raise errors.ModelNotFound(f"model {name!r} is not served (not a valid model name)")
        served = self._models.get(name)
        if served is not None and time.monotonic() - served.checked_at < self.refresh_seconds:
            return served
        # One status check (and at most one tokenizer download) per model at a time, however many
        # requests arrive together.
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            return await self._refresh(name, lock, deadline)
        except errors.ModelNotFound:
            # Forget names the server does not know, so requests for made-up names cannot grow these dicts.
            self._models.pop(name, None)
            self._locks.pop(name, None)
            raise

    async def _refresh(self, name: str, lock: asyncio.Lock, deadline: Deadline) -> ServedModel:
        async with lock:
            served = self._models.get(name)
            if served is not None and time.monotonic() - served.checked_at < self.refresh_seconds:
                return served
            version = await self._latest_available(name, deadline)
            if served is not None and served.version == version:
                served.checked_at = time.monotonic()
                return served
            served = await self._load(name, version, deadline)
            self._models[name] = served
            return served

    async def _latest_available(self, name: str, deadline: Deadline) -> int:
        states = await self.backend.versions(name, deadline)
        available = [v for v, state in states.items() if state == "AVAILABLE"]
        if not available:
            if not states:
                raise errors.ModelNotFound(f"model {name!r} is not served by {self.backend.url}")
            listed = ", ".join(f"{v}: {s}" for v, s in sorted(states.items()))
            raise errors.ModelNotReady(f"model {name!r} has no AVAILABLE version yet ({listed})")
        return max(available)

    async def _load(self, name: str, version: int, deadline: Deadline) -> ServedModel:
        try:
            out = await self.backend.predict(name, version, METADATA_SIGNATURE, {"probe": ("DT_INT32", [0])},
                                             ["metadata_json", "tokenizer_json"], deadline)
        except errors.VersionGone as exc:
            raise errors.ModelNotReady(f"model {name!r} version {version} went away while loading it: {exc}") from None
        except errors.BackendFailed as exc:
            raise errors.BackendFailed(f"model {name!r} version {version} has no usable {METADATA_SIGNATURE} "
                                       f"signature (was it exported by tfxformers?): {exc.message}") from None
        try:
            metadata = json.loads(_text(out["metadata_json"][0]))
            tokenizer_json = _text(out["tokenizer_json"][0])
            encoder = TextEncoder(tokenizer_json, metadata)
        except Exception as exc:  # noqa: BLE001  (any malformed answer is the server's fault)
            raise errors.BackendFailed(f"model {name!r} version {version}: unreadable metadata ({exc})") from None
        return ServedModel(name, version, metadata, encoder)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
