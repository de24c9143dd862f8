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

_ENDPOINT_FOR_KIND = {"classifier": "classify", "encoder": "embed", "gpt2": "generate", "qa": "answer", "tagger": "tag"}


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

    async def generate(self, name: str, prompts: list[str], options: dict) -> dict:
        """Continue every prompt (``options``: the :generate body's fields). Prompts go to the signature
        together (left-aligned rows with their lengths), at most ``--max-batch-size`` sequences per call."""
        from tfxformers.models.lm.generate import STRATEGY_IDS, request_inputs

        max_new_tokens, strategy = options["max_new_tokens"], options["strategy"]
        if max_new_tokens > self.settings.max_new_tokens:
            raise errors.TooLarge(f"max_new_tokens is {max_new_tokens}; the limit is {self.settings.max_new_tokens}")
        if len(prompts) > self.settings.max_texts:
            raise errors.TooLarge(f"prompts has {len(prompts)} entries; the limit is {self.settings.max_texts} "
                                  "per request")
        chars = sum(len(p) for p in prompts)
        if chars > self.settings.max_chars:
            what = "prompt holds" if len(prompts) == 1 else "prompts hold"
            raise errors.TooLarge(f"{what} {chars} characters; the limit is {self.settings.max_chars}")
        seed = secrets.randbelow(2**31 - 1) if options["seed"] is None else options["seed"]
        # Each row runs num_return_sequences (or num_beams) sequences; a call holds at most max_batch_size.
        width = options["num_beams"] if strategy == "beam" else options["num_return_sequences"]
        per_call = max(1, self.settings.max_batch_size // width)

        async def run(served: ServedModel, deadline: Deadline) -> dict:
            self._require_kind(served, "gpt2", "generate")
            encoded = [served.encoder.tokenizer.encode(p).ids for p in prompts]
            limit = served.encoder.max_length
            for i, ids in enumerate(encoded):
                field = "prompt" if len(prompts) == 1 else f"prompts[{i}]"
                if not ids:
                    raise errors.InvalidInput("tokenizes to no tokens at all; give some text to continue", field)
                if len(ids) + max_new_tokens > limit:
                    raise errors.TooLarge(f"{field} is {len(ids)} tokens; with max_new_tokens {max_new_tokens} that "
                                          f"is more than this model's context of {limit} tokens")
            signature_options = dict(
                max_new_tokens=max_new_tokens, strategy=STRATEGY_IDS[strategy],
                # Only sampling reads temperature; 1.0 keeps a 0 (allowed otherwise) away from the graph's checks.
                temperature=float(options["temperature"]) if strategy == "sample" else 1.0,
                top_k=options["top_k"], top_p=float(options["top_p"]),
                num_return_sequences=options["num_return_sequences"],
                num_beams=options["num_beams"] if strategy == "beam" else 1,
                length_penalty=float(options["length_penalty"]), early_stopping=int(options["early_stopping"]))
            pad = served.metadata.get("pad_id") or 0
            calls = []
            generate_inputs = ((served.metadata.get("signatures") or {}).get("generate") or {}).get("inputs") or []
            if "prompt_length" not in generate_inputs:
                # An export made before generate took a batch dimension: scalar options, one prompt per call.
                if strategy == "beam" or options["num_return_sequences"] > 1:
                    raise errors.WrongModelKind(f"version {served.version} of {name!r} was exported before beam "
                                                "search and num_return_sequences; export it again")
                scalars = {k: v for k, v in signature_options.items() if k in generate_inputs}
                for i, ids in enumerate(encoded):
                    inputs = {"input_ids": ("DT_INT32", [ids]), "seed": ("DT_INT32", (seed + i) % 2**31)}
                    inputs.update({k: ("DT_FLOAT" if isinstance(v, float) else "DT_INT32", v) for k, v in scalars.items()})
                    calls.append(self._old_generate(served, inputs, deadline))
            for start in range(0, len(encoded) if not calls else 0, per_call):
                chunk = encoded[start:start + per_call]
                inputs = request_inputs(chunk, pad, **signature_options,
                                        seed=[(seed + start + i) % 2**31 for i in range(len(chunk))])
                types = {k: ("DT_FLOAT" if isinstance(v[0], float) else "DT_INT32", v) for k, v in inputs.items()}
                calls.append(self.backend.predict(served.name, served.version, "generate", types,
                                                  ["output_ids", "num_generated", "sequence_scores"], deadline))
            answers = await asyncio.gather(*calls)
            eos = served.metadata.get("eos_id")
            decode = served.encoder.tokenizer.decode
            results = []
            for answer in answers:
                for row_ids, row_counts, row_scores in zip(answer["output_ids"], answer["num_generated"],
                                                           answer["sequence_scores"]):
                    sequences = []
                    for ids, count, score in list(zip(row_ids, row_counts, row_scores))[:options["num_return_sequences"]]:
                        new_ids = [int(x) for x in ids[:int(count)]]
                        sequences.append({"text": decode(new_ids, skip_special_tokens=True), "token_ids": new_ids,
                                          "num_generated": int(count), "score": float(score),
                                          "stopped_at_eos": bool(new_ids) and eos is not None and new_ids[-1] == eos})
                    results.append({"sequences": sequences})
            if len(results) != len(prompts):
                raise errors.BackendFailed(f"generate answered {len(results)} rows for {len(prompts)} prompts")
            for result, prompt, ids in zip(results, prompts, encoded):
                result.update(prompt=prompt, prompt_tokens=len(ids))
            return {"model": name, "version": served.version, "strategy": strategy, "seed": seed, "results": results}

        return await self._on_latest(name, self.settings.generate_timeout_seconds, run)

    async def _old_generate(self, served: ServedModel, inputs: dict, deadline: Deadline) -> dict:
        """One prompt through the scalar generate signature, answered in the batched signature's shape."""
        out = await self.backend.predict(served.name, served.version, "generate", inputs,
                                         ["output_ids", "num_generated"], deadline)
        return {"output_ids": [[out["output_ids"][0]]], "num_generated": [[out["num_generated"][0]]],
                "sequence_scores": [[0.0]]}

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
