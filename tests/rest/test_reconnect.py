"""The one reconnect policy both exec transports use (``rest/reconnect.py``), on its own."""

from __future__ import annotations

import time

import pytest

from boxlite_mcp.runtime.errors import UnavailableError
from boxlite_mcp.runtime.rest.reconnect import Reconnect
from boxlite_mcp.runtime.rest.settings import RestSettings

pytestmark = pytest.mark.anyio


def policy(window: float) -> Reconnect:
    settings = RestSettings(
        url="http://127.0.0.1:9", reconnect_seconds=window, backoff_initial=0.01, backoff_max=0.02
    )
    return Reconnect(settings, "the output stream of execution e1", "http://x", "resume it")


async def test_drops_back_off_and_count_attempts() -> None:
    reconnect = policy(window=5)
    started = time.monotonic()
    for _ in range(3):
        await reconnect.after_drop("cut")
    assert reconnect.attempt == 3
    assert 0.005 * 3 <= time.monotonic() - started < 2


async def test_no_progress_for_the_window_gives_up_naming_stream_and_cause() -> None:
    reconnect = policy(window=0.05)
    with pytest.raises(UnavailableError) as caught:
        for _ in range(100):
            await reconnect.after_drop("the socket closed (1006)")
    message = caught.value.message
    assert message.startswith("lost the output stream of execution e1 at http://x")
    assert "could not resume it within 0.05s: the socket closed (1006)" in message


async def test_progress_resets_the_window_and_the_count() -> None:
    reconnect = policy(window=0.05)
    for _ in range(10):  # longer than the window in total, but progress in between
        await reconnect.after_drop("cut")
        reconnect.progressed()
        assert reconnect.attempt == 0
    assert reconnect.drop_started is None
