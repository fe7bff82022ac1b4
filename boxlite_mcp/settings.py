"""Server settings: one model, filled from the command line and the environment.

Every field has an environment variable ``BOXLITE_MCP_<FIELD>`` (upper case);
the CLI's flags override them. Runtime connection settings (``BOXLITE_REST_URL``
and friends) belong to the runtimes, not here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RuntimeChoice = Literal["auto", "rest", "local", "bwrap"]
TransportChoice = Literal["stdio", "sse", "streamable-http"]


class Settings(BaseModel):
    """What the MCP server needs to know; defaults suit one local agent on stdio."""

    model_config = ConfigDict(extra="forbid")

    # Where and how to serve.
    transport: TransportChoice = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    allowed_hosts: list[str] = Field(default_factory=list)  # DNS-rebinding allow-list
    allowed_origins: list[str] = Field(default_factory=list)
    auth_tokens_file: Path | None = None  # lines "token subject"; bearer auth when set
    allow_anonymous: bool = False  # serve HTTP without auth on a non-loopback address
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Which runtime.
    runtime: RuntimeChoice = "auto"
    url: str | None = None  # BoxLite REST server (implies runtime rest under auto)
    home: Path | None = None  # bwrap/local runtime home (else BOXLITE_HOME, else XDG)

    # Host paths that copy_in/copy_out/export/import may touch. Empty: none.
    allow_paths: list[Path] = Field(default_factory=list)

    # The registry.
    max_boxes_per_owner: int = Field(default=10, ge=1)
    max_boxes_total: int = Field(default=100, ge=1)
    box_idle_ttl_seconds: float = Field(default=1800.0, gt=0)
    reap_interval_seconds: float = Field(default=30.0, gt=0)

    # Execution.
    exec_default_timeout_seconds: float = Field(default=300.0, gt=0)
    exec_max_timeout_seconds: float = Field(default=3600.0, gt=0)
    result_output_cap_bytes: int = Field(default=64 * 1024, ge=1024)  # per stream, in results
    stored_output_cap_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)  # resource
    progress_chunk_bytes: int = Field(default=16 * 1024, ge=256)
    progress_interval_seconds: float = Field(default=0.05, gt=0)
    max_executions_kept: int = Field(default=256, ge=1)
    file_transfer_cap_bytes: int = Field(default=10 * 1024 * 1024, ge=1)  # file_read/file_write

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``BOXLITE_MCP_*`` variables, then ``overrides`` (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(f"BOXLITE_MCP_{name.upper()}")
            if raw is None:
                continue
            annotation = str(field.annotation)
            if "list" in annotation:
                values[name] = [part for part in raw.split(os.pathsep if "Path" in annotation
                                                             else ",") if part]
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
