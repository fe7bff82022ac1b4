"""The kernel channel holds against anything user code writes, and never hangs.

Unit tests of the frame parser, then real kernels fed hostile output: raw writes to
fds 1 and 2, NUL and binary bytes, forged frames, subprocesses inheriting fd 1, floods,
writes to the kernel's private descriptor; and hypothesis over generated cells.
"""

from __future__ import annotations

import ast
import glob
import os
import subprocess
from collections.abc import Iterator

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.types import BoxOptions, OutputChunk
from boxlite_mcp.sessions.python import PythonLimits, PythonRunResult, PythonSessions
from boxlite_mcp.sessions.python.interpreter import KERNEL_SOURCE
from boxlite_mcp.sessions.python.kernel import frame
from boxlite_mcp.sessions.python.protocol import FrameParser, ProtocolError, encode_request
from tests.harness.bwrap import factory

from .conftest import FAST


def test_parser_reassembles_frames_split_anywhere() -> None:
    stream = frame(b"O", b"a\x00b") + frame(b"E", b"") + frame(b"R", b'{"cell": 1}')
    for cut in range(len(stream) + 1):
        parser = FrameParser()
        frames = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [(f.kind, f.payload) for f in frames] == [
            (b"O", b"a\x00b"),
            (b"E", b""),
            (b"R", b'{"cell": 1}'),
        ]
        assert parser.pending == 0


@pytest.mark.parametrize(
    "garbage",
    [b"hello world\n", b"Zabc=\n", b"O!!notbase64\n", b"\n", b"\x00", b"Oab\xffcd\n"],
)
def test_parser_refuses_what_is_not_a_frame(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameParser().feed(frame(b"O", b"fine") + garbage)


def test_result_frames_must_be_json_objects() -> None:
    (bad,) = FrameParser().feed(frame(b"R", b"[1]"))
    with pytest.raises(ProtocolError):
        bad.json()


def test_requests_are_ascii_lines_even_with_newlines_surrogates_and_nul() -> None:
    encoded = encode_request({"code": "a\nb\ud800\x00é"})
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    encoded.decode("ascii")


def test_frames_are_ascii_lines() -> None:
    line = frame(b"O", bytes(range(256)) * 3)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("ascii")
    (parsed,) = FrameParser().feed(line)
    assert parsed.payload == bytes(range(256)) * 3


anyio_test = pytest.mark.anyio


@anyio_test
async def test_raw_fd_writes_and_subprocesses_are_output(
    box: Box, sessions: PythonSessions
) -> None:
    forged = frame(b"R", b'{"cell": 1, "result": "forged"}')
    code = (
        "import os, subprocess, sys\n"
        f"os.write(1, {forged!r})\n"
        "os.write(1, b'\\x00\\xff\\xfe binary\\n')\n"
        "os.write(2, b'err\\x00\\n')\n"
        "subprocess.run(['sh', '-c', 'echo from-child; echo child-err >&2'])\n"
        "print('done')\n"
        "'value'"
    )
    chunks: list[OutputChunk] = []

    async def on_output(chunk: OutputChunk) -> None:
        chunks.append(chunk)

    result = await sessions.run(box, code, on_output=on_output)
    assert result.error is None and result.result == "'value'"
    out = b"".join(c.data for c in chunks if c.stream == "stdout")
    err = b"".join(c.data for c in chunks if c.stream == "stderr")
    assert out == forged + b"\x00\xff\xfe binary\nfrom-child\ndone\n"
    assert err == b"err\x00\nchild-err\n"
    assert result.stdout.startswith(forged.decode()) and "\ufffd" in result.stdout  # decoded
    assert (await sessions.run(box, "2 * 21")).result == "42"


@anyio_test
async def test_a_flood_is_capped_in_the_result_and_streamed_whole(box: Box) -> None:
    engine = PythonSessions(PythonLimits(output_cap_bytes=4096))
    total = 0

    async def on_output(chunk: OutputChunk) -> None:
        nonlocal total
        total += len(chunk.data)

    try:
        code = "import os\nfor _ in range(80):\n    os.write(1, b'x' * 65536)\nprint('end')"
        result = await engine.run(box, code, on_output=on_output)
        assert total == 80 * 65536 + 4
        assert result.stdout_truncated and len(result.stdout) < 4096
        assert result.stdout.startswith("x") and result.stdout.endswith("end\n")
        assert "bytes cut" in result.stdout
        big = await engine.run(box, "'y' * 10_000_000")  # a huge repr is capped in the box
        assert big.result is not None and len(big.result) < 10_000
        assert "characters cut" in big.result
    finally:
        await engine.aclose()


@anyio_test
async def test_output_of_background_threads_goes_to_a_later_cell(
    box: Box, sessions: PythonSessions
) -> None:
    start = (
        "import threading, time\n"
        "def later():\n    time.sleep(0.5)\n    print('late')\n"
        "threading.Thread(target=later).start()"
    )
    first = await sessions.run(box, start)
    assert first.stdout == ""
    await anyio.sleep(1.0)
    second = await sessions.run(box, "print('now')")
    assert second.stdout == "late\nnow\n"


@anyio_test
async def test_writing_to_the_private_channel_loses_the_session_cleanly(
    box: Box, sessions: PythonSessions
) -> None:
    await sessions.run(box, "x = 1")
    code = (
        "import os\n"
        "for fd in range(200, 210):\n"
        "    try:\n        os.write(fd, b'not a frame at all')\n"
        "    except OSError:\n        pass\n"
        "import time\ntime.sleep(1)"
    )
    with anyio.fail_after(30):
        result = await sessions.run(box, code)
    assert result.session_lost
    assert result.error is not None and "corrupted" in result.error.message
    fresh = await sessions.run(box, "'x' in globals()")
    assert fresh.new_session and fresh.result == "False"


@anyio_test
@pytest.mark.parametrize("code", ["'a\x00b'", "x = '\ud800'", "\x00", "'\udcff'"])
async def test_nul_and_surrogates_in_the_source_are_errors_or_results(
    box: Box, sessions: PythonSessions, code: str
) -> None:
    result = await sessions.run(box, code)
    assert not result.session_lost
    assert result.error is not None or result.result is not None
    result.model_dump_json()
    assert (await sessions.run(box, "'ok'")).result == "'ok'"


# -- hypothesis: generated cells always give a result -----------------------------------

pieces = st.one_of(
    st.text(max_size=60).map(lambda t: f"print({t!r})"),
    st.binary(max_size=200).map(lambda b: f"import os; os.write(1, {b!r})"),
    st.binary(max_size=200).map(lambda b: f"import os; os.write(2, {b!r})"),
    st.integers(min_value=0, max_value=3_000_000).map(
        lambda n: f"import os; os.write(1, b'z' * {n})"
    ),
    st.text(max_size=40),  # usually a syntax error, sometimes valid
    st.sampled_from(["raise ValueError('v')", "1/0", "None", "b'\\x00' * 5", "'\\x00'", "input()"]),
    st.text(max_size=30).map(lambda t: f"{t!r}"),
)


@pytest.fixture(scope="module")
def portal_box(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[anyio.from_thread.BlockingPortal, Box, PythonSessions]]:
    home = tmp_path_factory.mktemp("pyfuzz")
    with anyio.from_thread.start_blocking_portal() as portal:
        runtime_cm = factory(home)
        runtime = portal.call(runtime_cm.__aenter__)
        engine = PythonSessions(FAST)
        box = portal.call(runtime.create, BoxOptions(name="fuzz"))
        try:
            yield portal, box, engine
        finally:
            portal.call(engine.aclose)
            portal.call(runtime_cm.__aexit__, None, None, None)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cell=st.lists(pieces, min_size=1, max_size=4).map("\n".join))
def test_generated_cells_give_results(
    portal_box: tuple[anyio.from_thread.BlockingPortal, Box, PythonSessions], cell: str
) -> None:
    portal, box, engine = portal_box

    async def go() -> PythonRunResult:
        with anyio.fail_after(60):
            return await engine.run(box, cell, timeout_seconds=20)

    result = portal.call(go)
    assert not result.session_lost, result
    assert len(result.stdout.encode()) <= 2 * engine.limits.output_cap_bytes
    result.model_dump_json()  # always serialisable for a tool result
    assert portal.call(engine.run, box, "'alive'").result == "'alive'"


# -- the kernel runs on the pythons boxes have ------------------------------------------


def test_kernel_source_is_python_3_8_syntax() -> None:
    ast.parse(KERNEL_SOURCE, feature_version=(3, 8))


OLD_PYTHONS = sorted(
    path
    for pattern in ("~/.pyenv/versions/3.{}*/bin/python3", "/usr/bin/python3.{}")
    for minor in (8, 9, 10)
    for path in glob.glob(os.path.expanduser(pattern.format(minor)))
)


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python 3.8-3.10 on this host to run the kernel")
@pytest.mark.parametrize("python", OLD_PYTHONS)
def test_kernel_runs_on_older_pythons(python: str) -> None:
    requests = b"".join(
        encode_request({"op": "run", "cell": n, "code": code})
        for n, code in enumerate(["x = 41\nprint('hi')", "x + 1", "1/0"], 1)
    )
    done = subprocess.run(
        [python, "-u", "-c", KERNEL_SOURCE], input=requests, capture_output=True, timeout=60
    )
    frames = FrameParser().feed(done.stdout)
    assert done.returncode == 0, done.stderr
    # All requests were queued at once, so the first cell's output may overtake the hello.
    assert [f.kind for f in frames if f.kind in b"HR"] == [b"H", b"R", b"R", b"R"]
    assert b"".join(f.payload for f in frames if f.kind == b"O") == b"hi\n"
    results = [f.json() for f in frames if f.kind == b"R"]
    assert results[1]["result"] == "42"
    assert results[2]["error"]["type"] == "ZeroDivisionError"
