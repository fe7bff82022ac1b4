"""The MCP layer's small parts on their own: coalescing, output storage, names, paths, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boxlite_mcp.runtime.errors import (
    MAX_QUOTED_REFERENCE,
    AlreadyExistsError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    StoppedError,
    UnsupportedError,
    quote_reference,
)
from boxlite_mcp.server.errors import redact, to_tool_error
from boxlite_mcp.sessions import naming
from boxlite_mcp.sessions.executions import (
    Capture,
    sent_size,
    share_budget,
    utf8_safe_end,
)
from boxlite_mcp.sessions.paths import HostPaths
from boxlite_mcp.sessions.progress import Coalescer


def test_coalescer_sends_at_once_after_quiet_then_batches() -> None:
    co = Coalescer(chunk_bytes=1024, interval=0.05)
    co.add("stdout", b"first\n")
    assert co.due_in(now=100.0) == 0  # nothing sent for a while: no delay
    note = co.take(now=100.0)
    assert note is not None and (note.progress, note.message) == (6, "first\n")
    co.add("stdout", b"a")
    co.add("stdout", b"b")
    assert co.due_in(now=100.01) == pytest.approx(0.04)  # small output waits for the interval
    co.add("stdout", b"x" * 2000)
    assert co.due_in(now=100.02) == 0  # a full chunk goes as soon as the rate allows
    assert co.due_in(now=100.005) == pytest.approx(0.005)  # never above 100 per second
    note = co.take(now=100.02)
    assert note is not None and note.progress == 6 + 2002 and note.message.startswith("ab")
    assert co.due_in(now=200.0) is None  # nothing pending


def test_coalescer_bounds_message_size_and_marks_stderr() -> None:
    co = Coalescer(chunk_bytes=256, interval=0.05)
    assert co.room == 256 * 64
    co.add("stdout", b"out\n")
    co.add("stderr", b"e1\ne")
    co.add("stderr", b"2\n")
    co.add("stdout", b"more")
    note = co.take(now=1.0)
    assert note is not None and note.message == "out\n[stderr] e1\n[stderr] e2\nmore"
    co.add("stderr", b"partial")
    co.add("stderr", b" line\n")
    note = co.take(now=2.0)
    assert note is not None and note.message == "[stderr] partial line\n"


def test_coalescer_decodes_split_characters_and_binary() -> None:
    co = Coalescer(chunk_bytes=256, interval=0.05)
    euro = "€".encode()
    co.add("stdout", euro[:1])
    first = co.take(now=1.0)
    co.add("stdout", euro[1:] + b"\xff")
    second = co.take(now=2.0)
    assert first is None  # half a character: nothing to show yet
    assert second is not None and second.message == "€\ufffd" and second.progress == 4


def test_capture_keeps_head_and_tail_and_shows_any_window() -> None:
    capture = Capture(cap_bytes=10)
    for part in (b"01234", b"56789", b"abcde"):
        capture.add(part)
    assert capture.total == 15 and capture.truncated and capture.kept == 10
    assert capture.window(10) == (b"01234", b"abcde")
    assert capture.window(4) == (b"01", b"de")
    assert capture.window(100) == (b"01234", b"abcde")  # never more than it holds
    small = Capture(cap_bytes=10)
    small.add(b"hello world"[:9])
    assert not small.truncated and small.window(10) == (b"hello wor", b"")
    # A smaller window of a stream held whole takes its tail from the whole.
    assert small.window(4) == (b"he", b"or")


def test_capture_window_never_splits_a_character() -> None:
    capture = Capture(cap_bytes=64)
    capture.add(("€" * 30).encode())  # 90 bytes, three each
    head, tail = capture.window(10)
    assert head.decode() == "€" and tail.decode() == "€"


def test_streams_share_one_budget() -> None:
    assert share_budget(100, 50, 1000) == (100, 50)  # both fit
    assert share_budget(5000, 100, 1000) == (900, 100)  # the short one whole
    assert share_budget(100, 5000, 1000) == (100, 900)
    assert share_budget(5000, 5000, 1000) == (500, 500)  # halves


def test_sent_size_counts_json_escapes() -> None:
    assert sent_size("abc") == 3
    assert sent_size("\x00") == 6 and sent_size('"') == 2
    assert sent_size("\ufffd") == 3 and sent_size("€") == 3


def test_utf8_safe_end() -> None:
    data = "a€".encode()
    assert utf8_safe_end(data) == len(data)
    assert utf8_safe_end(data[:-1]) == 1
    assert utf8_safe_end(data[:-2]) == 1
    assert utf8_safe_end(b"abc") == 3
    assert utf8_safe_end(b"") == 0


def test_runtime_names_round_trip() -> None:
    name = naming.runtime_name("principal:alice", "dev", persist=True)
    parsed = naming.parse(name)
    assert parsed == naming.ParsedName(naming.owner_hash("principal:alice"), True, "dev")
    assert "alice" not in name
    unnamed = naming.parse(naming.runtime_name("local", None, persist=False))
    assert unnamed is not None and unnamed.name is None and not unnamed.persist
    assert naming.parse("my-own-box") is None and naming.parse(None) is None
    assert naming.shown_name(name) == "dev"
    assert naming.shown_name(naming.runtime_name("local", None, persist=False)) == "(unnamed box)"
    assert naming.shown_name("my-own-box") is None


def test_host_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    os.symlink("/etc", root / "escape")
    paths = HostPaths([root])
    assert paths.confine(str(root / "sub")) == root / "sub"
    assert paths.confine("sub/new-file") == root / "sub" / "new-file"
    for bad in ("/etc/passwd", str(root / "escape" / "passwd"), str(root / ".." / "x"), "../x"):
        with pytest.raises(InvalidArgumentError, match="outside the allowed roots"):
            paths.confine(bad)
    with pytest.raises(NotFoundError):
        paths.confine("missing", must_exist=True)
    with pytest.raises(UnsupportedError, match="--allow-path"):
        HostPaths([]).confine("/tmp")


def test_errors_are_actionable_and_scrubbed() -> None:
    runtime_name = "mcp.0123456789ab.e.dev"
    error = to_tool_error(
        InvalidStateError(
            f"box {runtime_name} is running", box=runtime_name, required_state="stopped"
        )
    )
    assert str(error).startswith("InvalidStateError: box dev is running")
    assert "box_stop" in str(error)
    assert "sk-123456" not in redact("Authorization: Bearer sk-1234567890")
    assert "hunter2" not in redact("password=hunter2 and more")
    assert "pw" not in redact("http://user:pw@host/path")


def test_the_hint_follows_the_errors_structure_not_its_wording() -> None:
    """Rewording a runtime message must not change what the model is told to do."""
    worded = to_tool_error(InvalidStateError("box x is running; stop it first"))
    assert "box_stop" not in str(worded)  # no required state given: no guess from the text
    silent = to_tool_error(InvalidStateError("cannot do that now", required_state="stopped"))
    assert "Stop the box with box_stop first" in str(silent)
    needs_start = to_tool_error(StoppedError("the box is not up"))
    assert "box_start" in str(needs_start)


def test_only_the_boxes_involved_are_renamed() -> None:
    """Names come from the request's boxes, not from parsing the text."""
    mine, other = "mcp.0123456789ab.e.dev", "mcp.ba9876543210.p.prod"
    message = f"{mine} and {other} collide"
    error = to_tool_error(AlreadyExistsError(message), boxes=[mine])
    assert f"dev and {other} collide" in str(error)


def test_quote_reference_escapes_and_cuts() -> None:
    assert quote_reference("dev") == "'dev'"
    assert quote_reference("a\nb\x00\u202e") == "'a\\nb\\x00\\u202e'"  # no line, no bidi flip
    long = "z" * 1000
    assert quote_reference(long) == f"{'z' * MAX_QUOTED_REFERENCE!r}… (1000 characters)"
