"""Run a module's tests against each of its mutants, in copies of the project.

The working tree is never touched: the project is copied (tracked and untracked
but not ignored files, as git lists them) once per worker into a temporary
directory, and each worker applies one mutant at a time to its own copy with
cosmic-ray's ``use_mutation`` (which puts the original back afterwards).

The test command runs in a subprocess of its own session so a mutant that hangs
(a loop that never ends) is killed with its whole process group at the per-mutant
timeout. cosmic-ray's own ``run_tests`` is not used for that: it cannot set the
working directory or environment per call (every worker needs its copy on
``PYTHONPATH``) and it reports a timeout as a plain kill, which this runner
counts separately.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import cosmic_ray.plugins
from cosmic_ray.mutating import use_mutation

from .mutants import Mutant

_IGNORED = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
    ".venv",
    "venv",
    "node_modules",
)


class RunnerError(RuntimeError):
    """The run cannot go on (e.g. the tests fail without any mutant); the message says why."""


class Status(Enum):
    KILLED = "killed"
    SURVIVED = "survived"
    TIMEOUT = "timed out"
    ERROR = "error"  # the mutant could not be applied


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    status: Status
    seconds: float
    detail: str = ""  # the tail of the test output, or the error


@dataclass(frozen=True)
class TestRun:
    returncode: int | None  # None: timed out and killed
    seconds: float
    output: str


def copy_project(root: Path, dest: Path) -> None:
    """Copy the project at ``root`` to ``dest`` (which must not exist).

    In a git checkout, the files git would commit (tracked, plus untracked ones
    not ignored, so new test files come along); elsewhere the whole tree without
    caches and virtualenvs.
    """
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    top = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        shutil.copytree(root, dest, ignore=_IGNORED, symlinks=True)
        return
    dest.mkdir(parents=True)
    for name in listed.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if not name:
            continue
        src = root / name
        if not os.path.lexists(src):
            continue  # deleted in the work tree but still tracked
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        elif src.is_file():
            shutil.copy2(src, target)


class Runner:
    """Holds the copies and runs the test command in them."""

    def __init__(
        self,
        root: Path,
        module: str,
        test_command: Sequence[str],
        workers: int,
        workdir: Path,
    ) -> None:
        self.root = root
        self.module = module
        self.test_command = list(test_command)
        self.copies = [workdir / f"copy{i}" for i in range(workers)]
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        for copy in self.copies:
            copy_project(root, copy)

    def _env(self, copy: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(copy)  # the copy, not an editable install elsewhere
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc must never hide a mutant
        return env

    def run_tests(self, copy: Path, timeout: float | None) -> TestRun:
        """Run the test command in ``copy``; kill its process group at ``timeout``."""
        basetemp = copy.parent / f"{copy.name}-pytest"
        command = [*self.test_command, f"--basetemp={basetemp}"]
        start = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=copy,
            env=self._env(copy),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            code = None
        finally:
            with self._lock:
                self._procs.discard(proc)
        return TestRun(code, time.monotonic() - start, out.decode("utf-8", "replace"))

    def check_import(self) -> None:
        """Make sure the tests would import the copy's module, not another install."""
        copy = self.copies[0]
        name = self.module.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        probe = subprocess.run(
            [sys.executable, "-c", f"import {name} as m; print(m.__file__)"],
            cwd=copy,
            env=self._env(copy),
            capture_output=True,
            text=True,
            check=False,
        )
        where = probe.stdout.strip()
        if probe.returncode != 0 or Path(where).resolve() != (copy / self.module).resolve():
            raise RunnerError(
                f"in the copy of the project, `import {name}` does not load {self.module} "
                f"from the copy (got {where or probe.stderr.strip()[-300:]}); "
                "pass --project with the directory the module path is relative to"
            )

    def baseline(self) -> TestRun:
        """Run the tests once without a mutant; they must pass."""
        run = self.run_tests(self.copies[0], timeout=None)
        if run.returncode != 0:
            raise RunnerError(
                "the tests fail without any mutant, so no mutant can be judged; "
                f"fix them first. Command: {' '.join(self.test_command)}\n" + _tail(run.output)
            )
        return run

    def run_mutants(
        self,
        mutants: Sequence[Mutant],
        timeout: float,
        on_result: Callable[[Result], None],
    ) -> list[Result]:
        """Run every mutant, one worker thread per copy; results in mutant order."""
        todo: queue.Queue[tuple[int, Mutant]] = queue.Queue()
        for item in enumerate(mutants):
            todo.put(item)
        operators = {m.operator: cosmic_ray.plugins.get_operator(m.operator) for m in mutants}
        results: dict[int, Result] = {}
        failures: list[BaseException] = []
        stop = threading.Event()

        def work(copy: Path) -> None:
            while not stop.is_set():
                try:
                    index, mutant = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    result = self._one(copy, mutant, operators[mutant.operator](), timeout)
                except BaseException as exc:  # reported by the main thread
                    failures.append(exc)
                    stop.set()
                    return
                if stop.is_set():
                    return  # interrupted: its test run was killed, not judged
                with self._lock:
                    results[index] = result
                    on_result(result)

        threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in self.copies]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        finally:
            stop.set()  # on Ctrl-C: no new mutant, and the running tests die now
            self.kill_all()
        if failures:
            raise RunnerError(f"a worker failed: {failures[0]!r}") from failures[0]
        return [results[i] for i in range(len(mutants))]

    def _one(self, copy: Path, mutant: Mutant, operator: Any, timeout: float) -> Result:
        with use_mutation(copy / mutant.module, operator, mutant.occurrence) as (_, mutated):
            if mutated is None:
                return Result(mutant, Status.ERROR, 0.0, "cosmic-ray applied no mutation")
            run = self.run_tests(copy, timeout)
        if run.returncode is None:
            return Result(mutant, Status.TIMEOUT, run.seconds)
        if run.returncode == 0:
            return Result(mutant, Status.SURVIVED, run.seconds)
        return Result(mutant, Status.KILLED, run.seconds, _tail(run.output))

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(output: str, lines: int = 15) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A temporary directory for the copies, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="boxlite-mutation-") as tmp:
        yield Path(tmp)
