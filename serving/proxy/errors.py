"""Every failure the proxy answers, as one exception family with an HTTP status and a short ``kind``.

Handlers in ``app.py`` turn them into ``{"error": message, "kind": kind}`` with that status and the
error's ``headers``; anything else becomes a 500 with a generic message (the traceback goes to the log,
never to the client). The 503s carry ``Retry-After``: a server that drains (SIGTERM), restarts or is
still loading is a passing state, and clients and load balancers should come back, not give up.
"""
from __future__ import annotations


RETRY_AFTER_SECONDS = 1  # long enough for another replica to be picked, short against a restart


class ProxyError(Exception):
    status_code = 500
    kind = "internal"
    headers: dict[str, str] = {}

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(ProxyError):
    """A request that is well-formed JSON but asks for something impossible (the same kind and status as a
    schema violation, so clients handle one 422)."""

    status_code, kind = 422, "invalid_input"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.fields = [{"field": field, "message": message}] if field else []


class TooLarge(ProxyError):
    status_code, kind = 413, "too_large"


class ModelNotFound(ProxyError):
    status_code, kind = 404, "model_not_found"


class WrongModelKind(ProxyError):
    status_code, kind = 400, "wrong_model_kind"


class BackendUnavailable(ProxyError):
    """The model server cannot be reached, or it refuses work for now (its drain after SIGTERM)."""

    status_code, kind = 503, "backend_unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class ModelNotReady(ProxyError):
    status_code, kind = 503, "model_not_ready"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class BackendTimeout(ProxyError):
    status_code, kind = 504, "backend_timeout"


class BackendFailed(ProxyError):
    """The model server answered, but with an error the proxy cannot blame on the client."""

    status_code, kind = 502, "backend_error"


class VersionGone(ModelNotFound):
    """The pinned version was unloaded between the status check and the call (the proxy retries once)."""
