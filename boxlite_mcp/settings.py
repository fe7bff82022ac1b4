"""Server settings: one model, filled from the command line and the environment.

Every field has an environment variable ``BOXLITE_MCP_<FIELD>`` (upper case);
the CLI's flags override them. Runtime connection settings (``BOXLITE_REST_URL``
and friends) belong to the runtimes, not here.

A leaf every layer may read: it imports nothing of the package, and it is the one
place that names the runtimes, the transports and the server's own environment
variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The runtimes, as ``--runtime`` and ``runtime_info`` name them.
RuntimeName = Literal["bwrap", "rest", "local"]
RuntimeChoice = Literal["auto", RuntimeName]
#: The order ``--runtime auto`` considers them in (and ``--help`` lists them).
AUTO_ORDER: tuple[RuntimeName, ...] = ("rest", "local", "bwrap")
TransportChoice = Literal["stdio", "sse", "streamable-http"]
LogLevel = Literal["debug", "info", "warning", "error"]

#: The longest one call may wait (exec_run's return_after_seconds, exec_read's wait_seconds):
#: an hour, the default ceiling of a command's timeout.
MAX_CALL_WAIT_SECONDS = 3600

#: Every Settings field ``f`` is read from ``ENV_PREFIX + F``.
ENV_PREFIX = "BOXLITE_MCP_"
#: Where a runtime on this host keeps its state when no --home is given (BoxLite's own).
HOME_ENV = "BOXLITE_HOME"


def env_name(field: str) -> str:
    """The environment variable of a Settings field."""
    return f"{ENV_PREFIX}{field.upper()}"


#: The list fields, and what separates their items in the environment.
LIST_SEPARATORS: dict[str, str] = {
    "allow_paths": os.pathsep,
    "image_include": os.pathsep,
    "allowed_hosts": ",",
    "allowed_origins": ",",
    "net_allow": ",",
    "secrets": ";",  # items hold commas (their hosts)
}


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
    log_level: LogLevel = "info"
    # Which tools to offer: "all", "core", or a comma list (server/toolsets.py checks it).
    tools: str = "all"

    # Which runtime.
    runtime: RuntimeChoice = "auto"
    url: str | None = None  # BoxLite REST server (implies runtime rest under auto)
    home: Path | None = None  # bwrap/local runtime home (else BOXLITE_HOME, else XDG)
    image_include: list[Path] = Field(default_factory=list)  # host paths shown in bwrap boxes
    default_disk_gb: int = Field(default=4, ge=0)  # bwrap box disk when none asked; 0: none

    # The widest set of destinations a box with network may reach (allow_net syntax
    # plus :PORT; "*" is the public internet only). Boxes narrow it with allow_net.
    net_allow: list[str] = Field(default_factory=lambda: ["*"])
    expose_host: str = "127.0.0.1"  # where box_expose listens on the host
    # Secrets boxes may use without seeing them: "NAME[:HOST,HOST...]" each, the value in
    # the server's environment variable NAME (env form: "NAME:HOST,HOST;NAME2:*").
    secrets: list[str] = Field(default_factory=list)
    net_ca_file: Path | None = None  # extra CAs the proxy trusts for upstream HTTPS

    # Host paths that copy_in/copy_out/export/import may touch. Empty: none.
    allow_paths: list[Path] = Field(default_factory=list)

    # Where replicas share state (sessions/state/): None or "memory" keeps it in this
    # process; redis://HOST:PORT/DB in Redis, for several replicas.
    state_url: str | None = None

    # The registry.
    max_boxes_per_owner: int = Field(default=10, ge=1)
    max_boxes_total: int = Field(default=100, ge=1)
    box_idle_ttl_seconds: float = Field(default=1800.0, gt=0)
    reap_interval_seconds: float = Field(default=30.0, gt=0)

    # Execution.
    exec_default_timeout_seconds: float = Field(default=300.0, gt=0)
    exec_max_timeout_seconds: float = Field(default=3600.0, gt=0)
    # exec_run returns by then (the command runs on): MCP clients time calls out at ~60 s.
    exec_return_after_seconds: float = Field(default=50.0, gt=0, le=MAX_CALL_WAIT_SECONDS)
    # Output in one result, both streams together: sized for a model's context.
    result_output_cap_bytes: int = Field(default=16 * 1024, ge=1024)
    stored_output_cap_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)  # resource
    progress_chunk_bytes: int = Field(default=16 * 1024, ge=256)
    progress_interval_seconds: float = Field(default=0.05, gt=0)
    max_executions_kept: int = Field(default=256, ge=1)
    #: How long an execution's follower holds its lease without renewing it: after a
    #: replica dies, another takes its running executions over within about this long.
    exec_lease_seconds: float = Field(default=10.0, gt=0, le=600)
    file_transfer_cap_bytes: int = Field(default=10 * 1024 * 1024, ge=1)  # file_read/file_write

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``BOXLITE_MCP_*`` variables, then ``overrides`` (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(env_name(name))
            if raw is None:
                continue
            separator = LIST_SEPARATORS.get(name)
            values[name] = raw if separator is None else [p for p in raw.split(separator) if p]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
