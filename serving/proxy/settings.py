"""The proxy's settings: one pydantic-settings object, from flags or ``TFXFORMERS_*`` environment variables.

Built by ``create_app`` (or the CLI), never at import, so tests and embedders pass their own. Explicit
keyword arguments win over the environment, which wins over the defaults.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProxySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TFXFORMERS_", extra="ignore")

    backend: str = Field("grpc://127.0.0.1:8500",
                         description="TF Serving: grpc://HOST:PORT (port 8500) or http://HOST:PORT (REST, 8501)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    timeout_seconds: float = Field(5.0, gt=0, description="budget for all backend calls of one request")
    generate_timeout_seconds: float = Field(60.0, gt=0, description="the same budget for :generate")
    max_texts: int = Field(64, ge=1, description="texts per classify/embed request (more: 413)")
    max_chars: int = Field(200_000, ge=1, description="characters per request, all texts together (more: 413)")
    max_windows: int = Field(16, ge=1, description="windows one long text may be split into (more: 413)")
    window_overlap: int = Field(32, ge=0, description="tokens shared by neighbouring windows of a long text")
    max_batch_size: int = Field(32, ge=1, description="rows per backend call; bigger requests are split")
    max_new_tokens: int = Field(256, ge=1, description="upper limit a :generate request may ask for")
    status_refresh_seconds: float = Field(2.0, ge=0, description="how often a model's served version is re-checked")
    # :answer (question answering): a context is one text of any length, split into windows server-side.
    max_context_chars: int = Field(200_000, ge=1, description=":answer context characters (more: 413)")
    max_answer_windows: int = Field(256, ge=1, description=":answer windows one context may need (more: 413)")
    answer_batch_windows: int | None = Field(None, ge=0, description=":answer windows per Predict call; 0 = as many "
                                             "as the server's limits allow; unset: the export's "
                                             "preferred_windows_per_call")
    answer_concurrency: int = Field(2, ge=1, le=64, description=":answer Predict calls of one request in flight at once")
    # The model server's per-request limits, which TF Serving's API cannot report: the defaults are
    # `tfxformers serve`'s own (--max-rows, --max-tokens), so a context the proxy accepts is split into
    # calls that server takes. Raise them with the server's flags; stock TF Serving has no such limits.
    backend_max_rows: int = Field(128, ge=1, description="rows the model server takes per Predict call")
    backend_max_tokens: int = Field(16384, ge=1, description="rows x sequence length the model server takes per call")
    answer_timeout_seconds: float = Field(30.0, gt=0, description="the backend budget for one :answer request")
    # :tag reads every window of every text of the request (up to max_texts x max_windows rows): more than 5 s on a CPU.
    tag_timeout_seconds: float = Field(30.0, gt=0, description="the backend budget for one :tag request")
    models: str = Field("", description="comma-separated models /readyz checks (and that are loaded at start)")
    log_level: str = "info"

    @field_validator("backend")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("grpc", "http", "https") or not parts.hostname or not parts.port:
            raise ValueError("backend must look like grpc://HOST:PORT or http://HOST:PORT")
        return value.rstrip("/")

    @property
    def backend_kind(self) -> str:
        return "grpc" if self.backend.startswith("grpc://") else "rest"

    @property
    def model_names(self) -> list[str]:
        return [name.strip() for name in self.models.split(",") if name.strip()]
