"""What the server serves and how: one model, filled by the CLI or by tests.

Defaults suit tests and local benchmarks: both API generations, no auth, every
capability on, strict validation off (tests turn it on).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Generation = Literal["0.9", "0.10"]
GenerationChoice = Literal["both", "0.9", "0.10"]

#: Where random cuts may strike (``ServerConfig.cut_scopes``).
#: ``stream``: SSE output streams and WebSocket attaches (clients resume).
#: ``keyed``: responses to requests carrying an ``Idempotency-Key`` (clients retry).
#: ``get``: responses to GET/HEAD requests (safe to retry).
#: ``all``: any response.
CutScope = Literal["stream", "keyed", "get", "all"]

DEFAULT_CUT_SCOPES: tuple[CutScope, ...] = ("stream", "keyed")

KiB = 1024
MiB = 1024 * KiB


class ServerConfig(BaseModel):
    """Everything ``create_app``/``serve`` need besides the runtime."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    generation: GenerationChoice = "both"

    # URL layout. 0.9: /{v09_prefix}/{v09_tenant}/boxes, /{v09_prefix}/config and
    # /{v09_prefix}/oauth/tokens. 0.10: /v1/boxes, or /v1/{v10_prefix}/boxes.
    v09_prefix: str = Field(default="v1", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._/-]*$")
    v09_tenant: str = Field(default="default", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
    v10_prefix: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._/-]*$")

    # Auth. 0.10 routes want ``Bearer <api_key>`` when set; 0.9 routes want a token
    # from POST /oauth/tokens when client credentials are set. Unset: open.
    api_key: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(default=3600, ge=1)

    # Strict mode: every request and response checked against the OpenAPI documents.
    strict: bool = False

    # Capabilities advertised in GET /v1/config and enforced by the routes.
    snapshots: bool = True
    clone: bool = True
    export: bool = True
    import_: bool = Field(default=True, alias="import")
    tty: bool = True

    # Defaults advertised in GET /v1/config and applied to creates.
    default_auto_remove: bool = False
    #: Image references meaning "the runtime's default image" (the bwrap runtime's
    #: default is the host root). "alpine:latest" is both API documents' default
    #: and what the official SDK sends when no image is given.
    default_image_aliases: list[str] = Field(default_factory=lambda: ["alpine:latest"])

    # Execution output. Each execution keeps at most ``backlog_bytes`` of output
    # for replay; the producer never runs more than half of it ahead of the last
    # consumer, unless no consumer was attached for ``reconnect_grace_seconds``.
    backlog_bytes: int = Field(default=16 * MiB, ge=64 * 1024)
    reconnect_grace_seconds: float = Field(default=60.0, gt=0)
    completed_retention_seconds: float = Field(default=300.0, gt=0)
    max_executions: int = Field(default=1000, ge=1)
    #: Output kept by finished executions, all together; beyond it the oldest
    #: finished ones are evicted early.
    finished_output_bytes: int = Field(default=256 * MiB, ge=0)
    # Small enough that a flaky network still gets whole events through (SSE resumes
    # only at event boundaries), large enough to keep per-event overhead low.
    sse_event_max_bytes: int = Field(default=64 * KiB, ge=1024)
    ws_frame_max_bytes: int = Field(default=128 * 1024, ge=1024)
    #: WebSocket pings and SSE keep-alive comments while idle. Under 10 s: the
    #: official SDK gives up on an attach that shows no frame for 10 s.
    keepalive_seconds: float = Field(default=5.0, gt=0)

    file_transfer_max_bytes: int = Field(default=1024 * MiB, ge=1)
    idempotency_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)
    idempotency_max_entries: int = Field(default=10_000, ge=1)

    # Fault injection (see faults.py). cut_random: probability per opportunity.
    cut_random: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int | None = None
    cut_scopes: list[CutScope] = Field(default_factory=lambda: list(DEFAULT_CUT_SCOPES))
    #: Lets tests and benchmarks in other processes steer faults over HTTP
    #: (``/_faults``); off unless asked for.
    fault_api: bool = False

    log_level: Literal["debug", "info", "warning", "error"] = "warning"

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("client_id and client_secret go together: set both or neither")
        if self.generation == "both" and self.v10_prefix in {self.v09_tenant, "oauth", "me"}:
            raise ValueError(f"v10_prefix {self.v10_prefix!r} collides with a 0.9 or root route")
        return self

    def serves(self, generation: Generation) -> bool:
        return self.generation in ("both", generation)

    @property
    def v09_root(self) -> str:
        """Path of the 0.9 box routes, e.g. ``/v1/default``."""
        return f"/{self.v09_prefix}/{self.v09_tenant}"

    @property
    def v10_root(self) -> str:
        """Path of the 0.10 box routes, e.g. ``/v1`` or ``/v1/acme``."""
        return f"/v1/{self.v10_prefix}" if self.v10_prefix else "/v1"

    def capabilities(self) -> dict[str, bool]:
        return {
            "snapshots_enabled": self.snapshots,
            "clone_enabled": self.clone,
            "export_enabled": self.export,
            "import_enabled": self.import_,
            "tty_enabled": self.tty,
            "streaming_enabled": True,
        }
