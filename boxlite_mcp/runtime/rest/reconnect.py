"""When a dropped execution stream is taken up again, and when its pump gives up.

Both exec transports (the SSE output stream and the WebSocket attach) follow one
policy: after a drop, wait ``settings.backoff(attempt)`` and try again; any
progress (new output or the exit) resets the count; with no progress for
``settings.reconnect_seconds`` the execution is lost (UnavailableError naming the
last cause).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio

from ..errors import UnavailableError
from .errors import display_url
from .settings import RestSettings

logger = logging.getLogger(__name__)


@dataclass
class Reconnect:
    """One execution's reconnect state.

    ``stream`` names the stream ("the output stream of execution X"), ``url`` where
    it is (shown without query or userinfo, worked out only when a drop is
    reported: this is built once per exec), ``again`` what trying again means
    ("resume it", "re-attach").
    """

    settings: RestSettings
    stream: str
    url: str
    again: str
    attempt: int = 0
    drop_started: float | None = None

    @property
    def lost(self) -> str:
        return f"{self.stream} at {display_url(self.url)}"

    def progressed(self) -> None:
        """Output or the exit arrived: the next drop starts a fresh count."""
        self.attempt = 0
        self.drop_started = None

    async def after_drop(self, cause: str) -> None:
        """Wait before the next try, or raise UnavailableError when it is time to give up."""
        now = time.monotonic()
        if self.drop_started is None:
            self.drop_started = now
        window = self.settings.reconnect_seconds
        if now - self.drop_started > window:
            raise UnavailableError(
                f"lost {self.lost} and could not {self.again} within {window:g}s: {cause}"
            )
        self.attempt += 1
        delay = self.settings.backoff(self.attempt)
        logger.debug("%s: %s; trying to %s in %.2fs", self.lost, cause, self.again, delay)
        await anyio.sleep(delay)
