"""The state store in Redis, for several replicas (``--state redis://HOST:PORT/DB``).

Every call that replicas may race on is one Lua script, which Redis runs
atomically: reserving a box slot, comparing-and-setting a box, storing an
execution (and evicting old ones), appending output at an offset, and the
lease operations. Lease and reservation expiry use the Redis server's clock, so
replicas' clocks never have to agree.

Layout under ``prefix`` (default ``boxlite-mcp:``): ``boxes`` (hash id → JSON),
``used`` (hash id → last use), ``owned:<owner>`` (set of box ids, an index),
``reservations`` (hash), ``execs`` (hash id →
JSON), ``exec:order`` (sorted set), ``exec:owner`` (hash id → owner),
``exec:running`` (set), ``out:<id>:data|segs|total|streams|control`` (output
bytes, where each stream's run starts, bytes produced in all and per stream,
control requests for the follower), ``ev:<stream>`` (a Redis stream of events),
``lease:<name>``. Scripts touch keys they compute from the prefix, so this needs
a single Redis (or a primary with replicas), not Redis Cluster.

Reached through ``redis.asyncio`` (the ``redis`` extra). A Redis that cannot be
reached (down, restarting, loading its data) makes every call raise
``StateUnavailableError`` after a short bounded retry; nothing is half-written,
since each write is one script or one MULTI transaction. Give Redis an
append-only file so that a restart keeps the state (docs/deploy.md).
"""

from __future__ import annotations

import bisect
import contextlib
import secrets
from collections.abc import Iterator, Sequence
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import anyio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
    StateUnavailableError,
)

DEFAULT_PREFIX: Final = "boxlite-mcp:"
#: How often a waiting ``wait_output`` looks again (another replica may append).
POLL_SECONDS: Final = 0.05
CONNECT_TIMEOUT_SECONDS: Final = 2.0
COMMAND_TIMEOUT_SECONDS: Final = 5.0
#: Control requests nobody took (their follower died and nobody took over) expire.
CONTROL_TTL_SECONDS: Final = 3600.0

_RESERVE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner, name = ARGV[1], ARGV[2]
local mine, total = 0, redis.call('HLEN', KEYS[1])
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  local r = cjson.decode(held[i + 1])
  if r.expires <= now then
    redis.call('HDEL', KEYS[2], held[i])
  else
    total = total + 1
    if r.owner == owner then
      mine = mine + 1
      if name ~= '' and r.name == name then return {'name', 0} end
    end
  end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local b = cjson.decode(raw)
    if b.owner == owner then
      mine = mine + 1
      if name ~= '' and b.name == name then return {'name', 0} end
    end
  end
end
if mine >= tonumber(ARGV[3]) then return {'owner', mine} end
if total >= tonumber(ARGV[4]) then return {'total', total} end
redis.call('HSET', KEYS[2], ARGV[6],
  cjson.encode({owner = owner, name = name, expires = now + tonumber(ARGV[5])}))
return {'ok', 0}
"""

_REPLACE_BOX: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if KEYS[2] ~= KEYS[3] then
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[1])
end
return 1
"""

_REMOVE_BOX: Final = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', ARGV[2] .. cjson.decode(raw).owner, ARGV[1])
return 1
"""

_TOUCH: Final = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 1
"""

_PUT_EXEC: Final = """
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id) == 0 then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), id)
end
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('HSET', KEYS[4], id, ARGV[3])
if ARGV[4] == '1' then redis.call('SADD', KEYS[5], id) else redis.call('SREM', KEYS[5], id) end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if excess <= 0 then return 0 end
local evicted = 0
for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if excess <= 0 then break end
  if redis.call('SISMEMBER', KEYS[5], old) == 0 then
    redis.call('HDEL', KEYS[1], old)
    redis.call('HDEL', KEYS[4], old)
    redis.call('ZREM', KEYS[2], old)
    local out = ARGV[6] .. old
    redis.call('DEL', out .. ':data', out .. ':segs', out .. ':total')
    redis.call('DEL', out .. ':streams', out .. ':control')
    excess = excess - 1
    evicted = evicted + 1
  end
end
return evicted
"""

_APPEND: Final = """
-- ARGV: offset (interleaved), stream, data, cap, stream offset ('' for none)
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local stored = redis.call('STRLEN', KEYS[1])
local data = ARGV[3]
local offset = tonumber(ARGV[1])
if ARGV[5] ~= '' then
  local produced = tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0')
  local from = tonumber(ARGV[5])
  if from > produced then return {-1, stored, produced} end
  data = string.sub(data, produced - from + 1)
  offset = total
end
if offset > total then return {-1, stored, total} end
local skip = total - offset
if skip >= #data then return {0, stored, total} end
local new = string.sub(data, skip + 1)
local room = tonumber(ARGV[4]) - stored
if room > 0 then
  local keep = string.sub(new, 1, room)
  local last = redis.call('LINDEX', KEYS[2], -1)
  if not last or string.sub(last, string.find(last, ':') + 1) ~= ARGV[2] then
    redis.call('RPUSH', KEYS[2], stored .. ':' .. ARGV[2])
  end
  redis.call('APPEND', KEYS[1], keep)
  stored = stored + #keep
end
total = total + #new
redis.call('SET', KEYS[3], total)
redis.call('HINCRBY', KEYS[4], ARGV[2], #new)
return {1, stored, total}
"""

_ACQUIRE: Final = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


def describe_url(url: str) -> str:
    """A Redis URL without user name or password, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisState:
    """The shared state of every replica, in one Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_executions_kept: int = 256,
        stored_output_cap_bytes: int = 64 * 1024 * 1024,
        events_per_stream: int = DEFAULT_EVENTS_PER_STREAM,
        event_ttl_seconds: float = DEFAULT_EVENT_TTL_SECONDS,
    ) -> None:
        self.description = describe_url(url)
        self.prefix = prefix
        self.max_executions_kept = max_executions_kept
        self.stored_output_cap_bytes = stored_output_cap_bytes
        self.events_per_stream = events_per_stream
        self.event_ttl_seconds = event_ttl_seconds
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            decode_responses=False,
        )
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("reserve", _RESERVE),
                ("replace_box", _REPLACE_BOX),
                ("remove_box", _REMOVE_BOX),
                ("touch", _TOUCH),
                ("put_exec", _PUT_EXEC),
                ("append", _APPEND),
                ("acquire", _ACQUIRE),
                ("renew", _RENEW),
                ("release", _RELEASE),
            )
        }

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError) as exc:
            reason = type(exc).__name__
            raise StateUnavailableError(
                f"The shared state store ({self.description}) cannot be reached ({reason}); "
                "this call did not complete. Retry in a moment; if it persists, the operator "
                "must bring the state store back."
            ) from None

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        with self._reachable():
            return await self._scripts[script](keys=keys, args=args)

    async def ping(self) -> None:
        with self._reachable():
            await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()

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
        reservation = secrets.token_hex(8)
        verdict, count = await self._run(
            "reserve",
            [self._key("boxes"), self._key("reservations"), self._owned(owner)],
            [owner, name or "", max_per_owner, max_total, _ms(ttl_seconds), reservation],
        )
        kind = _text(verdict)
        if kind == "name":
            raise NameTakenError(name or "")
        if kind == "owner":
            raise LimitReachedError("owner", int(count), max_per_owner)
        if kind == "total":
            raise LimitReachedError("total", int(count), max_total)
        return reservation

    async def commit_box(self, reservation: str, record: BoxRecord) -> None:
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.hdel(self._key("reservations"), reservation)
                self._queue_put_box(tx, record)
                tx.hset(self._key("used"), record.id, repr(float(record.last_used)))
                await tx.execute()

    async def release_box(self, reservation: str) -> None:
        with self._reachable():
            await self._redis.hdel(self._key("reservations"), reservation)

    def _owned(self, owner: str) -> str:
        """The set of an owner's box ids (an index: the records stay authoritative)."""
        return self._key("owned", owner)

    def _queue_put_box(self, tx: Any, record: BoxRecord) -> None:
        tx.hset(self._key("boxes"), record.id, _box_json(record))
        tx.sadd(self._owned(record.owner), record.id)

    async def put_box(self, record: BoxRecord) -> None:
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                self._queue_put_box(tx, record)
                await tx.execute()
        await self.touch_box(record.id, record.last_used)

    async def replace_box(self, expected: BoxRecord, new: BoxRecord) -> bool:
        if expected.id != new.id:
            raise ValueError("replace_box keeps the box id")
        done = await self._run(
            "replace_box",
            [self._key("boxes"), self._owned(expected.owner), self._owned(new.owner)],
            [expected.id, _box_json(expected), _box_json(new)],
        )
        if done:
            await self.touch_box(new.id, new.last_used)
        return bool(done)

    async def get_box(self, box_id: str) -> BoxRecord | None:
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.hget(self._key("boxes"), box_id)
                tx.hget(self._key("used"), box_id)
                raw, used = await tx.execute()
        return None if raw is None else _box(raw, used)

    async def boxes(self, owner: str | None = None) -> list[BoxRecord]:
        with self._reachable():
            if owner is None:
                async with self._redis.pipeline(transaction=True) as tx:
                    tx.hgetall(self._key("boxes"))
                    tx.hgetall(self._key("used"))
                    raw, used = await tx.execute()
                pairs = [(value, used.get(key)) for key, value in raw.items()]
            else:
                ids = list(await self._redis.smembers(self._owned(owner)))
                if not ids:
                    return []
                async with self._redis.pipeline(transaction=True) as tx:
                    tx.hmget(self._key("boxes"), ids)
                    tx.hmget(self._key("used"), ids)
                    raws, uses = await tx.execute()
                pairs = [(r, u) for r, u in zip(raws, uses, strict=True) if r is not None]
        records = [_box(value, use) for value, use in pairs]
        found = [r for r in records if owner is None or r.owner == owner]
        return sorted(found, key=lambda r: r.created_at)

    async def touch_box(self, box_id: str, at: float) -> None:
        await self._run("touch", [self._key("boxes"), self._key("used")], [box_id, repr(at)])

    async def remove_box(self, box_id: str) -> bool:
        removed = await self._run(
            "remove_box", [self._key("boxes"), self._key("used")], [box_id, self._owned("")]
        )
        return bool(removed)

    # -- executions ----------------------------------------------------------
    async def put_execution(self, record: ExecRecord) -> None:
        await self._run(
            "put_exec",
            [
                self._key("execs"),
                self._key("exec", "order"),
                self._key("exec", "seq"),
                self._key("exec", "owner"),
                self._key("exec", "running"),
            ],
            [
                record.id,
                record.model_dump_json(),
                record.owner,
                "1" if record.running else "0",
                self.max_executions_kept,
                self._key("out", ""),
            ],
        )

    async def get_execution(self, execution_id: str) -> ExecRecord | None:
        with self._reachable():
            raw = await self._redis.hget(self._key("execs"), execution_id)
        return None if raw is None else ExecRecord.model_validate_json(raw)

    async def executions(self, owner: str | None = None) -> list[ExecRecord]:
        with self._reachable():
            ids = [_text(i) for i in await self._redis.zrange(self._key("exec", "order"), 0, -1)]
            if not ids:
                return []
            if owner is not None:
                owners = await self._redis.hmget(self._key("exec", "owner"), ids)
                ids = [
                    i
                    for i, o in zip(ids, owners, strict=True)
                    if o is not None and _text(o) == owner
                ]
                if not ids:
                    return []
            raws = await self._redis.hmget(self._key("execs"), ids)
        return [ExecRecord.model_validate_json(raw) for raw in raws if raw is not None]

    def _out(self, execution_id: str) -> list[str]:
        base = self._key("out", execution_id)
        return [f"{base}:data", f"{base}:segs", f"{base}:total", f"{base}:streams"]

    async def append_output(
        self, execution_id: str, offset: int, stream: StreamName, data: bytes
    ) -> OutputSize:
        status, _, total = await self._run(
            "append",
            self._out(execution_id),
            [offset, stream, data, self.stored_output_cap_bytes, ""],
        )
        if int(status) < 0:
            raise OutputGapError(offset, int(total))
        return await self.output_size(execution_id)

    async def append_stream(
        self, execution_id: str, stream: StreamName, stream_offset: int, data: bytes
    ) -> OutputSize:
        status, _, produced = await self._run(
            "append",
            self._out(execution_id),
            [0, stream, data, self.stored_output_cap_bytes, stream_offset],
        )
        if int(status) < 0:
            raise OutputGapError(stream_offset, int(produced))
        return await self.output_size(execution_id)

    async def read_output(
        self, execution_id: str, cursor: int, max_bytes: int
    ) -> list[tuple[StreamName, bytes]]:
        cursor = max(0, cursor)
        if max_bytes <= 0:
            return []
        data_key, segs_key, _, _ = self._out(execution_id)
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.getrange(data_key, cursor, cursor + max_bytes - 1)
                tx.lrange(segs_key, 0, -1)
                blob, segs = await tx.execute()
        if not blob:
            return []
        starts: list[int] = []
        streams: list[StreamName] = []
        for seg in segs:
            start, _, name = _text(seg).partition(":")
            starts.append(int(start))
            streams.append(cast(StreamName, name))
        return _split(bytes(blob), cursor, starts, streams)

    async def output_size(self, execution_id: str) -> OutputSize:
        data_key, _, total_key, streams_key = self._out(execution_id)
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.strlen(data_key)
                tx.get(total_key)
                tx.hmget(streams_key, ["stdout", "stderr"])
                stored, total, (out, err) = await tx.execute()
        return OutputSize(
            stored=int(stored), total=int(total or 0), stdout=int(out or 0), stderr=int(err or 0)
        )

    async def wait_output(self, execution_id: str, cursor: int) -> None:
        data_key = self._out(execution_id)[0]
        while True:
            with self._reachable():
                async with self._redis.pipeline(transaction=True) as tx:
                    tx.strlen(data_key)
                    tx.sismember(self._key("exec", "running"), execution_id)
                    stored, running = await tx.execute()
            if int(stored) > cursor or not running:
                return
            await anyio.sleep(POLL_SECONDS)

    async def push_control(self, execution_id: str, message: bytes) -> None:
        key = self._key("out", execution_id) + ":control"
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.rpush(key, message)
                tx.pexpire(key, _ms(CONTROL_TTL_SECONDS))
                await tx.execute()

    async def take_control(self, execution_id: str) -> list[bytes]:
        key = self._key("out", execution_id) + ":control"
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.lrange(key, 0, -1)
                tx.delete(key)
                messages, _ = await tx.execute()
        return [bytes(m) for m in messages]

    # -- resumable-stream events -------------------------------------------
    async def store_event(self, stream_id: str, payload: bytes | None) -> str:
        key = self._key("ev", stream_id)
        fields: dict[str, bytes] = {"n": b""} if payload is None else {"p": payload}
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.xadd(key, fields, maxlen=self.events_per_stream, approximate=False)  # type: ignore[arg-type]
                tx.pexpire(key, _ms(self.event_ttl_seconds))
                entry, _ = await tx.execute()
        return f"{stream_id}/{_text(entry)}"

    async def events_after(self, event_id: str) -> tuple[str, Sequence[tuple[str, bytes]]] | None:
        stream_id, _, entry = event_id.rpartition("/")
        if not stream_id or not _is_entry_id(entry):
            return None
        key = self._key("ev", stream_id)
        with self._reachable():
            async with self._redis.pipeline(transaction=True) as tx:
                tx.xrange(key, entry, entry, count=1)
                tx.xrange(key, f"({entry}", "+")
                found, later = await tx.execute()
        if not found:
            return None
        events = [
            (f"{stream_id}/{_text(entry_id)}", bytes(fields[b"p"]))
            for entry_id, fields in later
            if b"p" in fields
        ]
        return stream_id, events

    # -- leases --------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        return bool(
            await self._run("acquire", [self._key("lease", name)], [holder, _ms(ttl_seconds)])
        )

    async def renew_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        return bool(
            await self._run("renew", [self._key("lease", name)], [holder, _ms(ttl_seconds)])
        )

    async def release_lease(self, name: str, holder: str) -> bool:
        return bool(await self._run("release", [self._key("lease", name)], [holder]))

    async def lease_holder(self, name: str) -> str | None:
        with self._reachable():
            holder = await self._redis.get(self._key("lease", name))
        return None if holder is None else _text(holder)


def _box_json(record: BoxRecord) -> str:
    """The stored form: last use lives in its own hash, so it is always 0 here."""
    return record.model_copy(update={"last_used": 0.0}).model_dump_json()


def _box(raw: bytes, used: bytes | None) -> BoxRecord:
    record = BoxRecord.model_validate_json(raw)
    return record.model_copy(update={"last_used": float(used) if used is not None else 0.0})


def _is_entry_id(entry: str) -> bool:
    millis, dash, seq = entry.partition("-")
    return bool(dash) and millis.isdigit() and seq.isdigit()


def _split(
    blob: bytes, cursor: int, starts: list[int], streams: list[StreamName]
) -> list[tuple[StreamName, bytes]]:
    """Cut ``blob`` (the bytes from ``cursor`` on) where the stream changes."""
    pieces: list[tuple[StreamName, bytes]] = []
    end = cursor + len(blob)
    index = bisect.bisect_right(starts, cursor) - 1
    position = cursor
    while position < end and index >= 0:
        seg_end = starts[index + 1] if index + 1 < len(starts) else end
        stop = min(seg_end, end)
        pieces.append((streams[index], blob[position - cursor : stop - cursor]))
        position = stop
        index += 1
    return pieces
