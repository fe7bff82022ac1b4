"""Fixtures for the REST client tests: a fake server and a runtime pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from boxlite_mcp.runtime.rest import RestRuntime, RestSettings

from .fake import FakeBoxlite
from .serving import serve

GENERATIONS = ["0.9", "0.10"]


#: Quick retries and resumes, so fault tests take milliseconds.
def wire_box(box_id: str = "b1", **fields: Any) -> dict[str, Any]:
    """A running box as a BoxLite server answers it (the wire form)."""
    return {
        "box_id": box_id,
        "name": "b",
        "status": "running",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "image": "alpine",
        "cpus": 1,
        "memory_mib": 512,
        **fields,
    }


FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "reconnect_seconds": 5.0}


def settings_for(url: str, generation: str, fake: FakeBoxlite, **overrides: Any) -> RestSettings:
    values: dict[str, Any] = {"url": url, "api": generation, **FAST}
    if generation == "0.10" and fake.api_key:
        values["api_key"] = fake.api_key
    if generation == "0.9" and fake.client_id:
        values["client_id"] = fake.client_id
        values["client_secret"] = fake.client_secret
    values.update(overrides)
    return RestSettings(**values)


@asynccontextmanager
async def running(
    fake: FakeBoxlite, generation: str, **overrides: Any
) -> AsyncIterator[RestRuntime]:
    """Serve ``fake`` for ``generation`` and yield a runtime pointed at it."""
    async with serve(fake.app(generation)) as url:
        runtime = RestRuntime(settings_for(url, generation, fake, **overrides))
        try:
            yield runtime
        finally:
            await runtime.aclose()


@pytest.fixture(params=GENERATIONS)
def generation(request: pytest.FixtureRequest) -> str:
    return str(request.param)
