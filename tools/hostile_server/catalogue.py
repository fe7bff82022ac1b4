"""Every hostile behaviour: what the server does, which client call meets it, and what a
correct client does about it.

A behaviour overrides one or two operations (``handlers``, keyed by the operation
names of ``base.route``); everything else is answered correctly. ``probe`` names the
client call that meets it (``python -m tools.hostile_fuzz`` implements the probes).
``expect`` is what a correct client does: ``error`` (a clear ``BoxliteError``),
``ok`` (a result; for execs, ``stdout`` exactly), ``either``, or, for execs,
``stopped``: a clear error, or a result that is not a success and whose
``error_message`` says why (a client that ends an execution the server would
not end, e.g. at its ``timeout_seconds``, reports it so). ``stdout_at_most``
bounds what an exec may deliver when the server replays output: more is
duplicated output. Whatever it
expects, a correct client never raises anything else, never writes outside the
destination, keeps its memory bounded and never waits past its configured
timeouts. ``memory`` marks behaviours whose point is size (measured one at a
time); ``full_only`` ones are too slow or too big for the test suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import Response, StreamingResponse

from . import bodies, streams, tars
from .base import HELLO, Ctx

Handler = Callable[[Ctx], Awaitable[Response | None]]
Probe = Literal[
    "create", "get", "list", "exec", "exec_unread", "copy_out", "snapshot_list", "metrics", "export"
]
Expect = Literal["error", "ok", "either", "stopped"]
BOTH = ("0.9", "0.10")


@dataclass(frozen=True)
class Behaviour:
    name: str
    category: str
    probe: Probe
    handlers: dict[str, Handler]
    description: str
    expect: Expect = "error"
    generations: tuple[str, ...] = BOTH
    memory: bool = False
    full_only: bool = False
    stdout: bytes | None = None  # exact stdout of an ``ok`` exec
    stdout_at_most: int | None = None  # more stdout than this is output delivered twice
    deadline: float | None = None  # seconds, when the default does not fit
    tags: frozenset[str] = field(default_factory=frozenset)


def _tar(
    stream: Callable[[Ctx], AsyncIterator[bytes]], media_type: str = "application/x-tar"
) -> Handler:
    async def handler(ctx: Ctx) -> Response:
        return StreamingResponse(stream(ctx), media_type=media_type)

    return handler


def _files(
    name: str,
    stream: Callable[[Ctx], AsyncIterator[bytes]],
    description: str,
    expect: Expect = "error",
    **extra: Any,
) -> Behaviour:
    return Behaviour(
        name, "files", "copy_out", {"files_get": _tar(stream)}, description, expect, **extra
    )


def _sse(
    name: str, handler: Handler, description: str, expect: Expect = "stopped", **extra: Any
) -> Behaviour:
    return Behaviour(
        name, "sse", "exec", {"output": handler}, description, expect, generations=("0.9",), **extra
    )


def _ws(
    name: str, handler: Handler, description: str, expect: Expect = "stopped", **extra: Any
) -> Behaviour:
    return Behaviour(
        name,
        "websocket",
        "exec",
        {"attach": handler},
        description,
        expect,
        generations=("0.10",),
        **extra,
    )


def _json(
    name: str,
    op: str,
    probe: Probe,
    handler: Handler,
    description: str,
    expect: Expect = "error",
    **extra: Any,
) -> Behaviour:
    return Behaviour(name, "json", probe, {op: handler}, description, expect, **extra)


def _http(
    name: str, handler: Handler, description: str, expect: Expect = "error", **extra: Any
) -> Behaviour:
    return Behaviour(name, "http", "get", {"get": handler}, description, expect, **extra)


BEHAVIOURS: list[Behaviour] = [
    # -- tar archives (copy_out) --------------------------------------------------------
    _files("tar-dotdot", tars.dotdot, "an entry named ../x: refuse, write nothing"),
    _files("tar-dotdot-deep", tars.dotdot_deep, "a/b/../../../x climbs out: refuse"),
    _files("tar-absolute", tars.absolute, "an absolute entry name into the sentinel: refuse"),
    _files(
        "tar-symlink-abs",
        tars.symlink_abs,
        "a symlink to the sentinel, then a file through it: refuse",
    ),
    _files(
        "tar-symlink-rel",
        tars.symlink_rel,
        "a relative symlink climbing to the sentinel, then a file through it: refuse",
    ),
    _files(
        "tar-symlink-chain",
        tars.symlink_chain,
        "l1 -> ., l2 -> l1/.. (each inside as text; l2 is the parent on disk), then a "
        "file through l2: refuse",
    ),
    _files(
        "tar-hardlink-abs",
        tars.hardlink_abs,
        "a hard link to a sentinel file, then a write through it: refuse",
    ),
    _files(
        "tar-hardlink-rel",
        tars.hardlink_rel,
        "a relative hard link climbing to a sentinel file, then a write: refuse",
    ),
    _files("tar-chardev", tars.chardev, "a character device node: refuse"),
    _files("tar-blockdev", tars.blockdev, "a block device node: refuse"),
    _files("tar-fifo", tars.fifo, "a FIFO: refuse"),
    _files("tar-long-name", tars.long_name, "a 10 KB entry name: a clear error"),
    _files(
        "tar-bomb-size",
        tars.bomb_size,
        "a member declaring 1 TiB (none of it sent): refuse by the size cap",
    ),
    _files(
        "tar-bomb-entries",
        tars.bomb_entries,
        "thousands of entries (over a million in the full run): unpack inside the "
        "destination or refuse by the entry cap, in bounded memory",
        "either",
        memory=True,
        deadline=300.0,
    ),
    _files(
        "tar-trickle",
        tars.trickle,
        "a valid header, then one byte per 0.1 s forever: give up within the timeouts",
    ),
    _files(
        "tar-endless",
        tars.endless,
        "a member claiming 1 TiB, then zeros at full speed: refuse at the size cap",
        full_only=True,
        deadline=600.0,
    ),
    _files("tar-garbage", tars.garbage, "64 KB of random bytes: not a tar, a clear error"),
    _files("tar-empty", tars.empty, "an empty body: a clear error"),
    Behaviour(
        "tar-html",
        "files",
        "copy_out",
        {"files_get": _tar(tars.html, "text/html")},
        "an HTML page with Content-Type text/html instead of a tar: a clear error",
    ),
    # -- SSE output (0.9) ------------------------------------------------------------
    _sse("sse-bad-base64", streams.sse_bad_base64, "stdout data that is not base64"),
    _sse("sse-non-json", streams.sse_non_json, "stdout data that is not JSON"),
    _sse(
        "sse-missing-exit",
        streams.sse_missing_exit,
        "output, then the stream ends without exit; resumed streams stay empty: give up "
        "within the timeouts",
        stdout_at_most=len(HELLO),
    ),
    _sse(
        "sse-missing-exit-replay",
        streams.sse_missing_exit_replay,
        "output without ids, then the end, the same output on every reconnect: never "
        "deliver it twice, give up within the timeouts",
        stdout_at_most=len(HELLO),
    ),
    _sse(
        "sse-replay-ignoring-id",
        streams.sse_replay_ignoring_id,
        "event ids, but Last-Event-ID ignored: every reconnect replays, none ends",
        stdout_at_most=len(HELLO),
    ),
    _sse("sse-invalid-utf8", streams.sse_invalid_utf8, "invalid UTF-8 in event names and data"),
    _sse(
        "sse-gigantic-line",
        streams.sse_gigantic_line,
        "one data line of 48 MiB (512 MiB in the full run): refuse in bounded memory",
        memory=True,
    ),
    _sse(
        "sse-endless-event",
        streams.sse_endless_event,
        "one event made of millions of data: lines, dispatched only at the end: refuse in "
        "bounded memory",
        memory=True,
    ),
    _sse(
        "sse-keepalive-forever",
        streams.sse_keepalive_forever,
        "keep-alive comments forever, no output, no exit, past the exec's timeout_seconds",
    ),
    _sse(
        "sse-output-forever",
        streams.sse_output_forever,
        "stdout forever, past the exec's timeout_seconds",
    ),
    _sse(
        "sse-trickle",
        streams.sse_trickle,
        "an event that never completes, one byte per 0.1 s: the idle timeout never fires",
    ),
    _sse(
        "sse-wrong-content-type",
        streams.sse_wrong_content_type,
        "application/json instead of text/event-stream",
    ),
    _sse("sse-exit-bad-shape", streams.sse_exit_bad_shape, 'exit data {"exit_code": "0"}'),
    _sse(
        "sse-error-then-end",
        streams.sse_error_then_end,
        "an error event, then the end: the result carries the message",
        "ok",
        stdout=HELLO,
    ),
    _sse(
        "sse-unknown-events",
        streams.sse_unknown_events,
        "comments, retry:, unknown and unnamed events around the output: ignored",
        "ok",
        stdout=HELLO,
    ),
    # -- WebSocket attach (0.10) -----------------------------------------------------
    _ws(
        "ws-unknown-prefix",
        streams.ws_unknown_prefix,
        "a binary frame with channel byte 0x07: ignored",
        "ok",
        stdout=HELLO,
    ),
    _ws(
        "ws-empty-binary",
        streams.ws_empty_binary,
        "an empty binary frame: ignored",
        "ok",
        stdout=HELLO,
    ),
    _ws(
        "ws-invalid-json-text",
        streams.ws_invalid_json_text,
        "text frames that are not JSON objects: ignored",
        "ok",
        stdout=HELLO,
    ),
    _ws("ws-exit-without-code", streams.ws_exit_without_code, '{"type":"exit"} alone'),
    _ws("ws-exit-code-string", streams.ws_exit_code_string, 'exit_code "0", a string'),
    _ws(
        "ws-close-without-exit",
        streams.ws_close_without_exit,
        "a normal close without the exit frame on every attach: give up within reconnect_seconds",
    ),
    _ws(
        "ws-close-replay",
        streams.ws_close_replay,
        "output then a close without exit on every attach, offsets ignored: never deliver it "
        "twice, give up within the timeouts",
        stdout_at_most=len(HELLO),
    ),
    _ws("ws-no-upgrade", streams.ws_no_upgrade, "HTTP 200 with JSON instead of 101"),
    _ws(
        "ws-bad-accept",
        streams.ws_bad_accept,
        "a 101 whose Sec-WebSocket-Accept does not match the key (RFC 6455: the client must "
        "fail the connection)",
    ),
    _ws("ws-bad-opcode", streams.ws_bad_opcode, "a frame with the reserved opcode 0x3"),
    _ws("ws-masked", streams.ws_masked, "a masked frame from the server"),
    _ws("ws-invalid-utf8-text", streams.ws_invalid_utf8_text, "a text frame of invalid UTF-8"),
    _ws(
        "ws-huge-message",
        streams.ws_huge_message,
        "one frame claiming 2^40 bytes, 48 MiB of it sent, then a close: refuse in bounded memory",
        memory=True,
    ),
    _ws(
        "ws-frame-trickle",
        streams.ws_frame_trickle,
        "one frame claiming 2^40 bytes, its payload one byte per 0.1 s: the frame never "
        "completes, give up within the timeouts",
    ),
    _ws(
        "ws-silent-forever",
        streams.ws_silent_forever,
        "accepted, then nothing (pings answered), past the exec's timeout_seconds",
    ),
    _ws(
        "ws-output-forever",
        streams.ws_output_forever,
        "stdout frames forever, past the exec's timeout_seconds",
    ),
    Behaviour(
        "ws-drop-then-bogus-status",
        "websocket",
        "exec",
        {"attach": streams.ws_close_without_exit, "exec_status": streams.exec_status_bogus},
        "the attach drops; the execution's status is bogus JSON",
        "stopped",
        generations=("0.10",),
    ),
    # -- JSON shapes -----------------------------------------------------------------
    _json(
        "box-missing-id", "create", "create", bodies.box_missing_id, "a created box without box_id"
    ),
    _json(
        "box-wrong-types",
        "get",
        "get",
        bodies.box_wrong_types,
        "box_id 5, status 7, created_at 'yesterday'",
    ),
    _json("box-array", "get", "get", bodies.box_array, "a JSON array for a box"),
    _json("box-not-json", "get", "get", bodies.box_not_json, "200 text/plain 'OK' for a box"),
    _json("box-deep-nesting", "get", "get", bodies.box_deep_nesting, "200,000 nested JSON arrays"),
    _json("list-not-list", "list", "list", bodies.list_not_list, '{"boxes": "many"}'),
    _json(
        "list-endless-pages",
        "list",
        "list",
        bodies.list_endless_pages,
        "every page a fresh next_page_token, forever",
    ),
    _json(
        "exec-bogus-id", "exec_create", "exec", bodies.exec_bogus_id, "execution_id 12, a number"
    ),
    _json(
        "snapshot-bogus",
        "snapshot_list",
        "snapshot_list",
        bodies.snapshot_bogus,
        "snapshots with a numeric name and no id",
    ),
    _json(
        "metrics-bogus",
        "metrics",
        "metrics",
        bodies.metrics_bogus,
        "cpu_percent 'lots', boot_timing a list",
    ),
    _json(
        "config-bogus",
        "config",
        "snapshot_list",
        bodies.config_bogus,
        "GET /v1/config with capabilities a list",
    ),
    _json(
        "me-bogus",
        "me",
        "get",
        bodies.me_bogus,
        "GET /v1/me with path_prefix 7",
        generations=("0.10",),
    ),
    _json(
        "token-bogus",
        "token",
        "get",
        bodies.token_bogus,
        "an OAuth2 token response with access_token 5",
        generations=("0.9",),
    ),
    _json(
        "json-wrong-content-type",
        "get",
        "get",
        bodies.json_wrong_content_type,
        "a correct box with Content-Type text/html: accepted",
        "ok",
    ),
    _json("redirect", "get", "get", bodies.redirect, "302 to another host for a box"),
    _json("empty-201", "create", "create", bodies.empty_201, "201 with no body for a create"),
    # -- errors and sizes ------------------------------------------------------------
    _json("error-html", "get", "get", bodies.error_html, "500 with an HTML page"),
    _json(
        "error-huge-body",
        "get",
        "get",
        bodies.error_huge_body,
        "404 with a 48 MiB text body: a short message, bounded memory",
        memory=True,
    ),
    _json(
        "error-huge-message",
        "get",
        "get",
        bodies.error_huge_message,
        "400 whose JSON error message is 48 MiB: a short message, bounded memory",
        memory=True,
    ),
    _json(
        "huge-json",
        "get",
        "get",
        bodies.huge_json,
        "a box with a 48 MiB string field: bounded memory",
        "either",
        memory=True,
    ),
    _json(
        "gzip-bomb",
        "get",
        "get",
        bodies.gzip_bomb,
        "Content-Encoding gzip: 48 KB on the wire, 48 MiB of zeros inflated: bounded memory",
        memory=True,
    ),
    _json(
        "retry-after-huge",
        "get",
        "get",
        bodies.retry_after_huge,
        "503 with Retry-After 100000: retry with capped backoff, then a clear error",
    ),
    _json("too-many-requests", "get", "get", bodies.too_many_requests, "429 Too Many Requests"),
    _json(
        "export-trickle",
        "export",
        "export",
        bodies.export_trickle,
        "an export body that trickles one byte per 0.1 s forever",
    ),
    # -- HTTP broken on the wire -----------------------------------------------------
    _http("http-garbage-status", bodies.http_garbage_status, "status line 'HTTP/1.1 abc defg'"),
    _http(
        "http-close-immediately",
        bodies.http_close_immediately,
        "the connection closed without a byte",
    ),
    _http(
        "http-header-flood",
        bodies.http_header_flood,
        "a header line that never ends, at full speed",
    ),
    _http(
        "http-header-trickle",
        bodies.http_header_trickle,
        "a header line that never ends, one byte per 0.1 s",
    ),
    _http(
        "http-body-trickle", bodies.http_body_trickle, "Content-Length 1000000, one byte per 0.1 s"
    ),
    _http(
        "http-length-mismatch",
        bodies.http_length_mismatch,
        "Content-Length 100, 10 bytes, then close",
    ),
    _http("http-bad-chunked", bodies.http_bad_chunked, "a chunk size 'zz'"),
    _http("http-silent", bodies.http_silent, "the request is read and never answered"),
    # -- the unread output bound -----------------------------------------------------
    Behaviour(
        "output-unread",
        "sse",
        "exec_unread",
        {"output": streams.sse_output_big},
        "48 MiB of stdout nobody reads, then exit 0: the result, and at most the unread limit kept",
        "ok",
        generations=("0.9",),
        memory=True,
    ),
]

BY_NAME: dict[str, Behaviour] = {b.name: b for b in BEHAVIOURS}
assert len(BY_NAME) == len(BEHAVIOURS), "behaviour names must be unique"
