"""Where a connection is cut: a seeded plan of byte offsets, drawn as traffic flows.

Each direction of a connection is a byte stream: ``up`` (client → server: requests,
WebSocket frames the client sends) and ``down`` (server → client: responses, SSE
events, WebSocket frames). A ``CutPlan`` holds, per direction, the byte offset at
which the proxy cuts, or none. ``per`` says what one draw covers:

- ``exchange`` (the default): a fresh plan for every request/response exchange on
  the connection (keep-alive connections carry many; an SSE stream or a WebSocket
  attach is one). With ``probability`` the exchange is cut, in one direction
  picked at random among ``directions``, at an offset counted from the start of
  that direction's part of the exchange. Pooled connections are cut as often as
  fresh ones, small exchanges as well as long streams. Streams (a request that
  accepts ``text/event-stream`` or upgrades to a WebSocket) are cut with
  ``stream_probability`` when set, always server → client and at an offset
  counted from the end of the response head: inside the events or frames, where
  output is lost when a client cannot resume.
- ``connection``: one plan per TCP connection, offsets counted from its start;
  each allowed direction is cut with ``probability``.
- ``window``: every ``window_bytes`` of a direction's traffic is cut with
  ``probability``: long streams are cut more often than short exchanges.

Offsets are drawn from ``[0, window_bytes)`` (``up_window_bytes`` for ``up`` when
set), uniformly or, with ``scale="log"`` (the default), log-uniformly: as likely
in the first 100 bytes as between 100 and 10,000, so cuts land inside 200-byte
answers and deep inside megabyte streams alike. An offset beyond the traffic never
fires. The first offset reached fires; the proxy then closes both sides (``mode``:
``reset`` sends a TCP RST, ``close`` a FIN after the bytes before the offset,
``mixed`` picks one per plan). Plans come from ``random.Random`` seeded with
``(seed, connection, exchange)``: the same seed and the same traffic give the same
cuts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Direction = Literal["up", "down"]
Per = Literal["exchange", "connection", "window"]
Scale = Literal["uniform", "log"]
Mode = Literal["reset", "close", "mixed"]

DIRECTIONS: tuple[Direction, ...] = ("up", "down")


@dataclass(frozen=True, slots=True)
class CutPolicy:
    """How often and where connections are cut."""

    probability: float = 0.0
    stream_probability: float | None = None
    window_bytes: int = 4 * 1024 * 1024
    up_window_bytes: int | None = None
    per: Per = "exchange"
    scale: Scale = "log"
    directions: tuple[Direction, ...] = DIRECTIONS
    mode: Mode = "mixed"
    seed: int = 0

    def __post_init__(self) -> None:
        for p in (self.probability, self.stream_probability):
            if p is not None and not 0.0 <= p <= 1.0:
                raise ValueError(f"probabilities must be within [0, 1], got {p}")
        for window in (self.window_bytes, self.up_window_bytes):
            if window is not None and window < 1:
                raise ValueError(f"windows must be at least 1 byte, got {window}")
        unknown = set(self.directions) - set(DIRECTIONS)
        if unknown or not self.directions:
            raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}")

    def window(self, direction: Direction) -> int:
        if direction == "up" and self.up_window_bytes is not None:
            return self.up_window_bytes
        return self.window_bytes

    def plan(self, connection: int, exchange: int = 0, stream: bool = False) -> CutPlan:
        """The plan of one connection (``per="exchange"``: of one exchange on it)."""
        rng = random.Random(f"{self.seed}:{connection}:{exchange}")
        mode = self.mode if self.mode != "mixed" else rng.choice(("reset", "close"))
        offsets: dict[Direction, int | None] = dict.fromkeys(DIRECTIONS)
        p = self.probability
        if self.per == "exchange" and stream and self.stream_probability is not None:
            if rng.random() < self.stream_probability and "down" in self.directions:
                down = self._offset(rng, self.window("down"))
                return CutPlan(up=None, down=down, mode=mode, in_body=True)
        elif p <= 0.0:
            pass
        elif self.per == "exchange":
            if rng.random() < p:
                direction = rng.choice(self.directions)
                offsets[direction] = self._offset(rng, self.window(direction))
        elif self.per == "connection":
            for direction in self.directions:
                if rng.random() < p:
                    offsets[direction] = self._offset(rng, self.window(direction))
        else:
            for direction in self.directions:
                window = self.window(direction)
                # Windows survived before the cut: geometric with success probability p.
                survived = 0 if p >= 1.0 else int(math.log(1.0 - rng.random()) / math.log(1 - p))
                offsets[direction] = survived * window + self._offset(rng, window)
        return CutPlan(up=offsets["up"], down=offsets["down"], mode=mode)

    def _offset(self, rng: random.Random, window: int) -> int:
        if self.scale == "log":
            return min(window - 1, int(window ** rng.random()) - 1)
        return rng.randrange(window)


@dataclass(frozen=True, slots=True)
class CutPlan:
    """Byte offsets at which each direction is cut (None: never).

    ``in_body``: ``down`` counts from the end of the response head, not its start.
    """

    up: int | None
    down: int | None
    mode: Literal["reset", "close"]
    in_body: bool = False

    def offset(self, direction: Direction) -> int | None:
        return self.up if direction == "up" else self.down
