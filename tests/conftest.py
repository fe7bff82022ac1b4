"""Shared fixtures: the anyio backend and the registry of runtimes under test.

Each module in ``tests/harness/`` that defines ``FACTORIES`` contributes runtimes:
a mapping from a test id (``"bwrap"``, ``"rest-0.9"`` ...) to an async context
manager factory ``factory(tmp_path) -> AsyncContextManager[Runtime]``. The
contract suite is parametrized over all of them.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
