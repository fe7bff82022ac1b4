"""The host's half of the kernel protocol: encode requests, parse frames.

The frame layout and its constants live in ``kernel.py`` (the one file that goes into
the box); this module imports them so the rule lives in one place. The parser is
strict: anything that is not a well-formed frame of a known kind means the channel
is corrupt (something wrote to the kernel's private descriptor), and the session
cannot be trusted any more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .kernel import HEADER, KINDS, MAGIC, MAX_FRAME, REQUEST_HEADER


class ProtocolError(Exception):
    """The kernel's output is not a frame stream: the session must be discarded."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: bytes
    payload: bytes

    def json(self) -> dict[str, Any]:
        """The payload as a JSON object (hello and result frames)."""
        try:
            value = json.loads(self.payload)
        except ValueError as exc:
            raise ProtocolError(f"a {self.kind!r} frame is not JSON") from exc
        if not isinstance(value, dict):
            raise ProtocolError(f"a {self.kind!r} frame is not a JSON object")
        return value


def encode_request(request: dict[str, Any]) -> bytes:
    """A request as the kernel reads it: length prefix, then ASCII-only JSON.

    ``ensure_ascii`` keeps any string encodable, lone surrogates included.
    """
    body = json.dumps(request, ensure_ascii=True).encode("ascii")
    return REQUEST_HEADER.pack(len(body)) + body


class FrameParser:
    """Turns the kernel's stdout bytes, in chunks of any size, into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; the frames they complete. ProtocolError on a corrupt stream."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER.size:
            magic, kind, length = HEADER.unpack_from(self._buffer)
            if magic != MAGIC or kind not in KINDS or length > MAX_FRAME:
                raise ProtocolError(
                    f"unexpected bytes on the kernel's channel: {bytes(self._buffer[:16])!r}"
                )
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(kind, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)
