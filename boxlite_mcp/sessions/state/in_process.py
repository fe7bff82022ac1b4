"""The state store in this process: the default, for one replica (nothing to run).

It keeps exactly what the Redis store keeps, with the same atomicity: every
method runs without an ``await`` between reading and writing, so on one event loop
each is atomic. Output beyond ``MEMORY_SPOOL_BYTES`` per execution spools to a
temporary file, so kept output does not live in RAM. Leases use the monotonic
clock (one process: one clock).
"""

from __future__ import annotations

import bisect
import itertools
import secrets
import tempfile
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from ...runtime.types import StreamName
from .base import (
    DEFAULT_EVENT_TTL_SECONDS,
    DEFAULT_EVENTS_PER_STREAM,
    BoxRecord,
    ExecRecord,
    LimitReachedError,
    NameTakenError,
    OutputGapError,
    OutputSize,
    same_box,
)

#: Output kept in memory per execution before it spools to a temporary file.
MEMORY_SPOOL_BYTES = 1024 * 1024


class _Output:
    """One execution's stored output: bytes by offset plus where each stream's run starts."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=MEMORY_SPOOL_BYTES)
        self.starts: list[int] = []
        self.streams: list[StreamName] = []
        self.stored = 0
        self.total = 0
        self.streams_total: dict[StreamName, int] = {"stdout": 0, "stderr": 0}

    def append(self, offset: int, stream: StreamName, data: bytes, cap: int) -> None:
        if offset > self.total:
            raise OutputGapError(offset, self.total)
        new = data[self.total - offset :]
        keep = new[: max(0, cap - self.stored)]
        if keep:
            if not self.streams or self.streams[-1] != stream:
                self.starts.append(self.stored)
                self.streams.append(stream)
            self.file.seek(self.stored)
            self.file.write(keep)
            self.stored += len(keep)
        self.total += len(new)
        self.streams_total[stream] += len(new)

    def append_stream(self, stream: StreamName, stream_offset: int, data: bytes, cap: int) -> None:
        produced = self.streams_total[stream]
        if stream_offset > produced:
            raise OutputGapError(stream_offset, produced)
        self.append(self.total, stream, data[produced - stream_offset :], cap)

    def size(self) -> OutputSize:
        return OutputSize(
            stored=self.stored,
            total=self.total,
            stdout=self.streams_total["stdout"],
            stderr=self.streams_total["stderr"],
        )

    def read(self, cursor: int, max_bytes: int) -> list[tuple[StreamName, bytes]]:
        cursor = max(0, cursor)
        end = min(self.stored, cursor + max(0, max_bytes))
        if cursor >= end:
            return []
        self.file.seek(cursor)
        blob = self.file.read(end - cursor)
        pieces: list[tuple[StreamName, bytes]] = []
        index = bisect.bisect_right(self.starts, cursor) - 1
        position = cursor
        while position < end:
            seg_end = self.starts[index + 1] if index + 1 < len(self.starts) else self.stored
            stop = min(seg_end, end)
            pieces.append((self.streams[index], blob[position - cursor : stop - cursor]))
            position = stop
            index += 1
        return pieces

    def close(self) -> None:
        self.file.close()


@dataclass
class _Reservation:
    owner: str
    name: str | None
    expires: float


@dataclass
class _Lease:
    holder: str
    expires: float


@dataclass
class _Stream:
    events: deque[tuple[int, bytes | None]] = field(default_factory=deque)
    expires: float = 0.0


class InProcessState:
    """Every piece of shared state, in this process's memory."""

    description = "in process"

    def __init__(
        self,
        *,
        max_executions_kept: int = 256,
        stored_output_cap_bytes: int = 64 * 1024 * 1024,
        events_per_stream: int = DEFAULT_EVENTS_PER_STREAM,
        event_ttl_seconds: float = DEFAULT_EVENT_TTL_SECONDS,
    ) -> None:
        self.max_executions_kept = max_executions_kept
        self.stored_output_cap_bytes = stored_output_cap_bytes
        self.events_per_stream = events_per_stream
        self.event_ttl_seconds = event_ttl_seconds
        self._boxes: dict[str, BoxRecord] = {}
        self._used: dict[str, float] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._execs: OrderedDict[str, ExecRecord] = OrderedDict()
        self._outputs: dict[str, _Output] = {}
        self._changed: dict[str, anyio.Event] = {}
        self._control: dict[str, list[bytes]] = {}
        self._streams: dict[str, _Stream] = {}
        self._event_ids = itertools.count(1)
        self._leases: dict[str, _Lease] = {}

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    # -- boxes ---------------------------------------------------------------
    def _live_reservations(self) -> list[_Reservation]:
        now = time.monotonic()
        for key in [k for k, r in self._reservations.items() if r.expires <= now]:
            del self._reservations[key]
        return list(self._reservations.values())

    async def reserve_box(
        self,
        owner: str,
        name: str | None,
        *,
        max_per_owner: int,
        max_total: int,
        ttl_seconds: float,
    ) -> str:
        pending = self._live_reservations()
        mine = [b for b in self._boxes.values() if b.owner == owner]
        mine_pending = [r for r in pending if r.owner == owner]
        names = {b.name for b in mine} | {r.name for r in mine_pending}
        if name is not None and name in names:
            raise NameTakenError(name)
        count = len(mine) + len(mine_pending)
        if count >= max_per_owner:
            raise LimitReachedError("owner", count, max_per_owner)
        total = len(self._boxes) + len(pending)
        if total >= max_total:
            raise LimitReachedError("total", total, max_total)
        reservation = secrets.token_hex(8)
        self._reservations[reservation] = _Reservation(owner, name, time.monotonic() + ttl_seconds)
        return reservation

    async def commit_box(self, reservation: str, record: BoxRecord) -> None:
        self._reservations.pop(reservation, None)
        await self.put_box(record)

    async def release_box(self, reservation: str) -> None:
        self._reservations.pop(reservation, None)

    async def put_box(self, record: BoxRecord) -> None:
        self._boxes[record.id] = record.model_copy(update={"last_used": 0.0})
        self._used[record.id] = max(record.last_used, self._used.get(record.id, 0.0))

    async def replace_box(self, expected: BoxRecord, new: BoxRecord) -> bool:
        current = self._boxes.get(expected.id)
        if current is None or not same_box(current, expected):
            return False
        self._boxes.pop(expected.id)
        await self.put_box(new)
        return True

    def _with_use(self, record: BoxRecord) -> BoxRecord:
        return record.model_copy(update={"last_used": self._used.get(record.id, 0.0)})

    async def get_box(self, box_id: str) -> BoxRecord | None:
        record = self._boxes.get(box_id)
        return None if record is None else self._with_use(record)

    async def boxes(self, owner: str | None = None) -> list[BoxRecord]:
        found = [b for b in self._boxes.values() if owner is None or b.owner == owner]
        return [self._with_use(b) for b in sorted(found, key=lambda b: b.created_at)]

    async def touch_box(self, box_id: str, at: float) -> None:
        if box_id in self._boxes:
            self._used[box_id] = max(at, self._used.get(box_id, 0.0))

    async def remove_box(self, box_id: str) -> bool:
        self._used.pop(box_id, None)
        return self._boxes.pop(box_id, None) is not None

    # -- executions ----------------------------------------------------------
    async def put_execution(self, record: ExecRecord) -> None:
        self._execs[record.id] = record
        self._notify(record.id)
        excess = len(self._execs) - self.max_executions_kept
        if excess <= 0:
            return
        victims = [r.id for r in self._execs.values() if not r.running][:excess]
        for victim in victims:
            del self._execs[victim]
            output = self._outputs.pop(victim, None)
            if output is not None:
                output.close()
            self._control.pop(victim, None)
            self._notify(victim)

    async def get_execution(self, execution_id: str) -> ExecRecord | None:
        return self._execs.get(execution_id)

    async def executions(self, owner: str | None = None) -> list[ExecRecord]:
        return [r for r in self._execs.values() if owner is None or r.owner == owner]

    def _output(self, execution_id: str) -> _Output:
        output = self._outputs.get(execution_id)
        if output is None:
            output = self._outputs[execution_id] = _Output()
        return output

    async def append_output(
        self, execution_id: str, offset: int, stream: StreamName, data: bytes
    ) -> OutputSize:
        output = self._output(execution_id)
        output.append(offset, stream, data, self.stored_output_cap_bytes)
        self._notify(execution_id)
        return output.size()

    async def append_stream(
        self, execution_id: str, stream: StreamName, stream_offset: int, data: bytes
    ) -> OutputSize:
        output = self._output(execution_id)
        output.append_stream(stream, stream_offset, data, self.stored_output_cap_bytes)
        self._notify(execution_id)
        return output.size()

    async def read_output(
        self, execution_id: str, cursor: int, max_bytes: int
    ) -> list[tuple[StreamName, bytes]]:
        output = self._outputs.get(execution_id)
        return [] if output is None else output.read(cursor, max_bytes)

    async def output_size(self, execution_id: str) -> OutputSize:
        output = self._outputs.get(execution_id)
        return OutputSize(stored=0, total=0) if output is None else output.size()

    def _notify(self, execution_id: str) -> None:
        event = self._changed.pop(execution_id, None)
        if event is not None:
            event.set()

    async def wait_output(self, execution_id: str, cursor: int) -> None:
        while True:
            record = self._execs.get(execution_id)
            output = self._outputs.get(execution_id)
            if record is None or not record.running:
                return
            if output is not None and output.stored > cursor:
                return
            event = self._changed.get(execution_id)
            if event is None:
                event = self._changed[execution_id] = anyio.Event()
            await event.wait()

    async def push_control(self, execution_id: str, message: bytes) -> None:
        self._control.setdefault(execution_id, []).append(message)

    async def take_control(self, execution_id: str) -> list[bytes]:
        return self._control.pop(execution_id, [])

    # -- resumable-stream events -------------------------------------------
    async def store_event(self, stream_id: str, payload: bytes | None) -> str:
        now = time.monotonic()
        for key in [k for k, s in self._streams.items() if s.expires <= now]:
            del self._streams[key]
        stream = self._streams.setdefault(stream_id, _Stream())
        number = next(self._event_ids)
        stream.events.append((number, payload))
        while len(stream.events) > self.events_per_stream:
            stream.events.popleft()
        stream.expires = now + self.event_ttl_seconds
        return f"{stream_id}/{number}"

    async def events_after(self, event_id: str) -> tuple[str, Sequence[tuple[str, bytes]]] | None:
        stream_id, _, raw = event_id.rpartition("/")
        stream = self._streams.get(stream_id)
        if not stream_id or not raw.isdigit() or stream is None:
            return None
        if stream.expires <= time.monotonic():
            return None
        last = int(raw)
        if not any(number == last for number, _ in stream.events):
            return None
        later = [
            (f"{stream_id}/{number}", payload)
            for number, payload in stream.events
            if number > last and payload is not None
        ]
        return stream_id, later

    # -- leases --------------------------------------------------------------
    def _lease(self, name: str) -> _Lease | None:
        lease = self._leases.get(name)
        if lease is not None and lease.expires <= time.monotonic():
            del self._leases[name]
            return None
        return lease

    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        lease = self._lease(name)
        if lease is not None and lease.holder != holder:
            return False
        self._leases[name] = _Lease(holder, time.monotonic() + ttl_seconds)
        return True

    async def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        lease = self._lease(name)
        if lease is None or lease.holder != holder:
            return False
        lease.expires = time.monotonic() + ttl_seconds
        return True

    async def release_lease(self, name: str, holder: str) -> bool:
        lease = self._lease(name)
        if lease is None or lease.holder != holder:
            return False
        del self._leases[name]
        return True

    async def lease_holder(self, name: str) -> str | None:
        lease = self._lease(name)
        return None if lease is None else lease.holder
