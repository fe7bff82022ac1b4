"""The host's half of the kernel protocol: encode requests, parse frames.

The frame layout and its constants live in ``kernel.py`` (the one file that goes into
the box); this module imports them so the rule lives in one place. The parser is
strict: anything that is not a well-formed frame of a known kind means the channel
is corrupt (something wrote to the kernel's private descriptor), and the session
cannot be trusted any more.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from .kernel import KINDS, MAX_LINE


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
    """A request as the kernel reads it: one line of ASCII-only JSON.

    ``ensure_ascii`` keeps any string encodable, lone surrogates included, and JSON
    escapes newlines inside strings, so the line ends only at its end.
    """
    return json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n"


class FrameParser:
    """Turns the kernel's stdout bytes, in chunks of any size, into frames (see ``kernel``)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; the frames they complete. ProtocolError on a corrupt stream."""
        start = len(self._buffer)
        self._buffer += data
        frames: list[Frame] = []
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            frames.append(self._frame(bytes(self._buffer[:end])))
            del self._buffer[: end + 1]
            start = 0
        if self._buffer and bytes(self._buffer[:1]) not in KINDS:
            raise self._corrupt(bytes(self._buffer))
        if len(self._buffer) > MAX_LINE:
            raise ProtocolError("a frame from the kernel is longer than any it sends")
        return frames

    def _frame(self, line: bytes) -> Frame:
        kind = line[:1]
        if kind not in KINDS:
            raise self._corrupt(line)
        try:
            payload = binascii.a2b_base64(line[1:], strict_mode=True)
        except binascii.Error:
            raise self._corrupt(line) from None
        return Frame(kind, payload)

    @staticmethod
    def _corrupt(data: bytes) -> ProtocolError:
        return ProtocolError(f"unexpected bytes on the kernel's channel: {data[:16]!r}")

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)
