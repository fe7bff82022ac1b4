"""The per-owner box registry: who owns which box, limits, and when boxes go away.

A box belongs to the identity that created it, and every lookup is by (owner, id or
name): another owner's box answers exactly like a box that does not exist. Names are
per owner; in the runtime a box carries the reserved name from ``naming`` so owners
never collide and a restarted server finds its boxes again.

What the registry knows lives in the state store (``sessions/state``): each box's
owner, name, persist flag, session and last use. In process by default; in Redis,
every replica behind a load balancer sees the same boxes, so a box created through
one replica is used and removed through another. A replica keeps only a cache of
runtime ``Box`` handles, rebuilt with ``runtime.get(id)`` for a box another replica
created, and the count of its own requests attached to each box.

A box is removed when the session that created it ends, when it has been idle
longer than the TTL (the reaper), and, with the in-process store, when the server
shuts down, unless it was created with ``persist``. With a shared store the boxes
outlive any one replica: the other replicas' reaper removes them when idle. Only the
holder of the reaper lease reaps, and a box is removed (from the runtime too) by the
one caller whose ``remove_box`` won, so each box goes exactly once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio

from ..runtime.base import Box, Runtime
from ..runtime.errors import (
    AlreadyExistsError,
    BoxliteError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    quote_reference,
)
from ..runtime.types import BoxInfo, BoxOptions
from ..settings import Settings
from . import naming
from .state import (
    REAPER_LEASE,
    BoxRecord,
    InProcessState,
    LimitReachedError,
    NameTakenError,
    StateStore,
    StateUnavailableError,
)

logger = logging.getLogger(__name__)

#: How long a creation in flight holds its slot if its replica dies mid-create.
RESERVATION_TTL_SECONDS = 900.0

#: Called with a box's id when the registry removed it (python sessions close theirs).
RemovedHook = Callable[[str], Awaitable[None]]

#: Whether the client behind an attached request can still hear it (the transport
#: knows: ``server/sdk.py`` ``response_heard``). Asked once per reap round.
Heard = Callable[[], bool]


def _always_heard() -> bool:
    return True


@dataclass
class BoxEntry:
    """One box as a request sees it: the stored record plus this replica's handle."""

    box: Box
    owner: str
    name: str | None
    persist: bool
    session: str | None
    #: Where touches go (the shared idle clock).
    registry: Registry = field(repr=False, compare=False)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Wall-clock seconds (``time.time()``): replicas compare it.
    last_used: float = field(default_factory=time.time)
    #: Requests in flight on this replica that wait on this box (exec_run, exec_read)
    #: and that their client can still hear.
    attached: int = 0

    @property
    def id(self) -> str:
        return self.box.id

    @property
    def label(self) -> str:
        """How to show the box to its owner."""
        return f"{self.name} ({self.id})" if self.name else self.id

    def idle_seconds(self, now: float | None = None) -> float:
        if self.attached:
            return 0.0
        return max(0.0, (self.registry.clock() if now is None else now) - self.last_used)

    async def touch(self) -> None:
        """Its owner used it now: restart its idle clock (for every replica)."""
        await self.registry.touch(self)

    def mark_used(self) -> None:
        """``touch`` for a synchronous caller (an execution that just ended): the
        store hears of it at the next reap round, within ``reap_interval_seconds``."""
        self.last_used = self.registry.clock()
        self.registry.mark_used(self.id, self.last_used)

    def in_use(self, heard: Heard = _always_heard) -> AbstractAsyncContextManager[None]:
        """``async with entry.in_use(heard):`` a request waits on it (see ``Registry.in_use``)."""
        return self.registry.in_use(self, heard)


def _label(record: BoxRecord) -> str:
    return f"{record.name} ({record.id})" if record.name else record.id


def _unclaimed(digest: str) -> str:
    """The placeholder owner of an adopted box until its owner shows up."""
    return f"#unclaimed:{digest}"


def replica_id() -> str:
    """Who holds a lease: unique per process, readable in Redis for operators."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Registry:
    """Owner-scoped boxes over one runtime and one state store, with limits and cleanup."""

    def __init__(
        self,
        runtime: Runtime,
        settings: Settings,
        state: StateStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        #: Wall-clock seconds, shared by replicas (tests pass one they move on).
        self.clock = clock
        self.settings = settings
        self.state: StateStore = state if state is not None else InProcessState()
        #: Boxes outlive this process when other replicas share the store.
        self.shared = self.state.shared
        self.replica = replica_id()
        self._handles: dict[str, Box] = {}  # by runtime box id
        self._attached: dict[str, list[Heard]] = {}  # by box id: one per attached request
        self._used_since_round: dict[str, float] = {}  # mark_used, not yet stored
        self._removed_hooks: list[RemovedHook] = []

    def on_removed(self, hook: RemovedHook) -> None:
        """Call ``hook(box_id)`` whenever this registry removes a box."""
        self._removed_hooks.append(hook)

    # -- records and handles -------------------------------------------------
    async def _claim(self, owner: str) -> None:
        """Give an owner the boxes adopted at startup under its hash."""
        placeholder = _unclaimed(naming.owner_hash(owner))
        for record in await self.state.boxes(placeholder):
            await self.state.replace_box(record, record.model_copy(update={"owner": owner}))

    async def records(self, owner: str) -> list[BoxRecord]:
        """The owner's boxes as stored, oldest first (no runtime call)."""
        await self._claim(owner)
        return await self.state.boxes(owner)

    async def _entry(self, record: BoxRecord) -> BoxEntry | None:
        """The record with this replica's handle on its box; None if the runtime lost it."""
        box = self._handles.get(record.id)
        if box is None:
            try:
                box = await self.runtime.get(record.id)
            except NotFoundError:
                await self._forget(record.id)
                return None
            self._handles[record.id] = box
        return BoxEntry(
            box=box,
            owner=record.owner,
            name=record.name,
            persist=record.persist,
            session=record.session,
            registry=self,
            created_at=record.created_at,
            last_used=record.last_used,
            attached=self._attending(record.id),
        )

    async def owned_by(self, owner: str) -> list[BoxEntry]:
        entries = [await self._entry(r) for r in await self.records(owner)]
        return [e for e in entries if e is not None]

    async def total(self) -> int:
        return len(await self.state.boxes())

    async def _find(self, owner: str, ref: str) -> BoxRecord | None:
        await self._claim(owner)
        record = await self.state.get_box(ref)
        if record is not None and record.owner == owner:
            return record
        for record in await self.state.boxes(owner):
            if record.name == ref:
                return record
        return None

    async def resolve(self, owner: str, ref: str) -> BoxEntry:
        """The owner's box with this id or name; NotFoundError otherwise (no oracle)."""
        record = await self._find(owner, ref)
        entry = await self._entry(record) if record is not None else None
        if entry is None:
            entry = await self._adopt_one(owner, ref)
        if entry is None:
            raise await self.not_found(owner, ref)
        await self.touch(entry)
        return entry

    async def entry_by_id(self, owner: str, box_id: str) -> BoxEntry | None:
        """The owner's box with this id, if it still exists (no error, no touch)."""
        record = await self.state.get_box(box_id)
        if record is None or record.owner != owner:
            return None
        return await self._entry(record)

    async def touch(self, entry: BoxEntry) -> None:
        """The owner used this box now: restart its idle clock (for every replica)."""
        entry.last_used = self.clock()
        await self.state.touch_box(entry.id, entry.last_used)

    async def touch_id(self, owner: str, box_id: str) -> None:
        """The owner attended to this box (an execution of it): restart its idle clock."""
        record = await self.state.get_box(box_id)
        if record is not None and record.owner == owner:
            await self.state.touch_box(box_id, self.clock())

    def mark_used(self, box_id: str, at: float) -> None:
        self._used_since_round[box_id] = max(at, self._used_since_round.get(box_id, 0.0))

    def cached_box(self, box_id: str) -> Box | None:
        """This replica's handle on a box, if it has one (no store nor runtime call)."""
        return self._handles.get(box_id)

    def _attending(self, box_id: str) -> int:
        """How many requests attached to this box their clients can still hear."""
        return sum(1 for heard in self._attached.get(box_id, ()) if heard())

    @asynccontextmanager
    async def in_use(self, entry: BoxEntry, heard: Heard = _always_heard) -> AsyncIterator[None]:
        """Mark the box as used by a request for as long as the block runs and
        ``heard()`` says its client can still hear it.

        Only an attended request keeps a box from idling: a command started with
        exec_start and then left alone does not, so a client that vanishes cannot
        keep its box (and the command in it) alive past the TTL. Nor does a request
        whose client is gone although the request runs on (a handshake-era HTTP
        request whose stream dropped: the client may resume it, so the SDK keeps
        serving it): the box idles from the last round its client was heard, and a
        client that resumes within the TTL keeps it. Another replica's reaper sees
        the box in use because this replica touches its attended boxes every reap
        interval (``run_reaper``).
        """
        self._attached.setdefault(entry.id, []).append(heard)
        entry.attached += 1
        try:
            await self.touch(entry)
            yield
        finally:
            entry.attached -= 1
            attached = self._attached.get(entry.id, [])
            if heard in attached:
                attached.remove(heard)
            if not attached:
                self._attached.pop(entry.id, None)
            with anyio.CancelScope(shield=True):
                try:
                    await self.touch(entry)
                except StateUnavailableError:
                    pass  # the touch on entry stands; the call's own error says more

    @asynccontextmanager
    async def attending(
        self, owner: str, box_id: str, heard: Heard = _always_heard
    ) -> AsyncIterator[None]:
        """The owner attends to an execution of this box: the box is in use meanwhile
        (while ``heard()``, as for ``in_use``)."""
        entry = await self.entry_by_id(owner, box_id)
        if entry is None:
            yield
            return
        async with self.in_use(entry, heard):
            yield

    async def not_found(self, owner: str, ref: str) -> NotFoundError:
        mine = await self.records(owner)
        if mine:
            listing = ", ".join(_label(r) for r in mine[:20])
            known = f"Your boxes: {listing}."
        else:
            known = "You have no boxes; create one with box_create."
        # Only what was asked is repeated: the same message whoever else has that box.
        return NotFoundError(
            f"No box with that id or name ({quote_reference(ref)}) among your boxes. {known}"
        )

    # -- create / adopt / remove ---------------------------------------------
    async def _reserve(self, owner: str, name: str | None) -> str:
        await self._claim(owner)
        try:
            return await self.state.reserve_box(
                owner,
                name,
                max_per_owner=self.settings.max_boxes_per_owner,
                max_total=self.settings.max_boxes_total,
                ttl_seconds=RESERVATION_TTL_SECONDS,
            )
        except NameTakenError:
            raise AlreadyExistsError(
                f"You already have a box named {name!r}. Use it, remove it, or pick another name."
            ) from None
        except LimitReachedError as exc:
            if exc.scope == "owner":
                raise InvalidArgumentError(
                    f"You already have {exc.count} boxes, the most one owner may have "
                    f"({exc.limit}). Remove one with box_remove first."
                ) from None
            raise InvalidStateError(
                f"This server is at its limit of {exc.limit} boxes in "
                "total. Remove a box you no longer need, or try again later."
            ) from None

    def runtime_name(self, owner: str, name: str | None, persist: bool) -> str:
        if name is not None and len(name) > naming.MAX_NAME_LENGTH:
            raise InvalidArgumentError(
                f"A box name has at most {naming.MAX_NAME_LENGTH} characters."
            )
        return naming.runtime_name(owner, name, persist=persist)

    async def create(
        self, owner: str, session: str | None, options: BoxOptions, *, persist: bool
    ) -> BoxEntry:
        """Create a box for ``owner`` within the limits, under its reserved name."""

        async def make(runtime_name: str) -> Box:
            return await self.runtime.create(options.model_copy(update={"name": runtime_name}))

        return await self.add_created(owner, session, options.name, persist, make)

    async def add_created(
        self,
        owner: str,
        session: str | None,
        name: str | None,
        persist: bool,
        make: Callable[[str], Awaitable[Box]],
    ) -> BoxEntry:
        """Register a box made by ``make(runtime_name)`` (create, clone, import), within
        the limits: its slot is reserved in the store before the runtime makes it."""
        runtime_name = self.runtime_name(owner, name, persist)
        reservation = await self._reserve(owner, name)
        try:
            box = await make(runtime_name)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._release_quietly(reservation)
            if isinstance(exc, BoxliteError):
                raise exc.about(runtime_name) from None
            raise
        record = BoxRecord(
            id=box.id,
            owner=owner,
            name=name,
            persist=persist,
            session=session,
            last_used=self.clock(),
        )
        try:
            await self.state.commit_box(reservation, record)
        except BaseException:
            # Not recorded, so nobody could find or reap it: it must not outlive the call.
            with anyio.CancelScope(shield=True):
                try:
                    await self.runtime.remove(box.id, force=True)
                except BoxliteError as exc:
                    logger.warning("could not remove unrecorded box %s: %s", box.id, exc.kind)
            raise
        self._handles[box.id] = box
        logger.info("box %s created (persist=%s)", box.id, persist)
        entry = await self._entry(record)
        assert entry is not None  # its handle was just cached
        return entry

    async def _release_quietly(self, reservation: str) -> None:
        try:
            await self.state.release_box(reservation)
        except StateUnavailableError:
            pass  # the reservation lapses on its own (RESERVATION_TTL_SECONDS)

    async def remove(self, owner: str, ref: str, *, force: bool = True) -> BoxEntry:
        entry = await self.resolve(owner, ref)
        await self._remove_box(entry.id, force=force)
        return entry

    async def _remove_box(self, box_id: str, *, force: bool) -> bool:
        """Remove a box from the store, then from the runtime, unless another caller
        already did (whether this call removed it). A runtime failure puts the record
        back, so the box can still be found and removed again."""
        record = await self.state.get_box(box_id)
        if record is None or not await self.state.remove_box(box_id):
            self._handles.pop(box_id, None)
            return False  # another replica (or request) removed it
        try:
            await self.runtime.remove(box_id, force=force)
        except NotFoundError:
            pass  # already gone from the runtime: forgotten all the same
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.state.put_box(record)
            raise
        self._handles.pop(box_id, None)
        logger.info("box %s removed", box_id)
        await self._removed(box_id)
        return True

    async def _forget(self, box_id: str) -> None:
        """The runtime no longer has this box: drop its record (nothing to remove)."""
        self._handles.pop(box_id, None)
        if await self.state.remove_box(box_id):
            await self._removed(box_id)

    async def _removed(self, box_id: str) -> None:
        for hook in self._removed_hooks:
            try:
                await hook(box_id)
            except Exception:  # a hook's failure must not undo nor hide the removal
                logger.exception("cleaning up after box %s failed", box_id)

    async def listed(self, owner: str) -> list[tuple[BoxEntry, BoxInfo]]:
        """The owner's boxes with fresh runtime info; boxes gone from the runtime are forgotten."""
        known = await self.records(owner)
        infos = {info.id: info for info in await self.runtime.list()}
        listed: list[tuple[BoxEntry, BoxInfo]] = []
        for record in known:  # only records that existed before the listing started
            if record.id not in infos:
                await self._forget(record.id)
            elif (entry := await self._entry(record)) is not None:
                listed.append((entry, infos[record.id]))
        return listed

    async def _adopt_one(self, owner: str, ref: str) -> BoxEntry | None:
        """Find an owner's box the runtime has but the store does not know yet."""
        digest = naming.owner_hash(owner)
        try:
            infos = await self.runtime.list()
        except BoxliteError:
            return None
        for info in infos:
            parsed = naming.parse(info.name)
            if parsed is None or parsed.owner_hash != digest:
                continue
            if ref in (info.id, parsed.name) and await self.state.get_box(info.id) is None:
                return await self._adopt(info, owner, parsed)
        return None

    async def _adopt(self, info: BoxInfo, owner: str, parsed: naming.ParsedName) -> BoxEntry | None:
        try:
            box = await self.runtime.get(info.id)
        except NotFoundError:
            return None
        record = BoxRecord(
            id=box.id,
            owner=owner,
            name=parsed.name,
            persist=parsed.persist,
            created_at=info.created_at,
            last_used=self.clock(),
        )
        await self.state.put_box(record)
        self._handles[box.id] = box
        return await self._entry(record)

    async def adopt_at_startup(self) -> int:
        """Take back the boxes this server's name scheme marks (after a restart).

        Owners are known only by hash until they ask, so adopted boxes carry a
        placeholder owner until that owner's first request claims them.
        Non-persistent ones are reaped after the idle TTL like any other. Boxes
        the store already knows (another replica's) stay as they are.
        """
        try:
            infos = await self.runtime.list()
        except BoxliteError as exc:
            logger.warning("could not list runtime boxes at startup: %s", exc.kind)
            return 0
        count = 0
        for info in infos:
            parsed = naming.parse(info.name)
            if parsed is None or await self.state.get_box(info.id) is not None:
                continue
            adopted = await self._adopt(info, _unclaimed(parsed.owner_hash), parsed)
            count += adopted is not None
        if count:
            logger.info("adopted %d boxes left by an earlier run", count)
        return count

    # -- cleanup -------------------------------------------------------------
    def expires_in(self, entry: BoxEntry, now: float | None = None) -> float | None:
        if entry.persist:
            return None
        return round(max(0.0, self.settings.box_idle_ttl_seconds - entry.idle_seconds(now)), 3)

    async def reap_idle(self) -> list[str]:
        """Remove non-persistent boxes idle past the TTL, killing what still runs in them.

        Idle means no request of its owner touched the box for the TTL and none is
        attending it now (attached and heard); a command left running without
        attention does not count.
        Returns the boxes this call removed (not those another replica removed first).
        """
        now = self.clock()
        reaped = []
        for record in await self.state.boxes():
            if record.persist or self._attending(record.id):
                continue
            last_used = max(record.last_used, self._used_since_round.get(record.id, 0.0))
            if now - last_used >= self.settings.box_idle_ttl_seconds:
                if await self._remove_quietly(record.id):
                    reaped.append(record.id)
        if reaped:
            logger.info("reaped %d idle boxes", len(reaped))
        return reaped

    async def _keep_attached(self) -> None:
        """Touch the boxes this replica's requests attend (and store the uses
        ``mark_used`` noted), so that whichever replica reaps sees them in use."""
        now = self.clock()
        for box_id in [b for b in list(self._attached) if self._attending(b)]:
            await self.state.touch_box(box_id, now)
        noted, self._used_since_round = self._used_since_round, {}
        for box_id, at in noted.items():
            await self.state.touch_box(box_id, at)

    def _lease_ttl(self) -> float:
        """The reaper lease outlives a few missed rounds, then another replica takes over."""
        return 3 * self.settings.reap_interval_seconds + 5.0

    async def reap_round(self) -> list[str]:
        """One round: keep attached boxes alive, then reap if this replica holds the lease."""
        await self._keep_attached()
        if not await self.state.acquire_lease(REAPER_LEASE, self.replica, self._lease_ttl()):
            return []
        return await self.reap_idle()

    async def run_reaper(self) -> None:
        unavailable = False
        try:
            while True:
                await anyio.sleep(self.settings.reap_interval_seconds)
                try:
                    await self.reap_round()
                    if unavailable:
                        logger.info("the state store answers again; reaping resumes")
                    unavailable = False
                except StateUnavailableError as exc:
                    if not unavailable:  # once per outage, not once per round
                        logger.warning("reaping idle boxes paused: %s", exc)
                    unavailable = True
                except Exception:  # keep reaping; a runtime bug must not stop the server
                    logger.exception("reaping idle boxes failed")
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.state.release_lease(REAPER_LEASE, self.replica)
                except StateUnavailableError:
                    pass  # it lapses on its own

    async def end_session(self, session: str) -> None:
        """A session ended: remove the non-persistent boxes it created."""
        doomed = [r for r in await self.state.boxes() if r.session == session and not r.persist]
        removed = [await self._remove_quietly(r.id) for r in doomed]
        if any(removed):
            logger.info("session ended: removed %d boxes", sum(removed))

    async def shutdown(self) -> None:
        """Server exit: with the in-process store, remove every non-persistent box.

        With a shared store the boxes belong to the deployment, not to this
        replica: they stay for the others (whose reaper removes them when idle).
        """
        if not self.shared:
            for record in await self.state.boxes():
                if not record.persist:
                    await self._remove_quietly(record.id)
        self._handles.clear()
        self._attached.clear()

    async def _remove_quietly(self, box_id: str) -> bool:
        try:
            return await self._remove_box(box_id, force=True)
        except BoxliteError as exc:
            logger.warning("could not remove box %s: %s", box_id, exc.kind)
            return False
