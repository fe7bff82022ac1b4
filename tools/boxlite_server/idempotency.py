"""Idempotency keys: the same key and request answer the stored response.

A mutation carrying ``Idempotency-Key`` runs once; a retry (same key, same
method, path, query and body) gets the first response again, marked with
``Idempotent-Replayed: true``, and does no work. The same key with a different
request is a 422. Concurrent requests with one key run one after the other.
Responses below 500 are kept for ``ttl`` seconds, at most ``max_entries``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expires_at: float


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.replays = 0

    def lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def release(self, key: str) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def get(self, key: str) -> StoredResponse | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= time.monotonic():
            del self._entries[key]
            return None
        return entry

    def put(
        self, key: str, fingerprint: str, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self._entries[key] = StoredResponse(
            fingerprint, status, tuple(headers), body, time.monotonic() + self._ttl
        )
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
