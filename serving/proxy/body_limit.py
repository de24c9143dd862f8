"""A cap on request body size, checked before FastAPI reads and parses the body.

``--max-chars`` only counts characters after the JSON is parsed, so without this a single 100 MB body
would be buffered and decoded in full before being refused. ``BodyLimitMiddleware`` (plain ASGI) answers
413 ``too_large`` when the declared ``Content-Length`` is over the limit, or, for a chunked body, as soon
as the bytes read pass it; smaller bodies are passed on unchanged.
"""
from __future__ import annotations

import json

# JSON may spell one character as a 6-byte \uXXXX escape; 8 bytes per allowed character plus room for the
# other fields keeps every body that --max-chars would accept under the cap.
BYTES_PER_CHAR = 8
OVERHEAD_BYTES = 64 * 1024


def body_limit(max_chars: int) -> int:
    return BYTES_PER_CHAR * max_chars + OVERHEAD_BYTES


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int, on_refused=None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused or (lambda: None)

    async def _refuse(self, send, size: str) -> None:
        self.on_refused()
        body = json.dumps({"error": f"the request body is {size} bytes; the limit is {self.max_bytes} bytes "
                                    f"({BYTES_PER_CHAR} per character of --max-chars, plus {OVERHEAD_BYTES})",
                           "kind": "too_large"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes:
                await self._refuse(send, str(size))
                return
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): read up to the limit here, then hand the app what was read.
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_bytes:
                await self._refuse(send, f"more than {total}")
                return
            if not message.get("more_body"):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)
