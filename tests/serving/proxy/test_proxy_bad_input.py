"""Bad requests to the tokenizer proxy, one table: every case sends a real request to a real proxy (over
the gRPC and the REST backend, fixtures in ``conftest.py``) and checks the status, the error ``kind`` and
the message the contract promises (docs/contracts.md, proxy section), that no traceback leaks, and that
the same proxy still answers a good request afterwards.

Categories (the ``id`` prefix): ``text`` (texts that cannot be encoded), ``type`` (wrong JSON types),
``field`` (missing, empty or unknown fields), ``range`` (numbers out of range, huge numbers, NaN),
``body`` (not JSON, wrong content type, empty, too big), ``model`` (unknown model or route, wrong kind,
wrong method, a model without tfxformers' metadata), ``limit`` (over the proxy's request limits). The
backend failures (503 unreachable, 504 too slow) are in ``test_proxy.py``, which stops and freezes the server.
"""
from __future__ import annotations

import json

import httpx
import pytest

# The proxy answers every case here itself, before any backend call, with its own code and no TensorFlow
# (the backend-dependent failures are in test_proxy.py, which runs on both stacks): one stack suffices.
pytestmark = pytest.mark.once

CLASSIFY, EMBED, GENERATE = "/v1/models/sentiment:classify", "/v1/models/encoder:embed", "/v1/models/emma:generate"
TAG = "/v1/models/tagger:tag"
JSON = {"content-type": "application/json"}
LONG_TEXT = " ".join(f"the acting was good but the script was {w} and slow" for w in ("weak", "flat", "dull") * 5)


def body(value) -> bytes:
    """JSON as a client library would send it: ``json.dumps`` escapes a lone surrogate as ``\\ud800``."""
    return json.dumps(value).encode()


# (id, path, request body bytes, headers, status, kind, words the message must hold)
CASES = [
    # Text that cannot be encoded: lone UTF-16 surrogates (issue 16: these were 500 internal).
    ("text-classify-lone-surrogate", CLASSIFY, body({"texts": ["\ud800"]}), JSON, 422, "invalid_input",
     ["texts[0]", "surrogate", "UTF-8"]),
    ("text-classify-second-text", CLASSIFY, body({"texts": ["fine", "ok \udfff then"]}), JSON, 422, "invalid_input",
     ["texts[1]", "surrogate \\udfff at character 3"]),
    ("text-embed-lone-surrogate", EMBED, body({"texts": ["\ud800"]}), JSON, 422, "invalid_input", ["texts[0]", "surrogate"]),
    ("text-generate-prompt", GENERATE, body({"prompt": "Emma \ud83d walked"}), JSON, 422, "invalid_input",
     ["prompt", "surrogate"]),
    # Texts with nothing to read (issue 23's audit: :classify labelled them; `tfxformers predict` refuses them).
    ("text-classify-empty", CLASSIFY, body({"texts": ["fine", ""]}), JSON, 422, "invalid_input",
     ["texts[1]", "no visible character"]),
    ("text-classify-whitespace", CLASSIFY, body({"texts": [" \t\n\u3000"]}), JSON, 422, "invalid_input",
     ["texts[0]", "no visible character"]),
    ("text-classify-zero-width", CLASSIFY, body({"texts": ["ok", "fine", "\u200b\u200d\ufeff"]}), JSON, 422,
     "invalid_input", ["texts[2]", "no visible character"]),
    ("text-classify-nul", CLASSIFY, body({"texts": ["\x00\x00"]}), JSON, 422, "invalid_input",
     ["texts[0]", "no visible character"]),
    ("text-embed-zero-width", EMBED, body({"texts": ["\u2060"]}), JSON, 422, "invalid_input",
     ["texts[0]", "no visible character"]),
    ("text-generate-whitespace-prompt", GENERATE, body({"prompt": "   "}), JSON, 422, "invalid_input",
     ["prompt", "no visible character"]),
    ("text-generate-nul-prompt", GENERATE, body({"prompts": ["Emma", "\x00"]}), JSON, 422, "invalid_input",
     ["prompts[1]", "no visible character"]),
    ("text-body-not-utf8", CLASSIFY, b'{"texts": ["caf\xe9"]}', JSON, 422, "invalid_input", ["UTF-8"]),
    # Wrong JSON types.
    ("type-texts-a-string", CLASSIFY, body({"texts": "not a list"}), JSON, 422, "invalid_input", ["texts", "list"]),
    ("type-texts-number", CLASSIFY, body({"texts": ["ok", 3]}), JSON, 422, "invalid_input", ["texts[1]", "string"]),
    ("type-texts-null", EMBED, body({"texts": [None]}), JSON, 422, "invalid_input", ["texts[0]", "string"]),
    ("type-texts-nested", CLASSIFY, body({"texts": [["a"]]}), JSON, 422, "invalid_input", ["texts[0]", "string"]),
    ("type-body-a-list", CLASSIFY, body(["a", "b"]), JSON, 422, "invalid_input", ["body", "JSON object"]),
    ("type-body-null", CLASSIFY, b"null", JSON, 422, "invalid_input", ["body", "JSON object"]),
    ("type-prompt-number", GENERATE, body({"prompt": 5}), JSON, 422, "invalid_input", ["prompt", "string"]),
    ("type-max-new-tokens-string", GENERATE, body({"prompt": "Emma", "max_new_tokens": "8"}), JSON, 422,
     "invalid_input", ["max_new_tokens", "integer"]),
    ("type-max-new-tokens-float", GENERATE, body({"prompt": "Emma", "max_new_tokens": 8.5}), JSON, 422,
     "invalid_input", ["max_new_tokens", "integer"]),
    ("type-max-new-tokens-bool", GENERATE, body({"prompt": "Emma", "max_new_tokens": True}), JSON, 422,
     "invalid_input", ["max_new_tokens", "integer"]),
    ("type-temperature-string", GENERATE, body({"prompt": "Emma", "temperature": "1"}), JSON, 422, "invalid_input",
     ["temperature", "number"]),
    ("type-strategy-null", GENERATE, body({"prompt": "Emma", "strategy": None}), JSON, 422, "invalid_input",
     ["strategy", "greedy", "sample"]),
    # Missing, empty or unknown fields.
    ("field-missing-texts", CLASSIFY, body({}), JSON, 422, "invalid_input", ["texts: Field required"]),
    ("field-empty-texts", CLASSIFY, body({"texts": []}), JSON, 422, "invalid_input", ["texts", "at least 1"]),
    ("field-empty-texts-embed", EMBED, body({"texts": []}), JSON, 422, "invalid_input", ["texts", "at least 1"]),
    ("field-misspelt-texts", CLASSIFY, body({"text": ["x"]}), JSON, 422, "invalid_input",
     ["texts: Field required", "text: not a field"]),
    ("field-missing-prompt", GENERATE, body({"max_new_tokens": 4}), JSON, 422, "invalid_input",
     ["prompt: give either 'prompts' (a list) or 'prompt' (one string)"]),
    ("field-prompt-and-prompts", GENERATE, body({"prompt": "Emma", "prompts": ["Emma"]}), JSON, 422, "invalid_input",
     ["prompt: give either 'prompts'"]),
    ("field-empty-prompts", GENERATE, body({"prompts": []}), JSON, 422, "invalid_input", ["prompts", "at least 1"]),
    ("text-generate-second-prompt", GENERATE, body({"prompts": ["Emma", "x \ud800"]}), JSON, 422, "invalid_input",
     ["prompts[1]", "surrogate"]),
    ("range-greedy-several-sequences", GENERATE, body({"prompt": "Emma", "num_return_sequences": 2}), JSON, 422,
     "invalid_input", ["needs strategy 'sample' or 'beam'"]),
    ("range-more-sequences-than-beams", GENERATE, body({"prompt": "Emma", "strategy": "beam", "num_beams": 2,
                                                        "num_return_sequences": 3}), JSON, 422, "invalid_input",
     ["must be <= num_beams (2)"]),
    ("range-num-beams-huge", GENERATE, body({"prompt": "Emma", "strategy": "beam", "num_beams": 17}), JSON, 422,
     "invalid_input", ["num_beams", "16"]),
    ("field-empty-prompt", GENERATE, body({"prompt": ""}), JSON, 422, "invalid_input", ["prompt", "no visible character"]),
    ("field-unknown-option", GENERATE, body({"prompt": "Emma", "max_tokens": 4}), JSON, 422, "invalid_input",
     ["max_tokens: not a field"]),
    # Numbers out of range, huge, NaN; generation options that contradict each other.
    ("range-max-new-tokens-zero", GENERATE, body({"prompt": "Emma", "max_new_tokens": 0}), JSON, 422, "invalid_input",
     ["max_new_tokens", "greater than or equal to 1"]),
    ("range-max-new-tokens-negative", GENERATE, body({"prompt": "Emma", "max_new_tokens": -5}), JSON, 422,
     "invalid_input", ["max_new_tokens", "greater than or equal to 1"]),
    ("range-max-new-tokens-huge", GENERATE, body({"prompt": "Emma", "max_new_tokens": 2**31 - 1}), JSON, 413,
     "too_large", ["max_new_tokens is 2147483647", "limit is 16"]),
    ("range-max-new-tokens-1e30", GENERATE, body({"prompt": "Emma", "max_new_tokens": 10**30}), JSON, 413,
     "too_large", ["limit is 16"]),
    ("range-temperature-zero-sampling", GENERATE, body({"prompt": "Emma", "strategy": "sample", "temperature": 0}),
     JSON, 422, "invalid_input", ["temperature", "> 0 with strategy 'sample'"]),
    ("range-temperature-negative", GENERATE, body({"prompt": "Emma", "strategy": "sample", "temperature": -1.0}),
     JSON, 422, "invalid_input", ["temperature", "greater than or equal to 0"]),
    ("range-temperature-nan", GENERATE, b'{"prompt": "Emma", "strategy": "sample", "temperature": NaN}', JSON, 422,
     "invalid_input", ["temperature", "finite"]),
    ("range-temperature-infinite", GENERATE, b'{"prompt": "Emma", "strategy": "sample", "temperature": 1e400}', JSON,
     422, "invalid_input", ["temperature", "finite"]),
    ("range-top-p-zero", GENERATE, body({"prompt": "Emma", "strategy": "sample", "top_p": 0}), JSON, 422,
     "invalid_input", ["top_p", "greater than 0"]),
    ("range-top-p-over-one", GENERATE, body({"prompt": "Emma", "strategy": "sample", "top_p": 1.5}), JSON, 422,
     "invalid_input", ["top_p", "less than or equal to 1"]),
    ("range-top-k-negative", GENERATE, body({"prompt": "Emma", "strategy": "sample", "top_k": -1}), JSON, 422,
     "invalid_input", ["top_k", "greater than or equal to 0"]),
    ("range-top-k-huge", GENERATE, body({"prompt": "Emma", "top_k": 10**20}), JSON, 422, "invalid_input",
     ["top_k", "less than or equal to 2147483647"]),
    ("range-seed-negative", GENERATE, body({"prompt": "Emma", "seed": -1}), JSON, 422, "invalid_input", ["seed"]),
    ("range-unknown-strategy", GENERATE, body({"prompt": "Emma", "strategy": "nucleus"}), JSON, 422, "invalid_input",
     ["strategy", "'greedy', 'sample' or 'beam'"]),
    # Bodies that are not a JSON object sent as JSON.
    ("body-not-json", CLASSIFY, b"{texts:", JSON, 422, "invalid_input", ["body: not valid JSON"]),
    ("body-empty", CLASSIFY, b"", JSON, 422, "invalid_input", ["body", "no body"]),
    ("body-text-plain", CLASSIFY, body({"texts": ["a"]}), {"content-type": "text/plain"}, 422, "invalid_input",
     ["content-type: application/json", "text/plain"]),
    ("body-form-encoded", GENERATE, b"prompt=Emma", {"content-type": "application/x-www-form-urlencoded"}, 422,
     "invalid_input", ["content-type: application/json"]),
    ("body-too-big", CLASSIFY, body({"texts": ["x" * 200_000]}), JSON, 413, "too_large",
     ["request body is", "the limit is 97536 bytes"]),
    # Models and routes.
    ("model-unknown", CLASSIFY.replace("sentiment", "nothing"), body({"texts": ["x"]}), JSON, 404, "model_not_found",
     ["'nothing'", "not served"]),
    ("model-unknown-generate", GENERATE.replace("emma", "nothing"), body({"prompt": "x", "max_new_tokens": 4}), JSON, 404,
     "model_not_found", ["'nothing'"]),
    ("model-invalid-name", "/v1/models/bad%20name:classify", body({"texts": ["x"]}), JSON, 404, "model_not_found",
     ["not a valid model name"]),
    ("model-gpt2-classify", CLASSIFY.replace("sentiment", "emma"), body({"texts": ["x"]}), JSON, 400,
     "wrong_model_kind", ["gpt2 model", "use :generate"]),
    ("model-classifier-embed", EMBED.replace("encoder", "sentiment"), body({"texts": ["x"]}), JSON, 400,
     "wrong_model_kind", ["classifier model", "use :classify"]),
    ("model-encoder-generate", GENERATE.replace("emma", "encoder"), body({"prompt": "x", "max_new_tokens": 4}), JSON, 400,
     "wrong_model_kind", ["encoder model", "use :embed"]),
    ("model-unknown-route", "/v1/models/sentiment:predict", body({"texts": ["x"]}), JSON, 404, "not_found",
     ["no route", ":classify"]),
    ("model-wrong-method", "GET " + CLASSIFY, b"", {}, 405, "method_not_allowed", ["GET is not allowed", "use POST"]),
    # A model the server serves but tfxformers did not export: the server's refusal is not the client's fault.
    ("model-not-a-tfxformers-export", CLASSIFY.replace("sentiment", "plain"), body({"texts": ["x"]}), JSON, 502,
     "backend_error", ["'plain'", "no usable tfxformers_metadata signature", "exported by tfxformers"]),
    # The proxy's own limits (--max-texts 8, --max-chars 4000, --max-windows 6, --max-new-tokens 16).
    ("limit-texts", CLASSIFY, body({"texts": ["x"] * 9}), JSON, 413, "too_large", ["9 entries", "limit is 8"]),
    ("limit-chars", EMBED, body({"texts": ["x" * 3000, "y" * 1500]}), JSON, 413, "too_large",
     ["4500 characters", "limit is 4000"]),
    ("limit-windows", CLASSIFY, body({"texts": [LONG_TEXT * 2]}), JSON, 413, "too_large", ["texts[0]", "windows"]),
    ("limit-prompt-chars", GENERATE, body({"prompt": "x" * 4001, "max_new_tokens": 4}), JSON, 413, "too_large", ["4001 characters"]),
    ("limit-context", GENERATE, body({"prompt": "Emma " * 40, "max_new_tokens": 8}), JSON, 413, "too_large",
     ["context of 32 tokens"]),
    ("limit-context-second-prompt", GENERATE, body({"prompts": ["Emma", "Emma " * 40], "max_new_tokens": 8}), JSON,
     413, "too_large", ["prompts[1] is", "context of 32 tokens"]),
    ("limit-prompts", GENERATE, body({"prompts": ["Emma"] * 9, "max_new_tokens": 2}), JSON, 413, "too_large",
     ["prompts has 9 entries", "limit is 8"]),
    # :tag (a tiny NER tagger with windows of 24 pieces).
    ("tag-missing-texts", TAG, body({"aggregation": "first"}), JSON, 422, "invalid_input", ["texts: Field required"]),
    ("tag-empty-texts", TAG, body({"texts": []}), JSON, 422, "invalid_input", ["texts", "at least 1"]),
    ("tag-texts-a-string", TAG, body({"texts": "Paris"}), JSON, 422, "invalid_input", ["texts", "list"]),
    ("tag-blank-text", TAG, body({"texts": ["Paris", "\u200b "]}), JSON, 422, "invalid_input",
     ["texts[1]", "no visible character"]),
    ("tag-lone-surrogate", TAG, body({"texts": ["Zo\udc00"]}), JSON, 422, "invalid_input", ["texts[0]", "surrogate"]),
    ("tag-unknown-aggregation", TAG, body({"texts": ["Paris"], "aggregation": "mean"}), JSON, 422, "invalid_input",
     ["aggregation", "'first', 'average' or 'max'"]),
    ("tag-aggregation-number", TAG, body({"texts": ["Paris"], "aggregation": 1}), JSON, 422, "invalid_input",
     ["aggregation"]),
    ("tag-misspelt-option", TAG, body({"texts": ["Paris"], "aggregation_strategy": "max"}), JSON, 422, "invalid_input",
     ["aggregation_strategy: not a field"]),
    ("tag-classifier", TAG.replace("tagger", "sentiment"), body({"texts": ["x"]}), JSON, 400, "wrong_model_kind",
     ["classifier model", "has no :tag", "use :classify"]),
    ("tag-tagger-classify", CLASSIFY.replace("sentiment", "tagger"), body({"texts": ["x"]}), JSON, 400,
     "wrong_model_kind", ["tagger model", "use :tag"]),
    ("tag-unknown-model", TAG.replace("tagger", "nothing"), body({"texts": ["x"]}), JSON, 404, "model_not_found",
     ["'nothing'"]),
    ("tag-limit-texts", TAG, body({"texts": ["Paris"] * 9}), JSON, 413, "too_large", ["9 entries", "limit is 8"]),
    ("tag-limit-chars", TAG, body({"texts": ["x " * 1500, "y " * 600]}), JSON, 413, "too_large",
     ["4200 characters", "limit is 4000"]),
    ("tag-limit-windows", TAG, body({"texts": ["Paris", LONG_TEXT]}), JSON, 413, "too_large",
     ["texts[1]", "windows of 24", "limit is 6 windows per text"]),
]


def _send(proxy, path: str, content: bytes, headers: dict) -> httpx.Response:
    method, _, path = path.rpartition(" ")
    return httpx.request(method or "POST", proxy["url"] + path, content=content, headers=headers, timeout=30)


@pytest.mark.parametrize("path,content,headers,status,kind,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_gets_its_status_kind_and_message(proxy, path, content, headers, status, kind, needles):
    response = _send(proxy, path, content, headers)
    assert "Traceback" not in response.text
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["kind"] == kind, answer
    for needle in needles:
        assert needle in answer["error"], (needle, answer["error"])
    if kind == "invalid_input":
        assert answer["fields"] and all(f["field"] and f["message"] for f in answer["fields"])
    # The proxy is unharmed: a good request right after is answered.
    good = httpx.post(proxy["url"] + CLASSIFY, json={"texts": ["a fine film"]}, timeout=30)
    assert good.status_code == 200, good.text


def test_greedy_accepts_temperature_zero_and_surrogate_pairs_are_text(proxy):
    """The edges of the cases above: valid requests that a too-strict check would refuse."""
    greedy = _send(proxy, GENERATE, body({"prompt": "Emma", "max_new_tokens": 2, "temperature": 0}), JSON)
    assert greedy.status_code == 200, greedy.text
    # "\ud83d\ude00" in JSON is one emoji (a valid pair), not two lone surrogates.
    emoji = _send(proxy, CLASSIFY, b'{"texts": ["fun \\ud83d\\ude00"]}', JSON)
    assert emoji.status_code == 200, emoji.text


def test_a_chunked_body_over_the_limit_is_refused_while_reading(proxy):
    def chunks():
        yield b'{"texts": ["'
        for _ in range(20):
            yield b"x" * 10_000
        yield b'"]}'

    response = httpx.post(proxy["url"] + CLASSIFY, content=chunks(), headers=JSON, timeout=30)
    assert response.status_code == 413 and response.json()["kind"] == "too_large", response.text
    good = httpx.post(proxy["url"] + CLASSIFY, json={"texts": ["a fine film"]}, timeout=30)
    assert good.status_code == 200, good.text

