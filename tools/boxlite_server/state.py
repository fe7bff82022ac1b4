"""What one server holds, and what a route handler gets for one call."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from boxlite_mcp.runtime.base import Box, Runtime
from boxlite_mcp.runtime.errors import InvalidArgumentError

from .auth import Authenticator
from .config import Generation, ServerConfig
from .faults import Faults, TransportRegistry
from .idempotency import IdempotencyStore
from .ports import PublishedPorts
from .sessions import ExecRegistry
from .validation import ContractChecker, ViolationLog

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID: 48-bit millisecond time, 80 random bits, Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


_ULID = re.compile(r"^[0-9A-Z]{26}$")


class BoxIds:
    """Runtime box ids as the documents' Box ids (0.9 wants a 26-character ULID).

    An id that already has that shape is used as is; any other (the bwrap
    runtime's are 12 hex digits) is shown as a stable 26-character digest of
    it, the same after a restart. Lookups translate back; names pass through.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._to_runtime: dict[str, str] = {}

    def wire(self, runtime_id: str) -> str:
        if _ULID.match(runtime_id):
            return runtime_id
        digest = int.from_bytes(hashlib.sha256(runtime_id.encode()).digest()[:17], "big")
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[digest & 31])
            digest >>= 5
        wire_id = "".join(chars)
        self._to_runtime[wire_id] = runtime_id
        return wire_id

    async def runtime_ref(self, ref: str) -> str:
        """The runtime's id for a wire id; names and raw ids unchanged."""
        found = self._to_runtime.get(ref)
        if found is None and _ULID.match(ref):
            for info in await self._runtime.list():  # e.g. after a server restart
                self.wire(info.id)
            found = self._to_runtime.get(ref)
        return found or ref


class ServerState:
    """The runtime, the config and every piece of server-wide state."""

    def __init__(
        self, runtime: Runtime, config: ServerConfig, checker: ContractChecker | None = None
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.ids = BoxIds(runtime)
        self.checker = checker or ContractChecker()
        self.violations = ViolationLog()
        self.auth = Authenticator(config)
        self.faults = Faults(config.cut_random, config.seed, frozenset(config.cut_scopes))
        self.transports = TransportRegistry()
        self.executions = ExecRegistry(config)
        #: 0.9 boxes' ports (PortSpec at create), forwarded until the box is removed.
        self.ports = PublishedPorts()
        self.idempotency = IdempotencyStore(
            config.idempotency_ttl_seconds, config.idempotency_max_entries
        )

    def root(self, generation: Generation) -> str:
        return self.config.v09_root if generation == "0.9" else self.config.v10_root


@dataclass
class Call:
    """One request to one operation, as a handler sees it."""

    request: Request
    state: ServerState
    generation: Generation
    operation: str
    request_id: str
    body: bytes | None  # read up front for JSON and form bodies, else None

    @property
    def runtime(self) -> Runtime:
        return self.state.runtime

    @property
    def config(self) -> ServerConfig:
        return self.state.config

    @property
    def root(self) -> str:
        return self.state.root(self.generation)

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def json(self) -> dict[str, Any]:
        """The JSON object body; {} when empty. InvalidArgumentError otherwise."""
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise InvalidArgumentError(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise InvalidArgumentError("request body must be a JSON object")
        return value

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_bool(self, name: str, default: bool) -> bool:
        raw = self.query(name)
        if raw is None:
            return default
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise InvalidArgumentError(f"query parameter {name} must be true or false, not {raw!r}")

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidArgumentError(
                f"query parameter {name} must be an integer, not {raw!r}"
            ) from None
        if not low <= value <= high:
            raise InvalidArgumentError(f"query parameter {name} must be {low}..{high}")
        return value

    async def box_ref(self) -> str:
        """The runtime's reference (id or name) for the path's box_id."""
        return await self.state.ids.runtime_ref(self.path("box_id"))

    async def box(self) -> Box:
        return await self.runtime.get(await self.box_ref())


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)
