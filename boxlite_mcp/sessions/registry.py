"""The per-owner box registry: who owns which box, limits, and when boxes go away.

A box belongs to the identity that created it, and every lookup is by (owner, id or
name): another owner's box answers exactly like a box that does not exist. Names are
per owner; in the runtime a box carries the reserved name from ``naming`` so owners
never collide and a restarted server finds its boxes again.

A box is removed when the session that created it ends, when it has been idle
longer than the TTL (the reaper), and when the server shuts down, unless it was
created with ``persist``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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

logger = logging.getLogger(__name__)


@dataclass
class BoxEntry:
    """What the registry knows about one box."""

    box: Box
    owner: str
    name: str | None
    persist: bool
    session: str | None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: float = field(default_factory=time.monotonic)
    #: Requests in flight that wait on this box (exec_run, a waiting exec_read).
    attached: int = 0

    @property
    def id(self) -> str:
        return self.box.id

    @property
    def label(self) -> str:
        """How to show the box to its owner."""
        return f"{self.name} ({self.id})" if self.name else self.id

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def idle_seconds(self, now: float | None = None) -> float:
        if self.attached:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.last_used)

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Mark the box as used by a request for as long as the block runs.

        Only an attached request keeps a box from idling: a command started with
        exec_start and then left alone does not, so a client that vanishes cannot
        keep its box (and the command in it) alive past the TTL.
        """
        self.attached += 1
        self.touch()
        try:
            yield
        finally:
            self.attached -= 1
            self.touch()


def _unclaimed(digest: str) -> str:
    """The placeholder owner of an adopted box until its owner shows up."""
    return f"#unclaimed:{digest}"


class Registry:
    """Owner-scoped boxes over one runtime, with limits and cleanup."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self._entries: dict[str, BoxEntry] = {}  # by runtime box id
        self._reserved = 0  # creations in flight, counted against the limits
        self._reserved_by_owner: dict[str, int] = {}
        # (owner, name) of the creations in flight; unnamed ones are (owner, None).
        self._names_in_flight: set[tuple[str, str | None]] = set()
        self._lock = anyio.Lock()

    # -- lookup --------------------------------------------------------------
    def _claim(self, owner: str) -> None:
        """Give an owner the boxes adopted at startup under its hash."""
        placeholder = _unclaimed(naming.owner_hash(owner))
        for entry in self._entries.values():
            if entry.owner == placeholder:
                entry.owner = owner

    def owned_by(self, owner: str) -> list[BoxEntry]:
        self._claim(owner)
        return sorted(
            (e for e in self._entries.values() if e.owner == owner), key=lambda e: e.created_at
        )

    def total(self) -> int:
        return len(self._entries)

    def _find(self, owner: str, ref: str) -> BoxEntry | None:
        self._claim(owner)
        entry = self._entries.get(ref)
        if entry is not None and entry.owner == owner:
            return entry
        for entry in self._entries.values():
            if entry.owner == owner and entry.name == ref:
                return entry
        return None

    async def resolve(self, owner: str, ref: str) -> BoxEntry:
        """The owner's box with this id or name; NotFoundError otherwise (no oracle)."""
        entry = self._find(owner, ref)
        if entry is None:
            entry = await self._adopt_one(owner, ref)
        if entry is None:
            raise self.not_found(owner, ref)
        entry.touch()
        return entry

    def entry_by_id(self, owner: str, box_id: str) -> BoxEntry | None:
        """The owner's box with this id, if it still exists (no error, no touch)."""
        entry = self._entries.get(box_id)
        return entry if entry is not None and entry.owner == owner else None

    def touch_id(self, owner: str, box_id: str) -> None:
        """The owner attended to this box (an execution of it): restart its idle clock."""
        if (entry := self.entry_by_id(owner, box_id)) is not None:
            entry.touch()

    def not_found(self, owner: str, ref: str) -> NotFoundError:
        mine = self.owned_by(owner)
        if mine:
            listing = ", ".join(e.label for e in mine[:20])
            known = f"Your boxes: {listing}."
        else:
            known = "You have no boxes; create one with box_create."
        # Only what was asked is repeated: the same message whoever else has that box.
        return NotFoundError(
            f"No box with that id or name ({quote_reference(ref)}) among your boxes. {known}"
        )

    # -- create / adopt / remove ---------------------------------------------
    async def _reserve(self, owner: str, name: str | None) -> None:
        async with self._lock:
            self._check_name_free(owner, name)
            mine = len(self.owned_by(owner)) + self._reserved_by_owner.get(owner, 0)
            if mine >= self.settings.max_boxes_per_owner:
                raise InvalidArgumentError(
                    f"You already have {mine} boxes, the most one owner may have "
                    f"({self.settings.max_boxes_per_owner}). Remove one with box_remove first."
                )
            if self.total() + self._reserved >= self.settings.max_boxes_total:
                raise InvalidStateError(
                    f"This server is at its limit of {self.settings.max_boxes_total} boxes in "
                    "total. Remove a box you no longer need, or try again later."
                )
            self._reserved += 1
            self._reserved_by_owner[owner] = self._reserved_by_owner.get(owner, 0) + 1
            self._names_in_flight.add((owner, name))

    def _release(self, owner: str, name: str | None) -> None:
        self._reserved -= 1
        self._reserved_by_owner[owner] -= 1
        if not self._reserved_by_owner[owner]:
            del self._reserved_by_owner[owner]
        self._names_in_flight.discard((owner, name))

    def _check_name_free(self, owner: str, name: str | None) -> None:
        """A name is taken by a box of the owner's, or by one being created (concurrent creates)."""
        if name is not None and (
            (owner, name) in self._names_in_flight or self._find(owner, name) is not None
        ):
            raise AlreadyExistsError(
                f"You already have a box named {name!r}. Use it, remove it, or pick another name."
            )

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
        name = options.name
        runtime_name = self.runtime_name(owner, name, persist)
        await self._reserve(owner, name)
        try:
            runtime_options = options.model_copy(update={"name": runtime_name})
            box = await self.runtime.create(runtime_options)
        except BoxliteError as exc:
            raise exc.about(runtime_name) from None
        finally:
            self._release(owner, name)
        return self._add(box, owner, name, persist, session)

    async def add_created(
        self,
        owner: str,
        session: str | None,
        name: str | None,
        persist: bool,
        make: Callable[[str], Awaitable[Box]],
    ) -> BoxEntry:
        """Register a box made by ``make(runtime_name)`` (clone, import), within the limits."""
        runtime_name = self.runtime_name(owner, name, persist)
        await self._reserve(owner, name)
        try:
            box = await make(runtime_name)
        except BoxliteError as exc:
            raise exc.about(runtime_name) from None
        finally:
            self._release(owner, name)
        return self._add(box, owner, name, persist, session)

    def _add(
        self, box: Box, owner: str, name: str | None, persist: bool, session: str | None
    ) -> BoxEntry:
        entry = BoxEntry(box=box, owner=owner, name=name, persist=persist, session=session)
        self._entries[box.id] = entry
        logger.info("box %s created (persist=%s)", box.id, persist)
        return entry

    async def remove(self, owner: str, ref: str, *, force: bool = True) -> BoxEntry:
        entry = await self.resolve(owner, ref)
        await self._remove_entry(entry, force=force)
        return entry

    async def _remove_entry(self, entry: BoxEntry, *, force: bool) -> None:
        try:
            await self.runtime.remove(entry.id, force=force)
        except NotFoundError:
            pass  # already gone from the runtime: forget it all the same
        self._entries.pop(entry.id, None)
        logger.info("box %s removed", entry.id)

    async def listed(self, owner: str) -> list[tuple[BoxEntry, BoxInfo]]:
        """The owner's boxes with fresh runtime info; boxes gone from the runtime are forgotten."""
        known = self.owned_by(owner)
        infos = {info.id: info for info in await self.runtime.list()}
        for entry in known:  # only entries that existed before the listing started
            if entry.id not in infos:
                self._entries.pop(entry.id, None)
        return [(e, infos[e.id]) for e in self.owned_by(owner) if e.id in infos]

    async def _adopt_one(self, owner: str, ref: str) -> BoxEntry | None:
        """Find an owner's box the runtime has but this process does not know yet."""
        digest = naming.owner_hash(owner)
        try:
            infos = await self.runtime.list()
        except BoxliteError:
            return None
        for info in infos:
            parsed = naming.parse(info.name)
            if parsed is None or parsed.owner_hash != digest:
                continue
            if ref in (info.id, parsed.name) and info.id not in self._entries:
                return await self._adopt(info, owner, parsed)
        return None

    async def _adopt(self, info: BoxInfo, owner: str, parsed: naming.ParsedName) -> BoxEntry | None:
        try:
            box = await self.runtime.get(info.id)
        except NotFoundError:
            return None
        entry = BoxEntry(
            box=box,
            owner=owner,
            name=parsed.name,
            persist=parsed.persist,
            session=None,
            created_at=info.created_at,
        )
        self._entries[box.id] = entry
        return entry

    async def adopt_at_startup(self) -> int:
        """Take back the boxes this server's name scheme marks (after a restart).

        Owners are known only by hash until they ask, so adopted boxes carry a
        placeholder owner until that owner's first request claims them.
        Non-persistent ones are reaped after the idle TTL like any other.
        """
        try:
            infos = await self.runtime.list()
        except BoxliteError as exc:
            logger.warning("could not list runtime boxes at startup: %s", exc.kind)
            return 0
        count = 0
        for info in infos:
            parsed = naming.parse(info.name)
            if parsed is None or info.id in self._entries:
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
        attached to it now; a command left running without attention does not count.
        """
        now = time.monotonic()
        reaped = []
        for entry in list(self._entries.values()):
            if entry.persist:
                continue
            if entry.idle_seconds(now) >= self.settings.box_idle_ttl_seconds:
                reaped.append(entry.id)
                await self._remove_quietly(entry)
        if reaped:
            logger.info("reaped %d idle boxes", len(reaped))
        return reaped

    async def run_reaper(self) -> None:
        while True:
            await anyio.sleep(self.settings.reap_interval_seconds)
            try:
                await self.reap_idle()
            except Exception:  # keep reaping; a runtime bug must not stop the server
                logger.exception("reaping idle boxes failed")

    async def end_session(self, session: str) -> None:
        """A session ended: remove the non-persistent boxes it created."""
        doomed = [e for e in self._entries.values() if e.session == session and not e.persist]
        for entry in doomed:
            await self._remove_quietly(entry)
        if doomed:
            logger.info("session ended: removed %d boxes", len(doomed))

    async def shutdown(self) -> None:
        """Remove every non-persistent box (server exit)."""
        for entry in [e for e in self._entries.values() if not e.persist]:
            await self._remove_quietly(entry)
        self._entries.clear()

    async def _remove_quietly(self, entry: BoxEntry) -> None:
        try:
            await self._remove_entry(entry, force=True)
        except BoxliteError as exc:
            logger.warning("could not remove box %s: %s", entry.id, exc.kind)
