"""Fault injection: cut client connections at chosen or random points.

A cut closes the TCP connection under the HTTP server's feet, so the client sees
what a network drop looks like: a request with no response, an SSE body or a
WebSocket that stops mid-way. Chosen cuts are ``CutRule``s added by a test (or
over HTTP with ``ServerConfig.fault_api``); random cuts strike each opportunity
with probability ``ServerConfig.cut_random``, from a seeded generator, in the
scopes ``ServerConfig.cut_scopes`` names. Opportunities are: a response about
to be sent (after the work is done), and each SSE event or WebSocket frame
(cut at a random byte inside it, so partial events and frames happen too).

Every cut is recorded in ``Faults.fired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

from .config import CutScope

log = logging.getLogger("boxlite_server.faults")

CutWhere = Literal["response", "sse", "ws"]
Address = tuple[str, int]


@dataclass(slots=True)
class CutRule:
    """Cut the next ``times`` matching connections.

    ``where="response"``: drop the connection instead of sending the response of
    ``operation`` (an operationId, e.g. ``"createBox"``; None: any), after the
    server did the work. ``where="sse"|"ws"``: cut an output stream once
    ``after_bytes`` bytes of it (SSE: body bytes; WS: payload bytes) were sent.
    """

    where: CutWhere
    operation: str | None = None
    after_bytes: int = 0
    times: int = 1
    generation: str | None = None


@dataclass(frozen=True, slots=True)
class FiredCut:
    where: CutWhere
    operation: str
    generation: str
    at_bytes: int
    random: bool


class StreamCutter:
    """Decides where one output stream is cut (if at all)."""

    def __init__(
        self,
        faults: Faults,
        where: CutWhere,
        generation: str,
        operation: str,
        rule: CutRule | None,
        random_on: bool,
    ) -> None:
        self._faults = faults
        self._where = where
        self._generation = generation
        self._operation = operation
        self._rule = rule
        self._random = random_on
        self.sent = 0

    def cut_point(self, size: int) -> int | None:
        """Bytes of the next ``size``-byte unit to send before cutting; None: no cut."""
        point: int | None = None
        chosen = False
        if self._rule is not None and self.sent + size >= self._rule.after_bytes:
            point = max(0, self._rule.after_bytes - self.sent)
            chosen = True
        elif self._random and self._faults.roll():
            point = self._faults.rng.randint(0, size)
        if point is None:
            self.sent += size
            return None
        self._faults.fired.append(
            FiredCut(
                self._where, self._operation, self._generation, self.sent + point, random=not chosen
            )
        )
        self.sent += point
        return point


@dataclass
class Faults:
    """The fault plan of one server, and what fired."""

    probability: float = 0.0
    seed: int | None = None
    scopes: frozenset[CutScope] = frozenset({"stream", "keyed"})
    rules: list[CutRule] = field(default_factory=list)
    fired: list[FiredCut] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def configure(
        self,
        probability: float | None = None,
        seed: int | None = None,
        scopes: Iterable[CutScope] | None = None,
    ) -> None:
        if probability is not None:
            if not 0.0 <= probability <= 1.0:
                raise ValueError("probability must be between 0 and 1")
            self.probability = probability
        if seed is not None:
            self.seed = seed
            self.rng = random.Random(seed)
        if scopes is not None:
            self.scopes = frozenset(scopes)

    def add(self, rule: CutRule) -> CutRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove rules, stop random cuts, forget what fired."""
        self.rules.clear()
        self.fired.clear()
        self.probability = 0.0

    def roll(self) -> bool:
        return self.probability > 0 and self.rng.random() < self.probability

    def _take_rule(self, where: CutWhere, generation: str, operation: str) -> CutRule | None:
        for rule in self.rules:
            if (
                rule.where == where
                and rule.times > 0
                and rule.operation in (None, operation)
                and rule.generation in (None, generation)
            ):
                rule.times -= 1
                if rule.times == 0:
                    self.rules.remove(rule)
                return rule
        return None

    def cut_response(self, generation: str, operation: str, method: str, keyed: bool) -> bool:
        """Whether to drop the connection instead of sending this response."""
        rule = self._take_rule("response", generation, operation)
        chosen = rule is not None
        if not chosen:
            scoped = (
                "all" in self.scopes
                or (keyed and "keyed" in self.scopes)
                or (method in ("GET", "HEAD") and "get" in self.scopes)
            )
            if not (scoped and self.roll()):
                return False
        self.fired.append(FiredCut("response", operation, generation, 0, random=not chosen))
        return True

    def stream(self, where: CutWhere, generation: str, operation: str) -> StreamCutter:
        rule = self._take_rule(where, generation, operation)
        random_on = bool({"stream", "all"} & self.scopes) and self.probability > 0
        return StreamCutter(self, where, generation, operation, rule, random_on)

    def describe(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "seed": self.seed,
            "scopes": sorted(self.scopes),
            "rules": [asdict(r) for r in self.rules],
            "fired": [asdict(f) for f in self.fired],
        }


class TransportRegistry:
    """Live connections by client address, so a handler can cut its own."""

    def __init__(self) -> None:
        self._transports: dict[Address, asyncio.Transport] = {}

    def add(self, address: Address | None, transport: asyncio.Transport) -> None:
        if address is not None:
            self._transports[address] = transport

    def remove(self, address: Address | None, transport: asyncio.Transport) -> None:
        if address is not None and self._transports.get(address) is transport:
            del self._transports[address]

    def cut(self, client: Any, flush: bool) -> bool:
        """Close the connection of ``scope["client"]``; ``flush`` sends what is buffered."""
        if not client:
            return False
        transport = self._transports.get((client[0], client[1]))
        if transport is None:
            log.warning("cannot cut %s: connection not found", client)
            return False
        if flush:
            transport.close()
        else:
            transport.abort()
        return True


def protocol_classes(registry: TransportRegistry) -> tuple[type[H11Protocol], type[WSProtocol]]:
    """uvicorn protocol classes that register their transports in ``registry``
    (and turn Nagle off: small responses must not wait for delayed ACKs)."""

    def _nodelay(transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _peer(transport: asyncio.BaseTransport) -> Address | None:
        peer = transport.get_extra_info("peername")
        return (str(peer[0]), int(peer[1])) if peer else None

    class CuttableHttp(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            _nodelay(transport)
            registry.add(_peer(transport), transport)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.remove(_peer(self.transport), self.transport)
            super().connection_lost(exc)

    class CuttableWebSocket(WSProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            registry.add(_peer(transport), transport)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.remove(_peer(self.transport), self.transport)
            super().connection_lost(exc)

    return CuttableHttp, CuttableWebSocket
