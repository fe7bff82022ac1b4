"""The state store: what replicas share (boxes, executions and output, events, leases).

``open_state(url)`` picks the implementation from ``--state`` (env
``BOXLITE_MCP_STATE_URL``): nothing or ``memory`` keeps it in this process;
``redis://``, ``rediss://`` or ``unix://`` keeps it in Redis (the ``redis``
extra), for several replicas behind one load balancer.
"""

from __future__ import annotations

from .base import (
    REAPER_LEASE,
    BoxRecord,
    ExecRecord,
    LimitReachedError,
    NameTakenError,
    OutputGapError,
    OutputSize,
    StateStore,
    StateUnavailableError,
    execution_lease,
)
from .in_process import InProcessState

__all__ = [
    "REAPER_LEASE",
    "BoxRecord",
    "ExecRecord",
    "InProcessState",
    "LimitReachedError",
    "NameTakenError",
    "OutputGapError",
    "OutputSize",
    "StateConfigError",
    "StateStore",
    "StateUnavailableError",
    "execution_lease",
    "open_state",
]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


class StateConfigError(ValueError):
    """The state URL cannot be used; the message says why and what to write instead."""


def open_state(
    url: str | None,
    *,
    max_executions_kept: int = 256,
    stored_output_cap_bytes: int = 64 * 1024 * 1024,
) -> StateStore:
    """The store ``url`` names (None or ``memory``: in process). Connects lazily: call
    ``ping()`` to find out at startup whether it answers."""
    if url is None or url.strip() in ("", "memory"):
        return InProcessState(
            max_executions_kept=max_executions_kept,
            stored_output_cap_bytes=stored_output_cap_bytes,
        )
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _REDIS_SCHEMES:
        raise StateConfigError(
            "--state / BOXLITE_MCP_STATE_URL: expected 'memory' or a Redis URL "
            "(redis://HOST:PORT/DB, rediss://..., unix:///path?db=N), not a "
            f"{scheme + ' URL' if scheme else 'value without a scheme'}"
        )
    try:
        from .redis_store import RedisState
    except ImportError:
        raise StateConfigError(
            "--state redis://... needs the redis client: pip install 'boxlite-mcp[redis]'"
        ) from None
    try:
        return RedisState(
            url,
            max_executions_kept=max_executions_kept,
            stored_output_cap_bytes=stored_output_cap_bytes,
        )
    except ValueError as exc:
        raise StateConfigError(f"--state / BOXLITE_MCP_STATE_URL: {exc}") from None
