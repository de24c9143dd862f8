"""What the endpoints do: check limits, tokenize, call the pinned version's signature, shape the answer.

One ``InferenceService`` per app (made in the lifespan handler). Every request gets one ``Deadline``
(``timeout_seconds``, or ``generate_timeout_seconds`` for generation) shared by its status check,
tokenizer fetch and predict calls. If the pinned version disappears between the status check and the
call (a new version replaced it), the request is retried once on the new version.
"""
from __future__ import annotations

import asyncio
import secrets

from tfxformers.serving.proxy import errors
from tfxformers.serving.proxy.backends import Backend, Deadline
from tfxformers.serving.proxy.models import ModelRegistry, ServedModel
from tfxformers.serving.proxy.settings import ProxySettings
from tfxformers.serving.proxy.text import COMBINE, COMBINE_EMBEDDING, combine

_ENDPOINT_FOR_KIND = {"classifier": "classify", "encoder": "embed", "gpt2": "generate", "qa": "answer"}


class InferenceService:
    def __init__(self, settings: ProxySettings, backend: Backend, registry: ModelRegistry):
        self.settings = settings
        self.backend = backend
        self.registry = registry

    async def _on_latest(self, name: str, timeout: float, run):
        deadline = Deadline(timeout)
        for attempt in range(2):
            served = await self.registry.get(name, deadline)
            try:
                return await run(served, deadline)
            except errors.VersionGone as exc:
                self.registry.forget(name)
                if attempt:
                    raise errors.ModelNotReady(f"model {name!r} changed versions twice during one request: {exc}") from None

    def check_texts(self, texts: list[str]) -> None:
        if len(texts) > self.settings.max_texts:
            raise errors.TooLarge(f"texts has {len(texts)} entries; the limit is {self.settings.max_texts} per request")
        chars = sum(len(t) for t in texts)
        if chars > self.settings.max_chars:
            raise errors.TooLarge(f"texts hold {chars} characters; the limit is {self.settings.max_chars} per request")

    @staticmethod
    def _require_kind(served: ServedModel, kind: str, endpoint: str) -> None:
        if served.kind != kind:
            hint = _ENDPOINT_FOR_KIND.get(served.kind)
            use = f"; use :{hint}" if hint else ""
            raise errors.WrongModelKind(f"model {served.name!r} is a {served.kind} model and has no :{endpoint}{use}")

    async def _score_windows(self, served: ServedModel, texts: list[str], signature: str, output: str,
                             deadline: Deadline):
        windows = served.encoder.windows(texts, self.settings.window_overlap, self.settings.max_windows)
        batches = served.encoder.batches(windows, self.settings.max_batch_size)
        answers = await asyncio.gather(*(
            self.backend.predict(served.name, served.version, signature,
                                 {"input_ids": ("DT_INT32", ids), "attention_mask": ("DT_INT32", mask)},
                                 [output], deadline)
            for _, ids, mask in batches))
        scores: list = [None] * len(windows)
        for (members, _, _), answer in zip(batches, answers):
            rows = answer[output]
            if len(rows) != len(members):
                raise errors.BackendFailed(f"{signature} answered {len(rows)} rows for {len(members)} inputs")
            for i, row in zip(members, rows):
                scores[i] = [float(x) for x in row]
        combined, counts = combine(windows, scores, len(texts))
        tokens = [0] * len(texts)
        for window in windows:
            tokens[window.text_index] = window.text_tokens
        return combined, counts, tokens

    async def classify(self, name: str, texts: list[str]) -> dict:
        self.check_texts(texts)

        async def run(served: ServedModel, deadline: Deadline) -> dict:
            self._require_kind(served, "classifier", "classify")
            probabilities, counts, tokens = await self._score_windows(served, texts, "serving_default",
                                                                      "probabilities", deadline)
            labels = served.label_names or [str(i) for i in range(len(probabilities[0]))]
            results = []
            for probs, n_windows, n_tokens in zip(probabilities, counts, tokens):
                best = max(range(len(probs)), key=probs.__getitem__)
                results.append({"label": labels[best], "probability": probs[best],
                                "probabilities": dict(zip(labels, probs)), "windows": n_windows, "tokens": n_tokens})
            return {"model": name, "version": served.version, "combine": COMBINE, "results": results}

        return await self._on_latest(name, self.settings.timeout_seconds, run)

    async def embed(self, name: str, texts: list[str]) -> dict:
        self.check_texts(texts)

        async def run(served: ServedModel, deadline: Deadline) -> dict:
            self._require_kind(served, "encoder", "embed")
            vectors, counts, tokens = await self._score_windows(served, texts, "embed", "embedding", deadline)
            return {"model": name, "version": served.version, "combine": COMBINE_EMBEDDING,
                    "dimension": len(vectors[0]) if vectors else 0, "embeddings": vectors,
                    "windows": counts, "tokens": tokens}

        return await self._on_latest(name, self.settings.timeout_seconds, run)

    async def generate(self, name: str, prompt: str, max_new_tokens: int, strategy: str, temperature: float,
                       top_k: int, top_p: float, seed: int | None) -> dict:
        if max_new_tokens > self.settings.max_new_tokens:
            raise errors.TooLarge(f"max_new_tokens is {max_new_tokens}; the limit is {self.settings.max_new_tokens}")
        if len(prompt) > self.settings.max_chars:
            raise errors.TooLarge(f"prompt holds {len(prompt)} characters; the limit is {self.settings.max_chars}")
        seed = secrets.randbelow(2**31 - 1) if seed is None else seed

        async def run(served: ServedModel, deadline: Deadline) -> dict:
            self._require_kind(served, "gpt2", "generate")
            ids = served.encoder.tokenizer.encode(prompt).ids
            if not ids:
                raise errors.InvalidInput("tokenizes to no tokens at all; give some text to continue", "prompt")
            limit = served.encoder.max_length
            if len(ids) + max_new_tokens > limit:
                raise errors.TooLarge(f"prompt is {len(ids)} tokens; with max_new_tokens {max_new_tokens} that is "
                                      f"more than this model's context of {limit} tokens")
            # The generate signature takes no mask: one prompt per call, so nothing is padded.
            out = await self.backend.predict(served.name, served.version, "generate", {
                "input_ids": ("DT_INT32", [ids]), "max_new_tokens": ("DT_INT32", max_new_tokens),
                "strategy": ("DT_INT32", 1 if strategy == "sample" else 0),
                # Greedy ignores temperature; 1.0 keeps a 0 (allowed with greedy) away from the signature's
                # own checks on it.
                "temperature": ("DT_FLOAT", float(temperature) if strategy == "sample" else 1.0), "top_k": ("DT_INT32", top_k),
                "top_p": ("DT_FLOAT", float(top_p)), "seed": ("DT_INT32", seed),
            }, ["output_ids", "num_generated"], deadline)
            n = int(out["num_generated"][0])
            new_ids = [int(x) for x in out["output_ids"][0][:n]]
            eos = served.metadata.get("eos_id")
            text = served.encoder.tokenizer.decode(new_ids, skip_special_tokens=True)
            return {"model": name, "version": served.version, "prompt": prompt, "text": text,
                    "token_ids": new_ids, "prompt_tokens": len(ids), "num_generated": n,
                    "stopped_at_eos": bool(new_ids) and eos is not None and new_ids[-1] == eos,
                    "strategy": strategy, "seed": seed}

        return await self._on_latest(name, self.settings.generate_timeout_seconds, run)

    async def ready(self, names: list[str]) -> dict:
        """Versions of the given models (each must have an AVAILABLE version), or, with no names, proof
        that the server answers at all (a status query for a model that cannot exist)."""
        deadline = Deadline(self.settings.timeout_seconds)
        if not names:
            try:
                await self.backend.versions("tfxformers-readiness-probe", deadline)
            except errors.ModelNotFound:
                pass  # the server answered: it is reachable
            return {}
        return {name: (await self.registry.get(name, deadline)).version for name in names}
