"""A handshake-era HTTP client SIGKILLed mid ``exec_run``: its box goes at the TTL.

The SDK keeps serving a 2025-11-25 request after its response stream dropped (the
client could resume it with ``Last-Event-ID``), so the call stays attached to its
box. The box must go all the same once nobody has heard the call for the idle
TTL: the registry counts an attached request as attending only while the
transport still has a stream to deliver it on (``server/sdk.py``,
``response_heard``). Without that the ``sleep 600`` keeps the box for the 50 s
``return_after_seconds``.

One real client (``tools.leak_soak.worker``, its own process, legacy mode)
creates its boxes, leaves an ``exec_run`` of ``sleep 600`` in flight, and is
SIGKILLed; the server (``python -m boxlite_mcp``, bwrap) has a 2 s TTL.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tools.leak_soak.soak import KINDS, run_soak

TTL = 2.0
REAP_INTERVAL = 0.2
MARGIN = 3.0

pytestmark = pytest.mark.anyio


async def test_a_killed_legacy_client_with_exec_run_in_flight_leaves_nothing(
    tmp_path: Path,
) -> None:
    (legacy,) = [k for k in KINDS if k.name == "http-legacy-dropped"]
    with anyio.fail_after(90):
        result = await run_soak(
            clients=1,
            ttl=TTL,
            reap_interval=REAP_INTERVAL,
            margin=MARGIN,
            root=tmp_path,
            long_every=0,
            inflight_every=1,
            kinds=(legacy,),
        )
    (kind,) = result.kinds
    assert kind.errors == [] and kind.ok == 1
    assert kind.inflight and kind.protocols == {"2025-11-25"}
    assert not kind.leaked, kind.unexpected()
    assert kind.cleared_after is not None
    assert kind.cleared_after <= TTL + REAP_INTERVAL + MARGIN
    assert result.at_the_end.clean, result.at_the_end.summary()
