"""0.10 WebSocket attach: ``GET {root}/boxes/{box_id}/executions/{exec_id}/attach``.

The wire protocol, as this server speaks it (box-api-v0.10.yaml, plus resume):

Server → client
    * Binary frame: one channel byte, ``0x01`` stdout or ``0x02`` stderr, then the
      payload. Frames of both channels come in the order the process produced the
      output. A payload is at most ``max_frame_bytes`` bytes: the query parameter
      of that name if given (>= 1024), else ``ServerConfig.ws_frame_max_bytes``
      (1 MiB). A client whose WebSocket library caps message size (httpx-ws
      defaults to 64 KiB) either raises its cap or passes ``max_frame_bytes``.
    * Text frame ``{"type":"exit","exit_code":N,"duration_ms":N,
      "stdout_bytes":N,"stderr_bytes":N}`` once the process has exited and every
      byte of output has been sent; then a normal close (1000). ``exit_code`` is
      negative when a signal killed the process. The byte totals let a client
      check it received everything. ``"error_message"`` is added when the runtime
      reported one.
    * Text frame ``{"type":"error","message":"..."}``: not fatal, the socket
      stays open (e.g. a rejected signal). When output a client asked for was
      already discarded, the first frame is ``{"type":"error","code":"output_lost",
      "message":...,"stdout_lost":N,"stderr_lost":N}`` and streaming continues
      from the oldest byte kept.
    * A WebSocket Ping every ``keepalive_seconds`` (15 s).

Client → server
    * Binary frame: bytes for the process's stdin.
    * ``{"type":"stdin_eof"}``: close stdin.
    * ``{"type":"resize","cols":C,"rows":R}``: resize the TTY.
    * ``{"type":"signal","sig":N}``: send a signal; only HUP, INT, QUIT, ABRT,
      USR1, USR2, TERM, WINCH (1, 2, 3, 6, 10, 12, 15, 28). Kill is
      ``DELETE .../executions/{exec_id}``.
    Bad control frames get an error frame; the socket stays open.

Re-attaching without losing or repeating output
    A socket can drop before the exit frame; the execution keeps running and its
    output is kept (see below). The client re-attaches with two query
    parameters, ``stdout_offset`` and ``stderr_offset``: the number of payload
    bytes of each channel it has already received (the sum of its binary frame
    payload lengths per channel, channel byte excluded). The server resumes each
    channel exactly after those bytes, in the original interleaving, so the
    client appends what arrives and gets every byte once. Omitted offsets are 0:
    a fresh attach replays everything kept, as upstream servers do. An offset
    beyond what the process has written is a 400 before the upgrade.

    Only one client is attached at a time: an attach while another is connected
    gets HTTP 409 (``InvalidStateError``) without upgrade. The server releases the
    slot as soon as it sees the old socket close; a client that gets 409 right
    after a drop retries with a short backoff. After the process exits the
    execution stays attachable (remaining output, then the exit frame) for
    ``completed_retention_seconds`` (300 s); after that, or after a DELETE, an
    attach or ``GET .../executions/{exec_id}`` answers 404.

Output kept for replay
    Each execution keeps its most recent ``backlog_bytes`` (16 MiB) of output. The
    process is never allowed to run more than half of that ahead of the client
    (it blocks on its pipe, as with a slow reader), so everything the client may
    have missed in a drop is still there when it re-attaches within
    ``reconnect_grace_seconds`` (60 s). With no client attached for longer than
    that, the process runs freely and the oldest output is discarded.
"""

from __future__ import annotations
