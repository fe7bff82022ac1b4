"""Tool inputs and outputs: the typed surface a model sees (schemas come from here).

Inputs forbid unknown fields so a misspelt argument is an error, not a silent
default. Every field has a description written for a model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..runtime.types import (
    BOX_NAME_PATTERN,
    BoxInfo,
    BoxLimits,
    BoxMetrics,
    BoxStatus,
    ExposedPort,
    NetworkStatus,
    Ports,
    RuntimeInfo,
    RuntimeMetrics,
    SnapshotInfo,
)
from ..sessions import naming
from ..sessions.executions import ExecView
from ..sessions.registry import BoxEntry
from ..settings import MAX_CALL_WAIT_SECONDS


class ToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")


BoxRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        description="The box, by the id or the name that box_create or box_list returned.",
    ),
]
BoxName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=naming.MAX_NAME_LENGTH,
        pattern=BOX_NAME_PATTERN,
        description="A name for the box, unique among your boxes: letters, digits, '.', '_', "
        "'-', starting with a letter or digit.",
    ),
]
BoxPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        pattern=r"^/[^\x00]*$",  # absolute; no NUL byte (no OS path can hold one)
        description="An absolute path inside the box, e.g. /workspace/data.csv.",
    ),
]
HostPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="A path on the server's host, inside one of the allowed roots "
        "(runtime_info lists them); a relative path is taken relative to the first root.",
    ),
]
ExecutionId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="The execution id that exec_run or exec_start returned.",
    ),
]
SnapshotName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=BOX_NAME_PATTERN,
        description="The snapshot's name: letters, digits, '.', '_', '-'.",
    ),
]
EnvMap = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
        Annotated[str, Field(max_length=65536)],
    ],
    Field(
        max_length=256,
        description="Environment variables, NAME to value (names: letters, digits, '_').",
    ),
]

# --------------------------------------------------------------------- boxes


class Lifetime(ToolOutput):
    """When the server removes the box on its own."""

    persist: bool = Field(description="True: the box survives session end, idle TTL and restarts.")
    idle_ttl_seconds: float | None = Field(
        description="Idle time after which the box is removed; null when it persists."
    )
    idle_seconds: float = Field(description="Seconds since you last used the box.")
    expires_in_seconds: float | None = Field(
        description="Seconds until removal if it stays idle; null when it persists."
    )
    removed_when: str = Field(description="In words: what removes this box.")


class BoxView(ToolOutput):
    """A box as its owner sees it."""

    id: str = Field(description="The box id (stable; use it or the name to address the box).")
    name: str | None = Field(description="The name you gave it, if any.")
    status: BoxStatus = Field(description="configured, running, stopped, ...")
    image: str = Field(description="The image or root filesystem it runs.")
    cpus: int | None = Field(default=None, description="CPUs assigned, if known.")
    memory_mib: int | None = Field(default=None, description="Memory limit in MiB, if known.")
    network_enabled: bool | None = Field(
        default=None, description="Whether the box has network access, if known."
    )
    created_at: datetime = Field(description="When the box was created.")
    lifetime: Lifetime = Field(description="When the server removes the box on its own.")

    @classmethod
    def of(
        cls,
        entry: BoxEntry,
        info: BoxInfo,
        *,
        idle_ttl_seconds: float,
        expires_in_seconds: float | None,
    ) -> BoxView:
        """A registry entry and the runtime's view of its box, as the owner sees them."""
        ttl = idle_ttl_seconds
        if entry.persist:
            removed_when = "Only when you remove it with box_remove (persist is on)."
        elif entry.session is not None:
            removed_when = (
                f"When your session ends, after {ttl:g} s without use, or when the server stops."
            )
        else:
            removed_when = f"After {ttl:g} s without use, or when the server stops."
        network = info.network.mode == "enabled" if info.network is not None else None
        return cls(
            id=entry.id,
            name=entry.name,
            status=info.status,
            image=info.image,
            cpus=info.cpus,
            memory_mib=info.memory_mib,
            network_enabled=network,
            created_at=info.created_at,
            lifetime=Lifetime(
                persist=entry.persist,
                idle_ttl_seconds=None if entry.persist else ttl,
                idle_seconds=round(entry.idle_seconds(), 3),
                expires_in_seconds=expires_in_seconds,
                removed_when=removed_when,
            ),
        )


class VolumeInput(ToolInput):
    """A host directory mounted into a box."""

    host_path: HostPath
    guest_path: BoxPath = Field(description="Where it appears in the box, e.g. /workspace.")
    read_only: bool = Field(
        default=True, description="Mount read-only (default); false lets the box change it."
    )


class BoxCreateInput(ToolInput):
    name: BoxName | None = Field(
        default=None,
        description="A name to address the box by (else use the returned id). Unique among "
        "your boxes.",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="An OCI image reference such as python:3.12-slim; omit for the runtime's "
        "default. Some runtimes ignore images (runtime_info says).",
    )
    rootfs_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A root filesystem directory or OCI layout on the server's host, instead "
        "of image. Rarely needed.",
    )
    cpus: int | None = Field(default=None, ge=1, le=32, description="CPUs for the box.")
    memory_mib: int | None = Field(
        default=None, ge=128, le=1024 * 1024, description="Memory limit in MiB (at least 128)."
    )
    disk_size_gb: int | None = Field(
        default=None, ge=1, le=4096, description="Disk size in GB, where the runtime supports it."
    )
    env: EnvMap | None = Field(
        default=None, description="Environment variables every command in the box gets."
    )
    working_dir: BoxPath | None = Field(
        default=None, description="Default working directory for commands, e.g. /workspace."
    )
    volumes: list[VolumeInput] | None = Field(
        default=None,
        max_length=16,
        description="Host directories to mount into the box (inside the allowed roots, as "
        "for copy_in). Faster than copy_in for a big project; read-only unless asked.",
    )
    network: bool = Field(
        default=False,
        description="Give the box network access. Off by default; turn on only when the task "
        "needs to download something.",
    )
    allow_net: list[Annotated[str, Field(min_length=1, max_length=300)]] | None = Field(
        default=None,
        max_length=64,
        description="Only these destinations (implies network): host names, *.domain, IPs, "
        "CIDRs, host.boxlite.internal (the server's host), each optionally :PORT, e.g. "
        '["pypi.org", "files.pythonhosted.org:443"]. Must lie within what the server '
        "allows (runtime_info shows it); omit for all of that.",
    )
    secrets: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None,
        max_length=32,
        description="Names of the server's secrets the box may use (implies network; "
        "runtime_info lists them). The box sees only the placeholder <BOXLITE_SECRET:NAME> in "
        "its environment variable NAME; the server puts the real value into the box's "
        "HTTP(S) requests to that secret's hosts. You never see the value either.",
    )
    ports: Ports | None = Field(
        default=None,
        description="TCP ports of services you will run in the box, published for the "
        "server's host as with box_expose (the result lists their URLs), e.g. [8080]. "
        "Needed at create on a BoxLite 0.9 server, which publishes ports only then.",
    )
    persist: bool = Field(
        default=False,
        description="Keep the box after your session ends, when idle, and across server "
        "restarts, until you remove it. Leave false for scratch work.",
    )
    start: bool = Field(
        default=False,
        description="Start the box now. Not needed before exec_run, which starts it.",
    )

    @model_validator(mode="after")
    def _one_root(self) -> BoxCreateInput:
        if self.image is not None and self.rootfs_path is not None:
            raise ValueError("give image or rootfs_path, not both")
        return self


class BoxListInput(ToolInput):
    pass


class BoxListResult(ToolOutput):
    boxes: list[BoxView] = Field(description="Your boxes, oldest first.")
    count: int = Field(description="How many boxes you have.")
    max_boxes: int = Field(description="The most boxes you may have at once.")


class BoxRefInput(ToolInput):
    box: BoxRef


class BoxInfoResult(ToolOutput):
    box: BoxView = Field(description="The box.")
    limits: BoxLimits | None = Field(
        default=None, description="Resource limits in force and how they are enforced."
    )
    running_executions: list[str] = Field(
        description="Ids of your executions still running in this box."
    )
    network: NetworkStatus | None = Field(
        default=None,
        description="While running: what the box may reach, destinations refused recently "
        "(blocked, not down), and ports exposed with box_expose.",
    )


class BoxExposeInput(ToolInput):
    box: BoxRef
    port: int = Field(ge=1, le=65535, description="The TCP port a service in the box listens on.")


class BoxExposeResult(ToolOutput):
    box_id: str = Field(description="The box.")
    port: int = Field(description="The port inside the box.")
    url: str = Field(description="Where the host reaches it (HTTP or any TCP client).")
    message: str = Field(description="What happened.")


class BoxStopInput(ToolInput):
    box: BoxRef
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=300,
        description="How long to wait for processes to exit before they are killed.",
    )


class BoxRemoveInput(ToolInput):
    box: BoxRef
    force: bool = Field(
        default=True,
        description="Remove even if running (its processes are killed). False refuses a "
        "running box.",
    )


class BoxResult(ToolOutput):
    box: BoxView = Field(description="The box after the operation.")
    exposed: list[ExposedPort] | None = Field(
        default=None, description="box_create's ports: where the host reaches each."
    )
    message: str = Field(description="What happened.")


class BoxRemoveResult(ToolOutput):
    id: str = Field(description="The removed box's id.")
    name: str | None = Field(description="The removed box's name, if it had one.")
    message: str = Field(description="What happened.")


class BoxCloneInput(ToolInput):
    box: BoxRef
    name: BoxName | None = Field(default=None, description="A name for the clone.")
    persist: bool = Field(
        default=False, description="Keep the clone beyond your session (see box_create)."
    )


class BoxExportInput(ToolInput):
    box: BoxRef
    host_path: HostPath = Field(
        description="Where to write the archive on the host: a file path, or an existing "
        "directory (the archive is then <dir>/<name or id>.boxlite). Inside an allowed root."
    )
    overwrite: bool = Field(default=False, description="Replace an existing archive file.")


class BoxExportResult(ToolOutput):
    box_id: str = Field(description="The exported box.")
    archive_path: str = Field(description="The archive written on the host.")
    size_bytes: int = Field(description="Its size in bytes.")


class BoxImportInput(ToolInput):
    host_path: HostPath = Field(
        description="A .boxlite archive on the host (from box_export), inside an allowed root."
    )
    name: BoxName | None = Field(default=None, description="A name for the imported box.")
    persist: bool = Field(
        default=False, description="Keep the box beyond your session (see box_create)."
    )


# ---------------------------------------------------------------------- exec


class CommandInput(ToolInput):
    """What to run, and how: shared by exec_run and exec_start."""

    box: BoxRef
    command: str | None = Field(
        default=None,
        min_length=1,
        max_length=131072,
        description="A shell command line, run with `sh -c` (pipes, &&, redirects work). "
        "Give this or argv.",
    )
    argv: list[Annotated[str, Field(max_length=131072)]] | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="An exact argument vector, no shell: ['python3', '-c', 'print(1)']. "
        "Give this or command.",
    )
    env: EnvMap | None = Field(default=None, description="Extra environment variables.")
    working_dir: BoxPath | None = Field(
        default=None, description="Working directory for the command."
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="Kill the command after this many seconds (default and maximum: see "
        "runtime_info). The result then says timed_out.",
    )
    stdin: str | None = Field(
        default=None,
        max_length=10 * 1024 * 1024,
        description="Text to feed the command on stdin (then stdin is closed). Without it "
        "stdin is empty.",
    )

    @model_validator(mode="after")
    def _command_or_argv(self) -> Self:
        if (self.command is None) == (self.argv is None):
            raise ValueError(
                "give exactly one of command (a shell command line) or argv "
                "(an exact argument list)"
            )
        if self.argv is not None and not self.argv[0]:
            raise ValueError("argv[0], the program, must not be empty")
        return self


class ExecRunInput(CommandInput):
    return_after_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_CALL_WAIT_SECONDS,
        description="Return after this many seconds even if the command is still running "
        "(default: exec_return_after_seconds in runtime_info, 50 s, before MCP clients give "
        "up on a call). It then runs on until it ends or times out; the result says "
        "running=true and exec_read follows it.",
    )


class ExecStartInput(CommandInput):
    stdin: str | None = Field(
        default=None,
        max_length=10 * 1024 * 1024,
        description="Text to write to stdin right away.",
    )
    keep_stdin_open: bool = Field(
        default=False,
        description="Leave stdin open for exec_write (interactive programs). Otherwise stdin "
        "is closed after `stdin`, so programs that read it do not wait forever.",
    )


class ExecOutcome(ToolOutput):
    execution_id: str = Field(description="The execution id (for exec_read and the resource).")
    box_id: str = Field(description="The box it ran in.")
    running: bool = Field(description="True while the command is still running.")
    exit_code: int | None = Field(
        description="The exit status (negative: killed by that signal); null while running "
        "or when it could not be determined."
    )
    signal: int | None = Field(description="The signal that ended it, if one did.")
    success: bool = Field(description="True when it exited with status 0.")
    timed_out: bool = Field(description="True when the timeout ran out and it was killed.")
    killed: bool = Field(description="True when it was killed (cancel, exec_kill, timeout).")
    duration_ms: int | None = Field(description="How long it ran, in milliseconds.")
    error: str | None = Field(default=None, description="What went wrong, if something did.")
    output_uri: str = Field(description="Resource URI with the full output (both streams).")

    @classmethod
    def of(cls, record: ExecView, error: str | None, **details: Any) -> Self:
        """The outcome of ``record`` so far (``error`` as the owner should read it), plus the
        fields of the subclass."""
        return cls(
            execution_id=record.id,
            box_id=record.box_id,
            running=record.running,
            exit_code=record.exit_code,
            signal=record.signal,
            success=record.exit_code == 0 and not record.timed_out,
            timed_out=record.timed_out,
            killed=record.killed,
            duration_ms=record.duration_ms,
            error=error,
            output_uri=record.uri,
            **details,
        )


class ExecRunResult(ExecOutcome):
    stdout: str = Field(description="Standard output so far (head and tail kept when long).")
    stderr: str = Field(description="Standard error so far (head and tail kept when long).")
    stdout_truncated: bool = Field(description="True when the middle of stdout was cut.")
    stderr_truncated: bool = Field(description="True when the middle of stderr was cut.")
    stdout_bytes: int = Field(description="Total bytes written to stdout.")
    stderr_bytes: int = Field(description="Total bytes written to stderr.")
    timeout_seconds: float = Field(description="The timeout that applied.")
    next_cursor: int = Field(
        description="exec_read's cursor for the output after what this result saw."
    )
    next_step: str | None = Field(
        default=None,
        description="While it is still running: how to follow it. Null once it finished.",
    )


class ExecStartResult(ToolOutput):
    execution_id: str = Field(description="Pass this to exec_read, exec_write, exec_kill.")
    box_id: str = Field(description="The box it runs in.")
    command: str = Field(description="What runs.")
    timeout_seconds: float = Field(description="The timeout that applies.")
    stdin_open: bool = Field(description="Whether exec_write can still send input.")
    output_uri: str = Field(description="Resource URI with the full output.")


class ExecReadInput(ToolInput):
    execution_id: ExecutionId
    cursor: int = Field(
        default=0,
        ge=0,
        description="Where to read from: 0 for the start, else next_cursor from the last read.",
    )
    wait_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_CALL_WAIT_SECONDS,
        description="If nothing new is there yet, wait up to this long for output (or, with "
        "until_exit, for the exit).",
    )
    until_exit: bool = Field(
        default=False, description="Wait (up to wait_seconds) for the command to finish."
    )
    max_bytes: int | None = Field(
        default=None,
        ge=1,
        le=1024 * 1024,
        description="The most output bytes to return (default: result_output_cap_bytes in "
        "runtime_info, 16 KiB); has_more says when there is more.",
    )


class ExecReadResult(ExecOutcome):
    stdout: str = Field(description="Standard output in this window.")
    stderr: str = Field(description="Standard error in this window.")
    cursor: int = Field(description="Where this window starts.")
    next_cursor: int = Field(description="Pass this as cursor next time.")
    has_more: bool = Field(description="True when more stored output follows this window.")
    total_bytes: int = Field(description="Output bytes produced so far, both streams.")
    dropped_bytes: int = Field(
        description="Output beyond the server's storage cap that cannot be read back."
    )


class ExecWriteInput(ToolInput):
    execution_id: ExecutionId
    text: str | None = Field(
        default=None, max_length=10 * 1024 * 1024, description="Text to write to stdin."
    )
    data_base64: str | None = Field(
        default=None,
        max_length=14 * 1024 * 1024,
        description="Binary data to write to stdin, base64-encoded (instead of text).",
    )
    close: bool = Field(default=False, description="Close stdin afterwards (send EOF).")

    @model_validator(mode="after")
    def _one_payload(self) -> ExecWriteInput:
        if self.text is not None and self.data_base64 is not None:
            raise ValueError("give text or data_base64, not both")
        if self.text is None and self.data_base64 is None and not self.close:
            raise ValueError("give text or data_base64 to write, or close=true to send EOF")
        return self


class ExecWriteResult(ToolOutput):
    execution_id: str = Field(description="The execution.")
    bytes_written: int = Field(description="How many bytes went to stdin.")
    stdin_closed: bool = Field(description="Whether stdin is now closed.")


class ExecSignalInput(ToolInput):
    execution_id: ExecutionId
    signal: int | str = Field(
        default="TERM",
        description="The signal, by name (TERM, INT, HUP, KILL, USR1, ...; SIG prefix "
        "optional) or number (1-64).",
    )


class ExecKillInput(ToolInput):
    execution_id: ExecutionId


class ExecControlResult(ToolOutput):
    execution_id: str = Field(description="The execution.")
    signal: int = Field(description="The signal number sent.")
    running: bool = Field(description="Whether it is still running right after.")
    message: str = Field(description="What happened.")


# --------------------------------------------------------------------- files

Encoding = Literal["auto", "text", "base64"]


class FileReadInput(ToolInput):
    box: BoxRef
    path: BoxPath
    encoding: Encoding = Field(
        default="auto",
        description="text: UTF-8 (bad bytes replaced); base64: exact bytes; auto: text when "
        "the file is valid UTF-8, else base64.",
    )


class FileReadResult(ToolOutput):
    box_id: str = Field(description="The box.")
    path: str = Field(description="The file read.")
    size_bytes: int = Field(description="Its size in bytes.")
    encoding: Literal["text", "base64"] = Field(description="How content is encoded.")
    content: str = Field(description="The file's content.")
    mime_type: str | None = Field(
        default=None,
        description="image/png, image/jpeg, image/gif or image/webp when the file is one "
        "(it is also sent as image content); else null.",
    )


class FileWriteInput(ToolInput):
    box: BoxRef
    path: BoxPath
    content: str = Field(max_length=16 * 1024 * 1024, description="What to write.")
    encoding: Literal["text", "base64"] = Field(
        default="text", description="text: written as UTF-8; base64: decoded to bytes first."
    )


class FileWriteResult(ToolOutput):
    box_id: str = Field(description="The box.")
    path: str = Field(description="The file written (created or replaced).")
    bytes_written: int = Field(description="Its size in bytes.")


class CopyInInput(ToolInput):
    box: BoxRef
    host_path: HostPath = Field(
        description="The host file or directory to copy, inside an allowed root."
    )
    box_path: BoxPath = Field(
        description="Destination in the box. A directory's contents land in it; a file lands "
        "at this path, or inside it when it ends with '/' or is an existing directory."
    )


class CopyOutInput(ToolInput):
    box: BoxRef
    box_path: BoxPath = Field(description="The file or directory in the box to copy.")
    host_path: HostPath = Field(
        description="Destination on the host, inside an allowed root (same placement rules "
        "as copy_in)."
    )


class CopyResult(ToolOutput):
    box_id: str = Field(description="The box.")
    source: str = Field(description="What was copied.")
    destination: str = Field(description="Where it went.")


# ----------------------------------------------------------------- snapshots


class SnapshotInput(ToolInput):
    box: BoxRef
    name: SnapshotName


class SnapshotView(ToolOutput):
    name: str = Field(description="The snapshot's name.")
    id: str = Field(description="The snapshot's id.")
    created_at: datetime = Field(description="When it was taken.")
    size_bytes: int = Field(description="Its size in bytes.")

    @classmethod
    def of(cls, info: SnapshotInfo) -> SnapshotView:
        return cls(
            name=info.name, id=info.id, created_at=info.created_at, size_bytes=info.size_bytes
        )


class SnapshotResult(ToolOutput):
    box_id: str = Field(description="The box.")
    snapshot: SnapshotView = Field(description="The snapshot.")
    message: str = Field(description="What happened.")


class SnapshotListResult(ToolOutput):
    box_id: str = Field(description="The box.")
    snapshots: list[SnapshotView] = Field(description="Its snapshots, oldest first.")


class SnapshotRemoveResult(ToolOutput):
    box_id: str = Field(description="The box.")
    name: str = Field(description="The removed snapshot.")
    message: str = Field(description="What happened.")


# ------------------------------------------------------------- observability


class BoxMetricsResult(ToolOutput):
    box_id: str = Field(description="The box.")
    metrics: BoxMetrics = Field(description="Counters, gauges and boot timing.")


class RuntimeInfoInput(ToolInput):
    pass


class Policy(ToolOutput):
    """The limits and rules this server enforces."""

    allowed_host_paths: list[str] = Field(
        description="Host roots copy_in/copy_out/export/import may touch; empty: disabled."
    )
    max_boxes_per_owner: int = Field(description="The most boxes one owner may have.")
    max_boxes_total: int = Field(description="The most boxes on this server.")
    box_idle_ttl_seconds: float = Field(description="Idle time before a box is removed.")
    exec_default_timeout_seconds: float = Field(description="Timeout when none is given.")
    exec_max_timeout_seconds: float = Field(description="The longest timeout allowed.")
    exec_return_after_seconds: float = Field(
        description="When exec_run returns a command still running, unless asked otherwise."
    )
    result_output_cap_bytes: int = Field(
        description="Output in one result, both streams together (head and tail kept)."
    )
    stored_output_cap_bytes: int = Field(description="Output kept per execution for reading.")
    file_transfer_cap_bytes: int = Field(description="Largest file for file_read/file_write.")
    network_default: str = Field(description="Network access of a new box unless asked.")


class Caller(ToolOutput):
    owner_kind: str = Field(
        description="How you are identified: principal, session, local or anonymous."
    )
    boxes: int = Field(description="Boxes you have now.")
    running_executions: int = Field(description="Your executions still running.")
    note: str | None = Field(
        default=None, description="What to know about how you are told apart from others."
    )


class RuntimeInfoResult(ToolOutput):
    runtime: RuntimeInfo = Field(description="Which runtime, its isolation and capabilities.")
    reason: str = Field(description="Why this runtime was chosen.")
    policy: Policy = Field(description="Limits and rules in force.")
    you: Caller = Field(description="What this server knows about you.")
    metrics: RuntimeMetrics | None = Field(
        default=None, description="Runtime-wide counters, when available."
    )
