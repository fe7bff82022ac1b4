"""Fixtures of the runtime contract suite: every test runs once per runtime under test.

The runtimes come from ``tests.harness.runtimes()``: a test id (``"bwrap"``,
``"rest-0.9"``, ``"rest-0.10"``, ``"local-rest"`` ...) mapped to a factory
``factory(home) -> AsyncContextManager[Runtime]``. What a factory must provide:

- ``factory(home)`` opens a runtime whose persistent state (boxes, their disks,
  snapshots) lives under the directory ``home``; leaving the context closes the
  runtime (and any server the factory started), leaving the state behind.
- Restart: opening a runtime again on the same ``home`` after the first one closed
  must behave as a restarted process (same boxes; boxes that were running come
  back stopped). By default the suite calls the factory again; a factory that
  needs a different way exposes it as an attribute ``reopen(home)`` with the same
  signature (e.g. to restart only the server behind a REST client).

Each module gets one runtime per factory (module scope keeps the suite fast);
tests create their own boxes with ``make_box`` unless sharing one is harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from boxlite_mcp.runtime.base import Runtime
from boxlite_mcp.runtime.types import Capabilities, RuntimeInfo
from tests.harness import RuntimeFactory, runtimes

from .support import BoxMaker, reopener

FACTORIES = runtimes()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope, so module-scoped async fixtures share the test's event loop."""
    return "asyncio"


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def runtime_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def runtime_factory(runtime_id: str) -> RuntimeFactory:
    return FACTORIES[runtime_id]


@pytest.fixture(scope="module")
def reopen_runtime(runtime_factory: RuntimeFactory) -> RuntimeFactory:
    """How to open a second runtime on the same home (see the module docstring)."""
    return reopener(runtime_factory)


@pytest.fixture(scope="module")
def runtime_home(tmp_path_factory: pytest.TempPathFactory, runtime_id: str) -> Path:
    return tmp_path_factory.mktemp(f"home-{runtime_id}")


@pytest.fixture(scope="module")
async def runtime(runtime_factory: RuntimeFactory, runtime_home: Path) -> AsyncIterator[Runtime]:
    async with runtime_factory(runtime_home) as rt:
        yield rt


@pytest.fixture(scope="module")
async def runtime_info(runtime: Runtime) -> RuntimeInfo:
    return await runtime.info()


@pytest.fixture(scope="module")
def capabilities(runtime_info: RuntimeInfo) -> Capabilities:
    return runtime_info.capabilities


@pytest.fixture
async def make_box(runtime: Runtime) -> AsyncIterator[BoxMaker]:
    """Creates boxes for one test and force-removes them (and their clones) after it."""
    maker = BoxMaker(runtime)
    yield maker
    await maker.cleanup()


@pytest.fixture(scope="module")
async def module_box_maker(runtime: Runtime) -> AsyncIterator[BoxMaker]:
    maker = BoxMaker(runtime)
    yield maker
    await maker.cleanup()


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory on the host for copies and archives."""
    path = tmp_path / "host"
    path.mkdir()
    yield path
