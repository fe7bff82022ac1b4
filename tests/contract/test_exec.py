"""Exec: exact argv, env, working dir, user, exit codes, signal deaths, results."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator

import anyio
import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import BoxliteError, UnsupportedError
from boxlite_mcp.runtime.types import ExecRequest, ExecResult, RuntimeInfo

from .support import DEADLINE, BoxMaker, drain, finish, run, sh

pytestmark = pytest.mark.anyio

PRINT_ARGV = "import json, sys; sys.stdout.write(json.dumps(sys.argv[1:]))"


@pytest.fixture(scope="module")
async def box(module_box_maker: BoxMaker) -> AsyncIterator[Box]:
    """One box for the module: these tests only read and run, never change the box."""
    yield await module_box_maker()


async def test_argv_is_passed_exactly(box: Box) -> None:
    args = [
        "plain",
        "two words",
        "  padded  ",
        "'single'",
        '"double"',
        "back\\slash",
        "$HOME",
        "$(id)",
        "`id`",
        "*",
        "a;b|c&&d",
        "new\nline",
        "tab\tbed",
        "ünïcødé 😀 中文",
        "",
        "-c",
        "--flag=value",
    ]
    done = await run(box, "python3", "-c", PRINT_ARGV, *args)
    assert json.loads(done.check().stdout) == args


async def test_command_without_args_and_absolute_path(box: Box) -> None:
    assert (await run(box, "pwd")).check().out.strip().startswith("/")
    assert (await run(box, "/bin/echo", "hi")).check().out == "hi\n"


@pytest.mark.parametrize("code", [0, 1, 2, 42, 127, 255])
async def test_exit_codes(box: Box, code: int) -> None:
    done = await sh(box, f"exit {code}")
    assert done.exit_code == code
    assert done.result.success is (code == 0)
    assert done.result.error_message is None
    assert done.result.timed_out is False
    assert done.result.signal is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
async def test_signal_death_is_negative_exit_code(box: Box, signum: int) -> None:
    done = await run(box, "python3", "-c", f"import os; os.kill(os.getpid(), {int(signum)})")
    assert done.exit_code == -signum
    assert done.result.signal == signum
    assert done.result.timed_out is False


async def test_exec_env(box: Box) -> None:
    env = {
        "ONE": "1",
        "WITH_SPACE": "a b",
        "WITH_EQ": "k=v",
        "UNI": "ü😀",
        "EMPTY": "",
        "NEWLINE": "line1\nline2",
        "QUOTES": "'\"$x`",
    }
    done = await run(
        box,
        "python3",
        "-c",
        "import json, os, sys; sys.stdout.write(json.dumps({k: os.environ.get(k) for k in "
        + repr(sorted(env))
        + "}))",
        env=env,
    )
    assert json.loads(done.check().stdout) == env


async def test_exec_working_dir(box: Box) -> None:
    assert (await run(box, "pwd", working_dir="/etc")).check().out == "/etc\n"
    assert (await run(box, "pwd", working_dir="/usr/bin")).check().out == "/usr/bin\n"


async def test_exec_user(box: Box, runtime_info: RuntimeInfo) -> None:
    request = ExecRequest(
        command="/bin/sh", args=["-c", 'printf "%s:%s" "$(id -u)" "$(id -g)"'], user="65534:65534"
    )
    try:
        execution = await box.exec(request)
    except UnsupportedError as exc:
        # The BoxLite REST API has no per-exec user; a REST-based runtime says so.
        assert runtime_info.name in ("rest", "local"), f"{runtime_info.name}: {exc}"
        assert "user" in str(exc).lower()
        return
    with anyio.fail_after(DEADLINE):
        out, err = await drain(execution)
        result = await execution.wait()
    assert result.exit_code == 0, err
    assert out == b"65534:65534"


async def test_stdout_and_stderr_are_separate(box: Box) -> None:
    done = await sh(box, "echo to-out; echo to-err >&2; echo more-out; echo more-err >&2")
    assert done.check().out == "to-out\nmore-out\n"
    assert done.err == "to-err\nmore-err\n"


async def test_no_output_means_no_bytes(box: Box) -> None:
    done = await run(box, "true")
    assert (done.stdout, done.stderr, done.exit_code) == (b"", b"", 0)


async def test_execution_ids_are_distinct(box: Box) -> None:
    first = await box.exec(ExecRequest(command="true"))
    second = await box.exec(ExecRequest(command="true"))
    assert first.id and second.id and first.id != second.id
    with anyio.fail_after(DEADLINE):
        assert (await first.wait()).exit_code == 0
        assert (await second.wait()).exit_code == 0


async def test_wait_many_times_from_many_tasks(box: Box) -> None:
    execution = await box.exec(
        ExecRequest(command="/bin/sh", args=["-c", "read line; echo got $line; exit 7"])
    )
    results: list[ExecResult] = []

    async def waiter() -> None:
        results.append(await execution.wait())

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            await execution.write_stdin(b"x\n")
            await execution.close_stdin()
        out, _ = await drain(execution)
        again = await execution.wait()
    assert [r.exit_code for r in results] == [7, 7, 7]
    assert again.exit_code == 7
    assert out == b"got x\n"


async def test_duration_is_reported(box: Box) -> None:
    done = (await run(box, "sleep", "0.3")).check()
    duration = done.result.duration_ms
    assert duration is None or duration >= 250


async def test_nonexistent_program_is_an_error_naming_it(box: Box) -> None:
    """BoxLite refuses to start a program that does not exist: exec() raises."""
    try:
        execution = await box.exec(ExecRequest(command="no-such-program-xyz"))
    except BoxliteError as exc:
        assert "no-such-program-xyz" in str(exc)
        return
    done = await finish(execution)
    pytest.fail(
        f"exec() of a missing program started an execution: exit {done.exit_code}, "
        f"error_message {done.result.error_message!r}, stderr {done.stderr!r}"
    )


async def test_signal_number_of_a_killed_child_is_its_own_exit(box: Box) -> None:
    """The exit code belongs to the process run, not to its children."""
    done = await sh(box, "sh -c 'kill -TERM $$'; echo after $?")
    assert done.check().out == "after 143\n"
