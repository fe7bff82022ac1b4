"""Fault tests share servers across a module: a module-scoped anyio backend."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"
