"""Request failures of the embedded model server, with the status codes TF Serving answers.

``ServingError(code, message)`` carries a ``grpc.StatusCode`` name; the gRPC front end aborts with that
code, the REST front end answers ``{"error": message}`` with ``HTTP_STATUS[code]``.
"""
from __future__ import annotations


# gRPC status code name -> HTTP status, as tensorflow_serving/model_servers/http_server.cc maps them.
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
    "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request failure with the status code TF Serving would answer (a ``grpc.StatusCode`` name)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def op_error_message(message: str) -> str:
    """The part of a TensorFlow error a client needs: TF adds "Graph execution error:" and the node's
    stack in front ("Detected at node ...") and the failing node behind ("\\n\\t [[{{node ...}}]]")."""
    message = message.split("\n\t [[")[0].strip()
    if message.startswith("Graph execution error:"):
        lines = [line for line in message.splitlines() if line.strip()]
        message = lines[-1].strip() if lines else message
    return message
