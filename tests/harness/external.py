"""Programs from Debian that some tests run (haproxy, redis-server): skip without them,
unless CI's environment variable makes their absence a failure."""

from __future__ import annotations

import pytest

from tools.redislib.server import missing_reason as redis_missing
from tools.redislib.server import redis_required, redis_server_binary
from tools.replicas.haproxy import haproxy_binary, haproxy_required
from tools.replicas.haproxy import missing_reason as haproxy_missing


def need(present: bool, required: bool, reason: str) -> None:
    if not present:
        if required:
            pytest.fail(reason)
        pytest.skip(reason)


def need_haproxy() -> None:
    need(haproxy_binary() is not None, haproxy_required(), haproxy_missing())


def need_redis_server() -> None:
    need(redis_server_binary() is not None, redis_required(), redis_missing())
