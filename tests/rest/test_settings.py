"""Settings from the SDKs' environment names; generation auto-detection; URL shapes."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from boxlite_mcp.runtime.errors import AuthError, InvalidArgumentError
from boxlite_mcp.runtime.rest import RestRuntime, RestSettings

from .conftest import FAST
from .fake import FakeBoxlite
from .serving import Recorder, serve

pytestmark = pytest.mark.anyio


def test_settings_come_from_the_official_sdk_names() -> None:
    settings = RestSettings.from_env(
        {
            "BOXLITE_REST_URL": "https://api.example.com/",
            "BOXLITE_API_KEY": "blk_live_x",
            "BOXLITE_REST_PATH_PREFIX": "acme",
            "BOXLITE_REST_CLIENT_ID": "cid",
            "BOXLITE_REST_CLIENT_SECRET": "csecret",
            "BOXLITE_REST_PREFIX": "v1",
            "BOXLITE_REST_API": "0.10",
            "BOXLITE_REST_TIMEOUT": "12.5",
            "BOXLITE_REST_RETRIES": "5",
        }
    )
    assert settings.url == "https://api.example.com"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "blk_live_x"
    assert settings.path_prefix == "acme"
    assert settings.client_id == "cid"
    assert settings.api == "0.10"
    assert settings.timeout == 12.5 and settings.retries == 5
    assert "blk_live_x" not in repr(settings) and "csecret" not in repr(settings)


def test_an_empty_path_prefix_means_no_routing_slot() -> None:
    env = {"BOXLITE_REST_URL": "http://h", "BOXLITE_REST_PATH_PREFIX": ""}
    settings = RestSettings.from_env(env)
    assert settings.path_prefix == ""
    assert settings.preferred_generation() == "0.10"


@pytest.mark.parametrize("url", ["", "ftp://h", "h:8100"])
def test_a_url_without_http_scheme_is_refused(url: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        RestSettings(url=url)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BOXLITE_API_KEY": "k"}, "0.10"),
        ({"BOXLITE_REST_PATH_PREFIX": "acme"}, "0.10"),
        ({"BOXLITE_REST_CLIENT_ID": "c", "BOXLITE_REST_CLIENT_SECRET": "s"}, "0.9"),
        ({"BOXLITE_REST_PREFIX": "v1"}, "0.9"),
        ({}, None),
        (
            {
                "BOXLITE_API_KEY": "k",
                "BOXLITE_REST_CLIENT_ID": "c",
                "BOXLITE_REST_CLIENT_SECRET": "s",
            },
            None,
        ),
        ({"BOXLITE_API_KEY": "k", "BOXLITE_REST_API": "0.9"}, "0.9"),
    ],
)
def test_credentials_decide_the_generation(env: dict[str, str], expected: str | None) -> None:
    settings = RestSettings.from_env({"BOXLITE_REST_URL": "http://h", **env})
    assert settings.preferred_generation() == expected


def probe_app(config: dict[str, Any], me_status: int | None) -> Recorder:
    async def get_config(request: Request) -> Response:
        return JSONResponse(config)

    async def me(request: Request) -> Response:
        if me_status == 200:
            return JSONResponse(
                {"sub": "x", "principal_type": "user", "scopes": [], "path_prefix": None}
            )
        return JSONResponse({"error": {"message": "no", "type": "AuthError"}}, me_status or 404)

    routes = [Route("/v1/config", get_config)]
    if me_status is not None:
        routes.append(Route("/v1/me", me))
    return Recorder(Starlette(routes=routes))


@pytest.mark.parametrize(
    ("config", "me_status", "expected"),
    [
        ({"capabilities": {"max_boxes_per_path_prefix": 5}}, None, "0.10"),
        ({"capabilities": {"linux_capabilities_enabled": True}}, None, "0.10"),
        ({"defaults": {"auto_delete": 0}}, None, "0.10"),
        ({"capabilities": {"max_boxes_per_prefix": 5}}, 200, "0.9"),
        ({"defaults": {"auto_remove": True}}, None, "0.9"),
        ({"capabilities": {}}, 200, "0.10"),
        ({"capabilities": {}}, 401, "0.10"),
        ({"capabilities": {}}, None, "0.9"),
        ({}, 405, "0.9"),
    ],
)
async def test_auto_detection_reads_config_then_me(
    config: dict[str, Any], me_status: int | None, expected: str
) -> None:
    async with serve(probe_app(config, me_status)) as url:
        async with RestRuntime(RestSettings(url=url, path_prefix=None, **FAST)) as runtime:
            if me_status == 401:  # detected as 0.10, then /v1/me wants credentials
                with pytest.raises(AuthError):
                    await runtime.client.ensure_ready()
            else:
                await runtime.client.ensure_ready()
            assert runtime.client.generation == expected


@pytest.mark.parametrize("key", ["path_prefix", "prefix"])
async def test_the_010_routing_slot_comes_from_me(key: str) -> None:
    fake = FakeBoxlite(api_key="k", path_prefix="acme", me_key=key)
    async with serve(fake.app("0.10")) as url:
        async with RestRuntime(RestSettings(url=url, api_key="k", **FAST)) as runtime:
            await runtime.list()
            info = await runtime.info()
    assert fake.recorder is not None
    assert "/v1/acme/boxes" in fake.recorder.paths("GET")
    assert info.details["path"] == "/v1/acme"


async def test_a_configured_routing_slot_skips_me() -> None:
    fake = FakeBoxlite(api_key="k", path_prefix="team-7")
    async with serve(fake.app("0.10")) as url:
        settings = RestSettings(url=url, api_key="k", path_prefix="team-7", **FAST)
        async with RestRuntime(settings) as runtime:
            await runtime.list()
    assert fake.recorder is not None
    assert fake.recorder.paths() == ["/v1/team-7/boxes"]


async def test_09_urls_carry_the_default_tenant() -> None:
    fake = FakeBoxlite()
    async with serve(fake.app("0.9")) as url:
        async with RestRuntime(RestSettings(url=url, api="0.9", **FAST)) as runtime:
            await runtime.list()
            await runtime.info()
    assert fake.recorder is not None
    assert fake.recorder.paths() == ["/v1/default/boxes", "/v1/config"]


async def test_ids_and_names_cannot_add_path_segments() -> None:
    fake = FakeBoxlite()
    async with serve(fake.app("0.9")) as url:
        async with RestRuntime(RestSettings(url=url, api="0.9", **FAST)) as runtime:
            url_for = await runtime.client.url("boxes", "a/../b", "snapshots", "s?x=1")
    assert url_for.endswith("/v1/default/boxes/a%2F..%2Fb/snapshots/s%3Fx%3D1")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "BOXLITE_REST_URL"),
        ({"BOXLITE_REST_URL": "ftp://user:pw-SECRET@h"}, "BOXLITE_REST_URL"),
        ({"BOXLITE_REST_URL": "http://h", "BOXLITE_REST_TIMEOUT": "soon"}, "BOXLITE_REST_TIMEOUT"),
        ({"BOXLITE_REST_URL": "http://h", "BOXLITE_REST_API": "0.11"}, "BOXLITE_REST_API"),
    ],
)
def test_bad_environment_is_a_clear_error_without_the_values(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        RestSettings.from_env(env)
    assert variable in caught.value.message
    assert "SECRET" not in caught.value.message
