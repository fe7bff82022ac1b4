"""SDK objects ↔ the runtime contract's models.

The SDK's objects are native classes with attributes; these functions read them
defensively (``getattr`` with defaults) so that a field a newer or older SDK lacks
degrades to "unknown" instead of an AttributeError.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from ..network.secrets import Secret, placeholder
from ..types import (
    BoxInfo,
    BoxLimits,
    BoxMetrics,
    BoxOptions,
    BoxStatus,
    NetworkSpec,
    RuntimeMetrics,
    SnapshotInfo,
)

_STATUSES = {status.value: status for status in BoxStatus}


def box_options(
    sdk: ModuleType,
    options: BoxOptions,
    *,
    rest: bool,
    rootfs_path: str | None,
    secrets: Sequence[Secret] = (),
) -> Any:
    """The SDK's ``BoxOptions`` for ours; only what the caller set is passed on.

    One default differs from the SDK's on purpose: the embedded runtime removes a
    box when it stops unless told otherwise, which would break the contract (a
    stopped box keeps its disk for snapshots, clone and export), so unless the
    caller asked for ``auto_remove`` the box is kept (``auto_delete=0``).
    """
    fields = options.set_fields()
    kwargs: dict[str, Any] = {}
    for key in (
        "image",
        "cpus",
        "memory_mib",
        "disk_size_gb",
        "working_dir",
        "entrypoint",
        "cmd",
        "user",
        "detach",
    ):
        if key in fields and fields[key] is not None:
            kwargs[key] = fields[key]
    if rootfs_path is not None:
        kwargs["rootfs_path"] = rootfs_path
    env = dict(options.env or {})
    env.update({s.name: placeholder(s.name) for s in secrets})  # what the box sees
    if env:
        kwargs["env"] = list(env.items())
    if secrets:
        kwargs["secrets"] = [
            sdk.Secret(
                name=s.name,
                value=s.value,
                hosts=[] if "*" in s.hosts else list(s.hosts),
                placeholder=placeholder(s.name),
            )
            for s in secrets
        ]
    if options.volumes:
        kwargs["volumes"] = [(v.host_path, v.guest_path, v.read_only) for v in options.volumes]
    if options.network is not None:
        kwargs["network"] = sdk.NetworkSpec(
            mode=options.network.mode, allow_net=list(options.network.allow_net or [])
        )
    if options.auto_remove:
        kwargs["auto_remove"] = True
    elif options.auto_remove is False or not rest:
        kwargs["auto_delete"] = 0
    return sdk.BoxOptions(**kwargs)


def box_info(raw: Any) -> BoxInfo:
    state = getattr(raw, "state", None)
    status = _STATUSES.get(str(getattr(state, "status", "unknown")).lower(), BoxStatus.UNKNOWN)
    cpus = _int(getattr(raw, "cpus", None))
    memory = _int(getattr(raw, "memory_mib", None))
    return BoxInfo(
        id=str(raw.id),
        name=getattr(raw, "name", None) or None,
        status=status,
        image=str(getattr(raw, "image", "") or ""),
        cpus=cpus,
        memory_mib=memory,
        created_at=timestamp(getattr(raw, "created_at", None)) or datetime.now(UTC),
        updated_at=timestamp(getattr(raw, "last_activity_at", None)),
        pid=_int(getattr(state, "pid", None)),
        network=_network(getattr(raw, "network", None)),
        limits=BoxLimits(cpus=cpus, memory_mib=memory, enforcement="vm"),
    )


def box_metrics(raw: Any, *, rest: bool = False) -> BoxMetrics:
    """Box metrics with BoxLite's boot-timing stages flattened in.

    Over REST the SDK turns byte counters a server did not send into 0; a 0 there
    means "not reported", so it becomes None.
    """
    metrics = BoxMetrics(
        commands_executed_total=_int(getattr(raw, "commands_executed_total", 0)) or 0,
        exec_errors_total=_int(getattr(raw, "exec_errors_total", 0)) or 0,
        bytes_sent_total=_int(getattr(raw, "bytes_sent_total", None)),
        bytes_received_total=_int(getattr(raw, "bytes_received_total", None)),
        cpu_percent=_float(getattr(raw, "cpu_percent", None)),
        memory_bytes=_int(getattr(raw, "memory_bytes", None)),
        network_bytes_sent=_int(getattr(raw, "network_bytes_sent", None)),
        network_bytes_received=_int(getattr(raw, "network_bytes_received", None)),
        network_tcp_connections=_int(getattr(raw, "network_tcp_connections", None)),
        network_tcp_errors=_int(getattr(raw, "network_tcp_errors", None)),
        total_create_ms=_int(getattr(raw, "total_create_duration_ms", None)),
        guest_boot_ms=_int(getattr(raw, "guest_boot_duration_ms", None)),
        filesystem_setup_ms=_int(getattr(raw, "stage_filesystem_setup_ms", None)),
        image_prepare_ms=_int(getattr(raw, "stage_image_prepare_ms", None)),
        guest_rootfs_ms=_int(getattr(raw, "stage_guest_rootfs_ms", None)),
        box_config_ms=_int(getattr(raw, "stage_box_config_ms", None)),
        box_spawn_ms=_int(getattr(raw, "stage_box_spawn_ms", None)),
        container_init_ms=_int(getattr(raw, "stage_container_init_ms", None)),
    )
    if rest:
        metrics.bytes_sent_total = metrics.bytes_sent_total or None
        metrics.bytes_received_total = metrics.bytes_received_total or None
    return metrics


def runtime_metrics(raw: Any) -> RuntimeMetrics:
    return RuntimeMetrics(
        boxes_created_total=_int(getattr(raw, "boxes_created_total", 0)) or 0,
        boxes_failed_total=_int(getattr(raw, "boxes_failed_total", 0)) or 0,
        num_running_boxes=_int(getattr(raw, "num_running_boxes", 0)) or 0,
        total_commands_executed=_int(getattr(raw, "total_commands_executed", 0)) or 0,
        total_exec_errors=_int(getattr(raw, "total_exec_errors", 0)) or 0,
    )


def snapshot_info(raw: Any) -> SnapshotInfo:
    container = _int(getattr(raw, "container_disk_bytes", None))
    return SnapshotInfo(
        id=str(raw.id),
        box_id=str(raw.box_id),
        name=str(raw.name),
        created_at=timestamp(getattr(raw, "created_at", None)) or datetime.now(UTC),
        size_bytes=_int(getattr(raw, "size_bytes", 0)) or 0,
        container_disk_bytes=container,
    )


def timestamp(value: object) -> datetime | None:
    """A datetime from the SDK's RFC 3339 strings (nanoseconds and all) or epoch numbers."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        seconds = float(value)
        if seconds > 1e14:  # microseconds
            seconds /= 1e6
        elif seconds > 1e11:  # milliseconds
            seconds /= 1e3
        return datetime.fromtimestamp(seconds, UTC)
    text = str(value).strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most 6 fractional digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _network(raw: Any) -> NetworkSpec | None:
    if raw is None:
        return None
    outbound = getattr(raw, "outbound", None) or raw
    mode = str(getattr(outbound, "mode", "") or "").lower()
    if mode not in ("enabled", "disabled"):
        return None
    allow = [str(host) for host in (getattr(outbound, "allow_net", None) or [])]
    return NetworkSpec(mode="enabled" if mode == "enabled" else "disabled", allow_net=allow or None)


def _int(value: object) -> int | None:
    if value is None:
        return None
    try:
        number: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number


def _float(value: object) -> float | None:
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
