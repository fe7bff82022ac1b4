"""Data models shared by every runtime, in the BoxLite API's vocabulary.

Field names follow the BoxLite REST API (``rest-api-v0.9.yaml``) so that a REST
runtime maps them one to one, and the MCP layer can show them unchanged.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from ..settings import RuntimeName
from .errors import InvalidArgumentError

#: Box and snapshot names: the one rule every runtime and the MCP surface apply.
BOX_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAME_MAX_LENGTH = 128
_NAME = re.compile(BOX_NAME_PATTERN)


def check_nul(field: str, value: str | None) -> None:
    """Refuse text holding a NUL byte; ``field`` names it in the error.

    A NUL cannot be part of an argv entry, an environment variable, a path or a
    user name: ``subprocess`` and ``os`` raise ``ValueError`` ('embedded null
    byte'), which is no BoxliteError, so a call would crash instead of answering.
    """
    if value is not None and "\0" in value:
        raise InvalidArgumentError(
            f"{field} contains a NUL byte, which no command, path or name can carry; remove it"
        )


def check_name(value: object, what: Literal["box", "snapshot"]) -> None:
    """A box or snapshot name: 1 to 128 letters, digits, '.', '_' or '-', starting with a
    letter or digit. Runtimes check again what the models check, because a caller can
    bypass the models (``model_construct``) and a name ends up in paths and URLs."""
    if isinstance(value, str):
        check_nul(f"{what} name", value)
    if not isinstance(value, str) or len(value) > NAME_MAX_LENGTH or not _NAME.fullmatch(value):
        raise InvalidArgumentError(
            f"invalid {what} name {value!r}: use 1 to {NAME_MAX_LENGTH} letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class BoxStatus(StrEnum):
    """Box lifecycle states (BoxLite's state machine, plus ``failed``)."""

    CONFIGURED = "configured"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    PAUSED = "paused"
    FAILED = "failed"
    UNKNOWN = "unknown"


#: Ports one box may publish at create (``BoxOptions.ports``).
MAX_PORTS = 16


def check_ports(ports: list[int]) -> list[int]:
    """The box ports to publish at create: each a TCP port (1-65535), each once.

    ValueError quoting the bad entry (pydantic shows it as the field's error)."""
    if len(ports) > MAX_PORTS:
        raise ValueError(f"ports lists {len(ports)} ports; publish at most {MAX_PORTS} per box")
    seen: set[int] = set()
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(
                f"ports entry {port!r} is not a TCP port; give the ports services in the box "
                "listen on as numbers 1-65535, e.g. [8080]"
            )
        if port in seen:
            raise ValueError(f"ports entry {port} is given twice; list each port once")
        seen.add(port)
    return ports


Ports = Annotated[list[StrictInt], AfterValidator(check_ports)]


class VolumeSpec(_Model):
    """A host directory mounted into the box."""

    host_path: str
    guest_path: str
    read_only: bool = False


class NetworkSpec(_Model):
    """Network access: ``disabled`` (default for new boxes) or ``enabled``."""

    mode: Literal["enabled", "disabled"] = "disabled"
    allow_net: list[str] | None = None


class BoxOptions(_Model):
    """Everything a box can be created with. Unset fields are never sent to a server.

    ``image`` is an OCI reference; ``rootfs_path`` is a local rootfs directory or
    OCI image layout. At most one of the two; neither means the runtime default.
    """

    name: str | None = Field(
        default=None, min_length=1, max_length=NAME_MAX_LENGTH, pattern=BOX_NAME_PATTERN
    )
    image: str | None = None
    rootfs_path: str | None = None
    cpus: int | None = Field(default=None, ge=1, le=32)
    memory_mib: int | None = Field(default=None, ge=128)
    disk_size_gb: int | None = Field(default=None, ge=1)
    working_dir: str | None = None
    env: dict[str, str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str | None = None
    volumes: list[VolumeSpec] | None = None
    network: NetworkSpec | None = None
    #: Not BoxLite's shape: names of the operator's secrets (values never pass here).
    secrets: list[str] | None = None
    #: Not BoxLite's shape (its PortSpec): the box ports to publish. The REST runtime
    #: sends them to a BoxLite 0.9 server in the create request (its only way); other
    #: runtimes ignore them at create, and box_create exposes each right after create
    #: with ``Box.expose`` (which on 0.9 answers the published port).
    ports: Ports | None = None
    auto_remove: bool | None = None
    detach: bool | None = None

    def set_fields(self) -> dict[str, object]:
        """The fields the caller set, JSON-ready: what a create request carries."""
        return self.model_dump(mode="json", exclude_unset=True)


class BoxLimits(_Model):
    """Resource limits in force for a box, and how they are enforced."""

    cpus: int | None = None
    memory_mib: int | None = None
    max_processes: int | None = None
    enforcement: str | None = None  # e.g. "cgroup-v1", "rlimit", "vm"


class NetworkDenial(_Model):
    """A destination a box's network policy refused."""

    at: datetime
    destination: str  # host:port as the box asked, or "name (DNS)"
    reason: str


class ExposedPort(_Model):
    """A TCP port inside a box reachable from the host (``box_expose``)."""

    port: int  # inside the box
    url: str  # where the host reaches it
    host_port: int | None = None


class NetworkStatus(_Model):
    """Not BoxLite's: a running box's network as this runtime enforces it."""

    policy: str  # one line: what the box may reach
    proxy: str | None = None  # the proxy URL inside the box, if any
    recent_denials: list[NetworkDenial] = Field(default_factory=list)
    exposed: list[ExposedPort] = Field(default_factory=list)


class BoxInfo(_Model):
    """What a runtime knows about one box."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str | None = None
    status: BoxStatus
    image: str
    cpus: int | None = None
    memory_mib: int | None = None
    created_at: datetime
    updated_at: datetime | None = None
    pid: int | None = None
    network: NetworkSpec | None = None
    limits: BoxLimits | None = None
    labels: dict[str, str] | None = None
    network_status: NetworkStatus | None = None

    @property
    def running(self) -> bool:
        return self.status is BoxStatus.RUNNING


class ExecRequest(_Model):
    """One command to run in a box (BoxLite's ExecRequest).

    ``command`` is the program, ``args`` its arguments: an exact argv, no shell.
    """

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    working_dir: str | None = None
    user: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    tty: bool = False

    @property
    def argv(self) -> list[str]:
        return [self.command, *self.args]


StreamName = Literal["stdout", "stderr"]


class OutputChunk(_Model):
    """A piece of output, in the order the process produced it on its stream."""

    model_config = ConfigDict(frozen=True)

    stream: StreamName
    data: bytes


class ExecResult(_Model):
    """How an execution ended, the way BoxLite reports it.

    ``exit_code`` is the process's exit status, or the negative signal number when
    a signal killed it (BoxLite's convention). ``timed_out`` is true when the
    request's ``timeout_seconds`` ran out and the runtime killed the process.
    """

    exit_code: int
    duration_ms: int | None = None
    error_message: str | None = None
    timed_out: bool = False

    @property
    def signal(self) -> int | None:
        return -self.exit_code if self.exit_code < 0 else None

    @property
    def success(self) -> bool:
        return self.exit_code == 0


class BootTiming(_Model):
    """Stage durations of box creation in milliseconds (BoxLite's boot_timing, flat)."""

    total_create_ms: int | None = None
    guest_boot_ms: int | None = None
    filesystem_setup_ms: int | None = None
    image_prepare_ms: int | None = None
    guest_rootfs_ms: int | None = None
    box_config_ms: int | None = None
    box_spawn_ms: int | None = None
    container_init_ms: int | None = None


class BoxMetrics(BootTiming):
    """Per-box counters and gauges, boot timing flattened in."""

    model_config = ConfigDict(extra="ignore")

    commands_executed_total: int = 0
    exec_errors_total: int = 0
    bytes_sent_total: int | None = None
    bytes_received_total: int | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    network_bytes_sent: int | None = None
    network_bytes_received: int | None = None
    network_tcp_connections: int | None = None
    network_tcp_errors: int | None = None


class RuntimeMetrics(_Model):
    """Runtime-wide counters."""

    model_config = ConfigDict(extra="ignore")

    boxes_created_total: int = 0
    boxes_failed_total: int = 0
    boxes_stopped_total: int | None = None
    num_running_boxes: int = 0
    total_commands_executed: int = 0
    total_exec_errors: int = 0


class SnapshotInfo(_Model):
    """One snapshot of a box's disks."""

    model_config = ConfigDict(extra="ignore")

    id: str
    box_id: str
    name: str
    created_at: datetime
    size_bytes: int = 0
    guest_disk_bytes: int | None = None
    container_disk_bytes: int | None = None


class Capabilities(_Model):
    """What a runtime or server offers (BoxLite's ``capabilities``); None = unknown/unlimited."""

    model_config = ConfigDict(extra="ignore")

    snapshots_enabled: bool = False
    clone_enabled: bool = False
    export_enabled: bool = False
    import_enabled: bool = False
    tty_enabled: bool = False
    streaming_enabled: bool = True
    max_cpus: int | None = None
    max_memory_mib: int | None = None
    max_disk_size_gb: int | None = None
    max_boxes: int | None = None
    max_concurrent_executions: int | None = None
    file_transfer_max_bytes: int | None = None
    exec_timeout_max_seconds: float | None = None
    #: Not BoxLite's: what this project's runtimes guarantee about exec output.
    #: ``binary_output``: output bytes arrive exactly as written (False: the runtime
    #: decodes them as UTF-8 and invalid bytes arrive as U+FFFD, as the official
    #: SDK does). ``output_backpressure``: a slow reader slows the process and
    #: memory stays bounded (False: unread output is buffered without bound below
    #: this runtime, as inside the official SDK).
    binary_output: bool = True
    output_backpressure: bool = True


class RuntimeInfo(_Model):
    """Which runtime this is, what it isolates with, and what it can do."""

    name: RuntimeName
    version: str | None = None
    isolation: str  # one sentence: what separates a box from the host
    endpoint: str | None = None  # rest: the server URL (never credentials)
    api_generation: str | None = None  # rest: "0.9" or "0.10"
    capabilities: Capabilities
    details: dict[str, str] = Field(default_factory=dict)
