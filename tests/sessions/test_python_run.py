"""python_run's engine on real bwrap boxes: state, streaming, errors, pictures, time limits.

Every test drives a real ``python3`` in a real box through ``PythonSessions``.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.errors import InvalidArgumentError, InvalidStateError, NotFoundError
from boxlite_mcp.runtime.local.oci import host_rootfs
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest, OutputChunk, VolumeSpec
from boxlite_mcp.sessions.python import (
    NoPythonError,
    PythonLimits,
    PythonRunResult,
    PythonSessions,
)

pytestmark = pytest.mark.anyio

#: A 1x1 PNG built with the stdlib, and an object showing it through the display protocol.
PNG_CELL = """
import struct, zlib
def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
PNG = (b"\\x89PNG\\r\\n\\x1a\\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
       + _chunk(b"IDAT", zlib.compress(b"\\x00\\xff\\x00\\x00")) + _chunk(b"IEND", b""))
class Dot:
    def _repr_png_(self):
        return PNG
"""


def expected_png() -> bytes:
    namespace: dict[str, object] = {}
    exec(PNG_CELL, namespace)
    png = namespace["PNG"]
    assert isinstance(png, bytes)
    return png


async def test_state_survives_three_calls(box: Box, sessions: PythonSessions) -> None:
    first = await sessions.run(box, "import math\nx = 40")
    second = await sessions.run(box, "x += 2\nvalues = [x, math.pi]")
    third = await sessions.run(box, "values[0]")
    assert (first.new_session, second.new_session, third.new_session) == (True, False, False)
    assert [r.execution_count for r in (first, second, third)] == [1, 2, 3]
    assert first.result is None and second.result is None
    assert third.result == "42"
    assert third.error is None and not third.session_lost
    assert third.python_version and third.python_version.startswith("3.")


async def test_output_streams_before_the_cell_ends(box: Box, sessions: PythonSessions) -> None:
    arrivals: list[tuple[float, OutputChunk]] = []

    async def on_output(chunk: OutputChunk) -> None:
        arrivals.append((time.monotonic(), chunk))

    code = "import sys, time\nfor i in range(4):\n    print('tick', i)\n    time.sleep(0.4)\n"
    code += "print('oops', file=sys.stderr)"
    result = await sessions.run(box, code, on_output=on_output)
    returned = time.monotonic()
    assert result.stdout == "".join(f"tick {i}\n" for i in range(4))
    assert result.stderr == "oops\n"
    assert b"".join(c.data for _, c in arrivals if c.stream == "stdout") == result.stdout.encode()
    assert b"".join(c.data for _, c in arrivals if c.stream == "stderr") == b"oops\n"
    first = arrivals[0][0]
    assert returned - first > 1.0, "the first line arrived only when the cell ended"


async def test_an_exception_is_a_result_with_a_traceback(
    box: Box, sessions: PythonSessions
) -> None:
    code = "print('before')\ndef check(v):\n    raise ValueError(f'bad value {v}')\ncheck(7)"
    result = await sessions.run(box, code)
    assert result.error is not None
    assert result.error.type == "ValueError"
    assert result.error.message == "bad value 7"
    trace = result.error.traceback
    assert 'File "<cell 1>", line 4' in trace and 'File "<cell 1>", line 3, in check' in trace
    assert "raise ValueError" in trace  # the cell's source lines are shown
    assert "<string>" not in trace  # the kernel's own frames are left out
    assert result.stdout == "before\n"
    assert not result.session_lost
    # Syntax errors and exceptions from modules name their kind too; the session lives on.
    syntax = await sessions.run(box, "def broken(:\n    pass")
    assert syntax.error is not None and syntax.error.type == "SyntaxError"
    decode = await sessions.run(box, "import json\njson.loads('{')")
    assert decode.error is not None and decode.error.type == "json.decoder.JSONDecodeError"
    exits = await sessions.run(box, "import sys\nsys.exit(3)")
    assert exits.error is not None and exits.error.type == "SystemExit"
    assert (await sessions.run(box, "1 + 1")).result == "2"


async def test_top_level_await(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(
        box, "import asyncio\nasync def twice(v):\n    await asyncio.sleep(0)\n    return 2 * v"
    )
    result = await sessions.run(box, "half = await twice(10)\nawait twice(half) + 2")
    assert (result.error, result.result) == (None, "42")
    assert (await sessions.run(box, "half")).result == "20"


async def test_input_reads_end_of_file(box: Box, sessions: PythonSessions) -> None:
    result = await sessions.run(box, "input('name? ')")
    assert result.error is not None and result.error.type == "EOFError"
    assert (await sessions.run(box, "'still here'")).result == "'still here'"


async def test_png_from_the_display_protocol(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, PNG_CELL)
    shown = await sessions.run(box, "Dot()")
    assert [(i.mime_type, i.data) for i in shown.images] == [("image/png", expected_png())]
    assert shown.images[0].size_bytes == len(expected_png())
    assert shown.result is not None and "Dot object" in shown.result
    dumped = shown.model_dump(mode="json")
    assert dumped["images"] == [{"mime_type": "image/png", "size_bytes": len(expected_png())}]
    # A tool's structured result is validated against the schema: the dump must pass.
    assert PythonRunResult.model_validate(dumped).images[0].size_bytes == len(expected_png())
    schema = PythonRunResult.model_json_schema()
    assert set(schema["$defs"]["PythonImage"]["properties"]) == {"mime_type", "size_bytes"}

    class_svg = "class Svg:\n    def _repr_svg_(self):\n        return '<svg/>'\n"
    displayed = await sessions.run(box, class_svg + "display(Dot(), Svg(), 'plain')\nNone")
    assert [(i.mime_type, i.data) for i in displayed.images] == [
        ("image/png", expected_png()),
        ("image/svg+xml", b"<svg/>"),
    ]
    assert displayed.stdout == "'plain'\n"  # no picture: shown as its repr, as Jupyter does
    assert displayed.result is None


async def test_images_over_the_limits_are_left_out_with_a_note(box: Box) -> None:
    engine = PythonSessions(PythonLimits(max_images=1))
    try:
        await engine.run(box, PNG_CELL)
        result = await engine.run(box, "display(Dot(), Dot())")
        assert len(result.images) == 1
        assert any("at most 1 images" in note for note in result.notes)
    finally:
        await engine.aclose()


async def python_has(box: Box, module: str) -> bool:
    probe = ExecRequest(command="python3", args=["-c", f"import {module}"])
    execution = await box.exec(probe)
    await execution.close_stdin()
    async for _ in execution.output():
        pass
    return (await execution.wait()).exit_code == 0


#: A host directory of packages for the box's python3 (e.g. ``pip install --target DIR
#: matplotlib`` with a Python of the same minor version), mounted read-only into the box.
BOX_SITE = os.environ.get("BOXLITE_TEST_BOX_PYTHONPATH")


async def test_matplotlib_figures_come_back_as_png(
    runtime: BwrapRuntime, sessions: PythonSessions
) -> None:
    site = (
        [VolumeSpec(host_path=BOX_SITE, guest_path="/opt/site", read_only=True)]
        if BOX_SITE
        else None
    )
    box = await runtime.create(BoxOptions(name="plots", volumes=site))
    if BOX_SITE:
        await sessions.run(box, "import sys\nsys.path.insert(0, '/opt/site')")
    elif not await python_has(box, "matplotlib"):
        pytest.skip(
            "the box's python3 (the host's /usr/bin/python3) has no matplotlib; set "
            "BOXLITE_TEST_BOX_PYTHONPATH to a directory with it to run this test"
        )
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()"
    result = await sessions.run(box, code)
    assert result.error is None, result.error
    assert result.stderr == ""  # plt.show() under Agg does not warn here
    assert len(result.images) == 1 and result.images[0].mime_type == "image/png"
    assert result.images[0].data.startswith(b"\x89PNG")
    again = await sessions.run(box, "len(plt.get_fignums())")
    assert again.result == "0" and not again.images  # shown figures are closed
    # A figure made without pyplot shows as the last expression, once.
    figure = await sessions.run(
        box, "from matplotlib.figure import Figure\nf = Figure()\nf.add_subplot().plot([1])\nf"
    )
    assert [i.mime_type for i in figure.images] == ["image/png"]


async def test_timeout_interrupts_and_keeps_state(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "kept = 'yes'")
    started = time.monotonic()
    result = await sessions.run(
        box, "import time\nprint('sleeping')\ntime.sleep(60)", timeout_seconds=1
    )
    assert time.monotonic() - started < 10
    assert result.timed_out and not result.session_lost
    assert result.error is not None and result.error.type == "KeyboardInterrupt"
    assert "time.sleep(60)" in result.error.traceback and "on_sigint" not in result.error.traceback
    assert result.stdout == "sleeping\n"
    assert any("state are kept" in note for note in result.notes)
    after = await sessions.run(box, "kept")
    assert (after.result, after.new_session) == ("'yes'", False)


async def test_a_cell_ignoring_the_interrupt_is_killed(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "kept = 1")
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(5)\n"
        "    except KeyboardInterrupt:\n        print('ignored')\n"
    )
    started = time.monotonic()
    result = await sessions.run(box, stubborn, timeout_seconds=1)
    assert time.monotonic() - started < 15
    assert result.timed_out and result.session_lost
    assert result.error is not None and result.error.type == "SessionLost"
    assert "killed" in result.error.message
    assert any("state" in note and "gone" in note for note in result.notes)
    assert result.stdout == "ignored\n"
    fresh = await sessions.run(box, "kept")
    assert fresh.new_session and fresh.execution_count == 1
    assert fresh.error is not None and fresh.error.type == "NameError"


async def test_a_dying_interpreter_is_reported(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "x = 1")
    result = await sessions.run(box, "import os\nprint('bye', flush=True)\nos._exit(3)")
    assert result.session_lost and not result.timed_out
    assert result.error is not None and result.error.type == "SessionLost"
    assert "exit code 3" in result.error.message
    assert result.stdout == "bye\n"  # written just before the end, and still delivered
    fresh = await sessions.run(box, "'x' in globals()")
    assert fresh.new_session and fresh.result == "False"


async def test_a_crash_in_c_code_is_reported_with_its_stack(
    box: Box, sessions: PythonSessions
) -> None:
    code = "import ctypes\ndef crash():\n    ctypes.string_at(0)\ncrash()"
    result = await sessions.run(box, code)
    assert result.session_lost
    assert result.error is not None and "signal 11" in result.error.message
    assert "Segmentation fault" in result.stderr and "crash" in result.stderr
    assert (await sessions.run(box, "1 + 1")).new_session


async def test_a_stopped_box_ends_the_session(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "x = 1")
    await box.stop()
    result = await sessions.run(box, "x")  # exec starts the box again, as BoxLite does
    assert result.new_session and not result.session_lost
    assert result.error is not None and result.error.type == "NameError"
    assert any("earlier variables and imports are gone" in note for note in result.notes)


async def test_reset_ends_the_session(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "x = 1")
    await sessions.run(box, "y = 2", session="other")
    reset = await sessions.reset(box)
    assert reset.was_running and reset.remaining_sessions == ["other"]
    after = await sessions.run(box, "'x' in globals()")
    assert after.new_session and after.result == "False"
    assert (await sessions.run(box, "y", session="other")).result == "2"
    with pytest.raises(NotFoundError) as info:
        await sessions.reset(box, "nosuch")
    assert "'nosuch'" in str(info.value) and "'default'" in str(info.value)
    assert "'py'" in str(info.value)


async def test_reset_during_a_cell_ends_it(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "x = 1")
    results = []
    running = anyio.Event()

    async def on_output(chunk: OutputChunk) -> None:
        running.set()

    async def long_cell() -> None:
        code = "import time\nprint('started', flush=True)\ntime.sleep(30)"
        results.append(await sessions.run(box, code, on_output=on_output))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_cell)
            await running.wait()
            reset = await sessions.reset(box)
    assert reset.was_running
    (result,) = results
    assert result.session_lost and "python_reset" in (result.error.message if result.error else "")
    assert (await sessions.run(box, "'x' in globals()")).result == "False"


async def test_reset_while_a_session_starts(box: Box, sessions: PythonSessions) -> None:
    async def first_call() -> None:
        with pytest.raises(InvalidStateError) as info:
            await sessions.run(box, "1")
        assert "python_reset" in str(info.value) and "run it again" in str(info.value)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first_call)
            for _ in range(1000):  # until the call holds the session
                if sessions.names(box.id):
                    break
                await anyio.sleep(0.001)
            # Now the call holds the session and is starting its kernel (tens of ms on
            # a quiet machine): reset at once, not after a guess at how long that takes.
            assert (await sessions.reset(box)).was_running
    assert sessions.names(box.id) == []
    assert (await sessions.run(box, "2")).result == "2"


async def test_named_sessions_are_separate(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "who = 'a'", session="a")
    await sessions.run(box, "who = 'b'", session="b")
    assert (await sessions.run(box, "who", session="a")).result == "'a'"
    assert (await sessions.run(box, "who", session="b")).result == "'b'"
    assert sessions.names(box.id) == ["a", "b"]


async def test_session_limits_and_names(box: Box) -> None:
    engine = PythonSessions(PythonLimits(max_sessions_per_box=2))
    try:
        await engine.run(box, "1", session="one")
        await engine.run(box, "1", session="two")
        with pytest.raises(InvalidStateError) as full:
            await engine.run(box, "1", session="three")
        assert "'three'" in str(full.value) and "'one', 'two'" in str(full.value)
        with pytest.raises(InvalidArgumentError) as bad:
            await engine.run(box, "1", session="../etc")
        assert "'../etc'" in str(bad.value)
        with pytest.raises(InvalidArgumentError):
            await engine.run(box, "1", session="one", timeout_seconds=0)
        with pytest.raises(InvalidArgumentError) as big:
            await engine.run(box, "#" * (2 * 1024 * 1024), session="one")
        assert "file_write" in str(big.value)
    finally:
        await engine.aclose()


async def test_calls_on_one_session_do_not_interleave(box: Box, sessions: PythonSessions) -> None:
    results: dict[str, str] = {}

    async def call(tag: str, code: str) -> None:
        results[tag] = (await sessions.run(box, code)).stdout

    slow = "import time\nfor i in range(3):\n    print('slow', i, flush=True)\n    time.sleep(0.2)"
    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "slow", slow)
        await anyio.sleep(0.1)
        tg.start_soon(call, "fast", "print('fast')")
    assert results == {"slow": "slow 0\nslow 1\nslow 2\n", "fast": "fast\n"}


async def test_a_busy_session_says_so(box: Box, sessions: PythonSessions) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(sessions.run, box, "import time\ntime.sleep(3)")
        await anyio.sleep(0.3)
        with pytest.raises(InvalidStateError) as busy:
            await sessions.run(box, "1", timeout_seconds=0.5)
    assert "'default'" in str(busy.value) and "python_reset" in str(busy.value)


async def test_cancelling_a_call_interrupts_the_cell(box: Box, sessions: PythonSessions) -> None:
    await sessions.run(box, "kept = 5")
    with anyio.move_on_after(0.5):
        await sessions.run(box, "import time\ntime.sleep(30)")
    after = await sessions.run(box, "kept")
    assert (after.result, after.new_session) == ("5", False)


async def test_no_python_in_the_box(
    runtime: BwrapRuntime, tmp_path: Path, sessions: PythonSessions
) -> None:
    rootfs = host_rootfs(tmp_path / "rootfs")
    bare = await runtime.create(BoxOptions(name="bare", rootfs_path=str(rootfs)))
    with pytest.raises(NoPythonError) as info:
        await sessions.run(bare, "1 + 1")
    message = str(info.value)
    assert "'bare'" in message and "python3" in message and "exec_run" in message
    assert sessions.names(bare.id) == []  # a session that never started is not kept


OLD_PYTHON_HOMES = glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*"))


@pytest.mark.skipif(not OLD_PYTHON_HOMES, reason="no Python 3.6 on this host to mount in a box")
async def test_a_too_old_python(runtime: BwrapRuntime, sessions: PythonSessions) -> None:
    old = await runtime.create(
        BoxOptions(
            name="old",
            # pyenv's python links its libpython by the host path, which the box lacks.
            env={"PATH": "/opt/py/bin:/usr/bin:/bin", "LD_LIBRARY_PATH": "/opt/py/lib"},
            volumes=[
                VolumeSpec(host_path=OLD_PYTHON_HOMES[0], guest_path="/opt/py", read_only=True)
            ],
        )
    )
    with pytest.raises(NoPythonError) as info:
        await sessions.run(old, "1 + 1")
    assert "'old'" in str(info.value) and "too old" in str(info.value)
    assert "3.8 or newer" in str(info.value)
