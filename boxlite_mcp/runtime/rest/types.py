"""Wire models of both API generations, and their conversion to the runtime's types.

Responses are read leniently (unknown fields ignored, optional fields optional) so a
newer server still parses; requests carry only what the caller set, because 0.10
servers reject unknown fields with 400.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InternalError
from ..types import (
    BootTiming,
    BoxInfo,
    BoxMetrics,
    BoxStatus,
    Capabilities,
    RuntimeMetrics,
    SnapshotInfo,
)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


W = TypeVar("W", bound=BaseModel)


def parse(model: type[W], body: bytes, what: str) -> W:
    """A wire model from an answer body; InternalError (no input echoed) if it does not fit."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
        raise InternalError(
            f"{what + ': ' if what else ''}the server's answer does not match the BoxLite API "
            f"({where}: {first.get('msg', 'invalid')}); is BOXLITE_REST_URL a BoxLite server?"
        ) from None


class TokenResponse(_Wire):
    """0.9 ``POST /v1/oauth/tokens``."""

    access_token: str
    token_type: str = "bearer"
    expires_in: float = 3600.0

    def __repr__(self) -> str:  # never show the token
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in!r})"

    __str__ = __repr__


class WireCapabilities(_Wire):
    """``capabilities`` of ``GET /v1/config``: the union of both generations' keys."""

    max_cpus: int | None = None
    max_memory_mib: int | None = None
    max_disk_size_gb: int | None = None
    max_boxes_per_prefix: int | None = None  # 0.9
    max_boxes_per_path_prefix: int | None = None  # 0.10
    max_concurrent_executions: int | None = None
    file_transfer_max_bytes: int | None = None
    exec_timeout_max_seconds: float | None = None
    tty_enabled: bool | None = None
    streaming_enabled: bool | None = None
    snapshots_enabled: bool | None = None
    clone_enabled: bool | None = None
    export_enabled: bool | None = None
    import_enabled: bool | None = None  # in neither document; every reference server sends it
    linux_capabilities_enabled: bool | None = None  # 0.10

    def to_capabilities(self) -> Capabilities:
        return Capabilities(
            snapshots_enabled=bool(self.snapshots_enabled),
            clone_enabled=bool(self.clone_enabled),
            export_enabled=bool(self.export_enabled),
            import_enabled=bool(self.import_enabled),
            tty_enabled=bool(self.tty_enabled),
            streaming_enabled=self.streaming_enabled is not False,
            max_cpus=self.max_cpus,
            max_memory_mib=self.max_memory_mib,
            max_disk_size_gb=self.max_disk_size_gb,
            max_boxes=self.max_boxes_per_path_prefix or self.max_boxes_per_prefix,
            max_concurrent_executions=self.max_concurrent_executions,
            file_transfer_max_bytes=self.file_transfer_max_bytes,
            exec_timeout_max_seconds=self.exec_timeout_max_seconds,
        )


class ServerConfig(_Wire):
    """``GET /v1/config`` (``SandboxConfig`` in 0.9, ``ServerConfig`` in 0.10)."""

    defaults: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None
    capabilities: WireCapabilities | None = None
    raw_capability_keys: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, data: Any) -> ServerConfig:
        """The config; a malformed one is InternalError (capabilities would be guesses)."""
        if not isinstance(data, dict):
            data = {}
        caps = data.get("capabilities")
        keys = frozenset(caps) if isinstance(caps, dict) else frozenset()
        try:
            return cls.model_validate({**data, "raw_capability_keys": keys})
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            raise InternalError(
                f"the server's GET /v1/config does not match the BoxLite API "
                f"({where}: {first.get('msg', 'invalid')})"
            ) from None


class Principal(_Wire):
    """0.10 ``GET /v1/me``; older servers name the routing slot ``prefix``."""

    sub: str | None = None
    path_prefix: str | None = None
    prefix: str | None = None

    @property
    def routing_slot(self) -> str:
        return self.path_prefix or self.prefix or ""


class WireBox(_Wire):
    """``Box`` of either generation."""

    box_id: str
    name: str | None = None
    status: str
    created_at: datetime
    updated_at: datetime | None = None
    pid: int | None = None
    image: str = ""
    cpus: int | None = None
    memory_mib: int | None = None
    labels: dict[str, str] | None = None

    def to_info(self) -> BoxInfo:
        try:
            status = BoxStatus(self.status)
        except ValueError:
            status = BoxStatus.UNKNOWN
        return BoxInfo(
            id=self.box_id,
            name=self.name,
            status=status,
            image=self.image,
            cpus=self.cpus,
            memory_mib=self.memory_mib,
            created_at=self.created_at,
            updated_at=self.updated_at,
            pid=self.pid,
            labels=self.labels or None,
        )


class ListBoxesResponse(_Wire):
    boxes: list[WireBox]
    next_page_token: str | None = None


class WireTunnel(_Wire):
    """0.10's TunnelDescriptor: an opaque URI reaching a box's service."""

    uri: str = Field(min_length=1)


class WireSnapshot(_Wire):
    id: str
    box_id: str
    name: str
    created_at: datetime
    size_bytes: int = 0
    guest_disk_bytes: int | None = None
    container_disk_bytes: int | None = None

    @field_validator("created_at", mode="before")
    @classmethod
    def _unix_seconds(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        return value

    def to_info(self) -> SnapshotInfo:
        return SnapshotInfo.model_validate(self.model_dump())


class ListSnapshotsResponse(_Wire):
    snapshots: list[WireSnapshot]


class ExecResponse(_Wire):
    execution_id: str


class ExecutionInfo(_Wire):
    """``GET .../executions/{eid}``: what the server knows after a dropped stream."""

    execution_id: str | None = None
    status: str
    exit_code: int | None = None
    duration_ms: int | None = None
    error_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "killed", "timed_out")


class WireBoxMetrics(_Wire):
    """``BoxMetrics``: counters plus a nested ``boot_timing``, flattened on conversion."""

    commands_executed_total: int | None = None
    exec_errors_total: int | None = None
    bytes_sent_total: int | None = None
    bytes_received_total: int | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    network_bytes_sent: int | None = None
    network_bytes_received: int | None = None
    network_tcp_connections: int | None = None
    network_tcp_errors: int | None = None
    boot_timing: dict[str, Any] | None = None

    def to_metrics(self) -> BoxMetrics:
        flat: dict[str, Any] = self.model_dump(exclude={"boot_timing"}, exclude_none=True)
        for stage, value in (self.boot_timing or {}).items():
            if stage in BootTiming.model_fields and value is not None:
                flat[stage] = value
        return BoxMetrics.model_validate(flat)


class WireRuntimeMetrics(_Wire):
    boxes_created_total: int | None = None
    boxes_failed_total: int | None = None
    boxes_stopped_total: int | None = None
    num_running_boxes: int | None = None
    total_commands_executed: int | None = None
    total_exec_errors: int | None = None

    def to_metrics(self) -> RuntimeMetrics:
        return RuntimeMetrics.model_validate(self.model_dump(exclude_none=True))


class ImageInfo(_Wire):
    """A cached image (``POST /images/pull``)."""

    reference: str
    repository: str | None = None
    tag: str | None = None
    id: str | None = None
    cached_at: datetime | None = None
    size_bytes: int | None = None
