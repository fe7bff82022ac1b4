"""What the state store keeps, and the contract both stores (in process, Redis) honour.

One ``boxlite-mcp`` process keeps owners' boxes, executions and their output, the
resumable-stream events and its reaping schedule in memory. Several replicas
behind a load balancer must share all of that, so the registry, the executions and
the event store keep it in a ``StateStore``: in process by default (nothing to run)
or in Redis (``redis://...``) for several replicas.

The contract is written so that "several replicas at once" is safe by construction:

- Records are plain data (``BoxRecord``, ``ExecRecord``): what a replica holds
  locally (the runtime's ``Box`` handle, the execution's pump task) is rebuilt
  from the record, never stored.
- Whatever two replicas may race on is one atomic call: reserving a box slot
  (limits and name), output appends, leases, compare-and-set of a box record.
- Output is appended at an offset in the execution's produced bytes, so a retry
  or a replica that takes over an execution and re-attaches from the stored size
  never leaves a gap nor stores a byte twice.
- Leases (holder, time to live) make one replica act where exactly one must: the
  idle reaper (``REAPER_LEASE``) and the follower of each running execution
  (``execution_lease``); a dead holder's lease lapses and another takes over.
- Times that replicas compare are wall-clock seconds (``time.time()``), never a
  process's monotonic clock.

A store that cannot be reached raises ``StateUnavailableError`` whose message
says so and what to do; every other failure mode of a store is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ...runtime.errors import InternalError
from ...runtime.types import StreamName

#: The lease the idle reaper holds: only its holder reaps.
REAPER_LEASE: Final = "reaper"

#: Default bounds: a record per execution and the output it keeps are bounded by the
#: server's settings; events per stream and their lifetime bound the event store.
DEFAULT_EVENTS_PER_STREAM: Final = 4096
DEFAULT_EVENT_TTL_SECONDS: Final = 3600.0


def execution_lease(execution_id: str) -> str:
    """The lease of the replica following (pumping the output of) an execution."""
    return f"exec:{execution_id}"


class StateUnavailableError(InternalError):
    """The state store cannot be reached; the message names it (without credentials)."""

    kind = "StateUnavailable"


class LimitReachedError(Exception):
    """A box slot was refused: the owner's or the server's limit is reached."""

    def __init__(self, scope: Literal["owner", "total"], count: int, limit: int) -> None:
        super().__init__(f"{scope} limit {limit} reached ({count} boxes)")
        self.scope = scope
        self.count = count
        self.limit = limit


class NameTakenError(Exception):
    """A box slot was refused: the owner already has (or is creating) a box of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"name {name!r} is taken")
        self.name = name


class OutputGapError(Exception):
    """An append started beyond the output stored so far (bytes would be missing)."""

    def __init__(self, offset: int, total: int) -> None:
        super().__init__(f"append at {offset} but only {total} bytes were produced so far")
        self.offset = offset
        self.total = total


class _Record(BaseModel):
    """JSON-serialisable, bytes as base64, unknown fields kept out."""

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


class BoxRecord(_Record):
    """One box as the registry knows it; ``last_used`` is kept apart (see ``touch_box``)."""

    id: str
    owner: str
    name: str | None = None
    persist: bool = False
    session: str | None = None  # the legacy session that created it (removed when it ends)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    last_used: float = 0.0  # wall-clock seconds; filled in from the store on reads


class ExecRecord(_Record):
    """One execution: what ran, who follows it, and how it ended.

    Written by the replica that holds its lease (``execution_lease``); the output
    itself lives apart (``append_output``). The head and tail of each stream are
    what a result shows when output exceeds the result cap; the follower writes
    them when the execution ends.
    """

    id: str
    owner: str
    box_id: str
    box_label: str
    command: str
    timeout_seconds: float
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    runtime_execution_id: str | None = None  # what a taking-over replica re-attaches to
    running: bool = True
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    killed: bool = False
    stdin_closed: bool = False
    error: str | None = None
    duration_ms: int | None = None
    stdout_total: int = 0
    stderr_total: int = 0
    stdout_head: bytes = b""
    stdout_tail: bytes = b""
    stderr_head: bytes = b""
    stderr_tail: bytes = b""


class OutputSize(_Record):
    """How much output an execution produced, and how much of it is kept."""

    stored: int  # bytes readable with read_output (at most the stored cap)
    total: int  # bytes produced: the offset of the next append
    stdout: int = 0  # of which on stdout (``append_stream`` keeps these; see there)
    stderr: int = 0  # of which on stderr

    @property
    def dropped(self) -> int:
        return self.total - self.stored


@runtime_checkable
class StateStore(Protocol):
    """Shared state of every replica. All methods are safe to call concurrently."""

    #: Where the store is, for logs and errors (credentials removed).
    description: str

    async def ping(self) -> None:
        """Raise ``StateUnavailableError`` unless the store answers."""

    async def aclose(self) -> None:
        """Release connections (the state itself stays)."""

    # -- boxes ---------------------------------------------------------------
    async def reserve_box(
        self,
        owner: str,
        name: str | None,
        *,
        max_per_owner: int,
        max_total: int,
        ttl_seconds: float,
    ) -> str:
        """Hold a slot (and the name) for a box being created; its reservation id.

        Boxes and live reservations count against both limits; the name must be
        free among the owner's boxes and reservations. A reservation not committed
        nor released within ``ttl_seconds`` lapses (its replica died mid-create).
        Raises ``LimitReachedError`` or ``NameTakenError``.
        """

    async def commit_box(self, reservation: str, record: BoxRecord) -> None:
        """Turn a reservation into a box (its last use: ``record.last_used``)."""

    async def release_box(self, reservation: str) -> None:
        """Give a reservation's slot back (the creation failed)."""

    async def put_box(self, record: BoxRecord) -> None:
        """Store a box outside the limits (one adopted from the runtime at startup)."""

    async def replace_box(self, expected: BoxRecord, new: BoxRecord) -> bool:
        """Compare-and-set: store ``new`` only if the stored record still equals
        ``expected`` (ignoring ``last_used``); whether it did."""

    async def get_box(self, box_id: str) -> BoxRecord | None: ...

    async def boxes(self, owner: str | None = None) -> list[BoxRecord]:
        """The owner's boxes (None: everyone's), oldest first."""

    async def touch_box(self, box_id: str, at: float) -> None:
        """The box was used at ``at`` (wall clock); never moves its last use back."""

    async def remove_box(self, box_id: str) -> bool:
        """Forget a box; True only for the one call that removed it."""

    # -- executions ----------------------------------------------------------
    async def put_execution(self, record: ExecRecord) -> None:
        """Create or replace an execution record; beyond the kept count, the oldest
        finished records and their output are forgotten."""

    async def get_execution(self, execution_id: str) -> ExecRecord | None: ...

    async def executions(self, owner: str | None = None) -> list[ExecRecord]:
        """The owner's executions (None: everyone's), oldest first."""

    async def append_output(
        self, execution_id: str, offset: int, stream: StreamName, data: bytes
    ) -> OutputSize:
        """Add output produced from byte ``offset`` on (counting all output produced).

        Bytes before the total already produced are skipped (a retry, or a
        replica re-attached from an earlier offset); an offset beyond it raises
        ``OutputGapError``. Bytes beyond the stored cap are counted, not kept.
        """

    async def append_stream(
        self, execution_id: str, stream: StreamName, stream_offset: int, data: bytes
    ) -> OutputSize:
        """Add ``stream``'s bytes from ``stream_offset`` on (counting that stream only).

        What an execution's follower uses: the runtime resumes each stream by its own
        offset (a re-attach after takeover), so the per-stream totals are updated in
        the same atomic step as the bytes. Bytes of that stream already produced are
        skipped, the new ones go at the end of the interleaved output; a follower
        that dies between two appends leaves no gap and no duplicate for the next.
        An offset beyond the stream's total raises ``OutputGapError``. Do not mix
        with ``append_output`` on one execution.
        """

    async def read_output(
        self, execution_id: str, cursor: int, max_bytes: int
    ) -> list[tuple[StreamName, bytes]]:
        """Stored pieces from ``cursor`` on, at most ``max_bytes`` in all, in order."""

    async def output_size(self, execution_id: str) -> OutputSize: ...

    async def wait_output(self, execution_id: str, cursor: int) -> None:
        """Return once more than ``cursor`` bytes are stored or the execution is no
        longer running (or unknown); callers bound the wait (``anyio.move_on_after``)."""

    async def push_control(self, execution_id: str, message: bytes) -> None:
        """Queue a control request (stdin, signal, kill) for the execution's follower:
        a replica that does not follow it cannot reach its runtime handle."""

    async def take_control(self, execution_id: str) -> list[bytes]:
        """The queued control requests, oldest first; each is returned once."""

    # -- resumable-stream events -------------------------------------------
    async def store_event(self, stream_id: str, payload: bytes | None) -> str:
        """Append an event to a stream; its id (which names the stream)."""

    async def events_after(self, event_id: str) -> tuple[str, Sequence[tuple[str, bytes]]] | None:
        """(stream id, later events with a payload) or None if the event is unknown
        or already evicted."""

    # -- leases --------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take the lease if free or lapsed, or extend it if ``holder`` has it."""

    async def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Extend the lease only if ``holder`` still has it."""

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up only if ``holder`` has it."""

    async def lease_holder(self, name: str) -> str | None: ...


def same_box(a: BoxRecord, b: BoxRecord) -> bool:
    """Equal as ``replace_box`` compares them: everything but the last use."""
    return a.model_dump(exclude={"last_used"}) == b.model_dump(exclude={"last_used"})
