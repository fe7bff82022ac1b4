"""Credentials: the 0.9 client-credentials exchange and its refresh, the 0.10 API key."""

from __future__ import annotations

import asyncio
import logging

import pytest

from boxlite_mcp.runtime.errors import AuthError
from boxlite_mcp.runtime.rest import RestRuntime

from .conftest import running, settings_for
from .fake import FakeBoxlite
from .serving import serve

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-client-secret"
API_KEY = "blk_live_0123456789abcdef"


def oauth_fake(ttl: float = 3600) -> FakeBoxlite:
    return FakeBoxlite(client_id="cid", client_secret=SECRET, token_ttl=ttl)


async def test_client_credentials_are_exchanged_once_and_sent_as_bearer() -> None:
    fake = oauth_fake()
    async with running(fake, "0.9") as runtime:
        await runtime.list()
        await runtime.metrics()
        await runtime.list()
    assert fake.token_requests == [
        {"grant_type": "client_credentials", "client_id": "cid", "client_secret": SECRET}
    ]
    assert fake.recorder is not None
    token_call = fake.recorder.matching("POST", "/oauth/tokens")[0]
    assert token_call.header("content-type") == "application/x-www-form-urlencoded"
    assert token_call.header("authorization") is None
    box_calls = [r for r in fake.recorder.requests if "/default/" in r.path]
    bearers = {r.header("authorization") for r in box_calls}
    assert len(box_calls) == 3 and len(bearers) == 1
    assert next(iter(bearers)).startswith("Bearer ")  # type: ignore[union-attr]


async def test_the_token_is_refreshed_sixty_seconds_before_it_expires() -> None:
    fake = oauth_fake(ttl=61.5)  # fresh for 1.5 s, then inside the 60 s leeway
    async with running(fake, "0.9") as runtime:
        await runtime.list()
        await runtime.list()
        assert len(fake.token_requests) == 1
        await asyncio.sleep(1.7)
        await runtime.list()
        assert len(fake.token_requests) == 2
        await runtime.list()
        assert len(fake.token_requests) == 2


async def test_a_token_expiring_within_the_leeway_is_never_reused() -> None:
    fake = oauth_fake(ttl=30)
    async with running(fake, "0.9") as runtime:
        for _ in range(3):
            await runtime.list()
    assert len(fake.token_requests) == 3


async def test_a_revoked_token_is_exchanged_again_once() -> None:
    fake = oauth_fake()
    async with running(fake, "0.9") as runtime:
        await runtime.list()
        fake.tokens.clear()  # the server forgot every token (e.g. restarted)
        await runtime.list()
    assert len(fake.token_requests) == 2
    assert fake.recorder is not None
    assert [r.method for r in fake.recorder.matching("GET", "/boxes")] == ["GET"] * 3


async def test_refused_client_credentials_are_an_auth_error_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = oauth_fake()
    async with running(fake, "0.9", client_secret="wrong-" + SECRET) as runtime:
        with pytest.raises(AuthError) as caught:
            await runtime.list()
        assert "BOXLITE_REST_CLIENT_SECRET" in caught.value.message
        for text in (
            caught.value.message,
            caplog.text,
            repr(runtime.settings),
            repr(runtime.client),
            str(runtime.settings),
        ):
            assert SECRET not in text


async def test_concurrent_requests_share_one_exchange() -> None:
    fake = oauth_fake()
    async with running(fake, "0.9") as runtime:
        await asyncio.gather(*(runtime.list() for _ in range(10)))
    assert len(fake.token_requests) == 1


async def test_the_api_key_is_a_bearer_on_everything_but_config(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeBoxlite(api_key=API_KEY)
    async with running(fake, "0.10") as runtime:
        await runtime.info()
        await runtime.list()
        assert API_KEY not in repr(runtime.settings) + str(runtime.settings)
    assert fake.recorder is not None
    for record in fake.recorder.requests:
        expected = None if record.path.endswith("/config") else f"Bearer {API_KEY}"
        assert record.header("authorization") == expected, record.path
    assert API_KEY not in caplog.text


async def test_a_wrong_api_key_is_an_auth_error() -> None:
    fake = FakeBoxlite(api_key=API_KEY)
    async with serve(fake.app("0.10")) as url:
        settings = settings_for(url, "0.10", fake, api_key="blk_wrong_key", path_prefix="")
        async with RestRuntime(settings) as runtime:
            with pytest.raises(AuthError) as caught:
                await runtime.list()
    assert "BOXLITE_API_KEY" in caught.value.message
    assert "blk_wrong_key" not in caught.value.message
