"""A box's network on every runtime: only what the operator lists; services exposed.

The operator's list (``tests.harness.network``) opens one loopback port as
``host.boxlite.internal:WEB_PORT``; the test serves it, and a second loopback
server that no list opens. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from boxlite_mcp.runtime.base import Box
from boxlite_mcp.runtime.errors import BoxliteError, InvalidArgumentError, UnsupportedError
from boxlite_mcp.runtime.types import NetworkSpec
from tests.harness.network import SECRET_VALUE, WEB_PORT

from .support import BoxMaker, sh

pytestmark = pytest.mark.anyio


async def _serve(port: int, body: bytes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


@pytest.fixture
async def web() -> AsyncIterator[int]:
    """(the listed port's server) and the port of an unlisted one."""
    listed = await _serve(WEB_PORT, b"listed")
    other = await _serve(0, b"unlisted")
    yield other.sockets[0].getsockname()[1]
    listed.close()
    other.close()


async def test_box_reaches_only_the_listed_destination(make_box: BoxMaker, web: int) -> None:
    box = await make_box(network=NetworkSpec(mode="enabled"))
    done = await sh(
        box,
        f"curl -sS -m 10 http://host.boxlite.internal:{WEB_PORT}/; echo; "
        f"curl -sS -m 10 -o /dev/null -w '%{{http_code}}' http://host.boxlite.internal:{web}/; "
        f"echo; curl -sS -m 10 http://127.0.0.1:{WEB_PORT}/ 2>&1 | head -c 200",
    )
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "listed", (done.stdout + done.stderr).decode()
    assert lines[1] == "403"
    assert "listed" not in "".join(lines[2:])  # the box's own loopback, not the host's


async def test_allow_net_outside_the_operators_list_is_refused(make_box: BoxMaker) -> None:
    with pytest.raises(InvalidArgumentError, match=r"pypi\.org"):
        await make_box(network=NetworkSpec(mode="enabled", allow_net=["pypi.org"]))


async def test_expose_a_service_in_the_box(make_box: BoxMaker, runtime_id: str) -> None:
    box = await make_box()
    await box.start()
    try:
        exposed = await box.expose(8080)
    except UnsupportedError as exc:
        assert runtime_id not in ("bwrap", "rest-0.10", "local-rest"), exc
        assert "box_expose" in str(exc)
        return
    assert exposed.port == 8080 and exposed.url.startswith("http://127.0.0.1:")
    assert await _served_through(box, exposed.url, 8080) == b"from-the-box\n"
    with pytest.raises(BoxliteError):
        await box.expose(0)


async def _served_through(box: Box, url: str, port: int) -> bytes:
    """Start ``python3 -m http.server PORT`` in the box; the page fetched from ``url``."""
    result = await sh(
        box,
        "mkdir -p /srv && echo from-the-box > /srv/index.html && "
        f"(cd /srv && nohup python3 -m http.server {port} --bind 127.0.0.1 "
        ">/dev/null 2>&1 &) && sleep 0.01",
    )
    assert result.exit_code == 0
    host, host_port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    reply = b""
    for _ in range(250):  # polled: the service in the box starts on its own
        try:
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(host_port))
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            async with asyncio.timeout(10):
                reply = await reader.read(-1)
            writer.close()
            if reply:
                break
        except OSError:
            pass
        await asyncio.sleep(0.02)
    assert reply.startswith(b"HTTP/1.0 200"), reply
    return reply.split(b"\r\n\r\n", 1)[1]


async def test_ports_at_create_are_reachable(make_box: BoxMaker, runtime_id: str) -> None:
    """box_create's ports: published in the create request on 0.9, exposed on demand
    elsewhere; either way ``expose`` then answers the URL that reaches the service."""
    try:
        box = await make_box(ports=[8081])
        exposed = await box.expose(8081)
    except UnsupportedError as exc:
        assert runtime_id not in ("bwrap", "rest-0.9", "rest-0.10", "local-rest"), exc
        return
    assert exposed.port == 8081 and exposed.url.startswith("http://127.0.0.1:")
    assert await box.expose(8081) == exposed  # asked again: the same
    assert await _served_through(box, exposed.url, 8081) == b"from-the-box\n"
    if runtime_id == "rest-0.9":
        info = await box.info()
        assert info.network_status is not None and info.network_status.exposed == [exposed]
        with pytest.raises(UnsupportedError, match=r"ports=\[8082\]"):
            await box.expose(8082)  # not published at create: 0.9 cannot add it


async def test_secret_is_swapped_in_host_side(make_box: BoxMaker) -> None:
    """The box sends its placeholder; the listed server receives the value."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", WEB_PORT)
    try:
        box = await make_box(network=NetworkSpec(mode="enabled"), secrets=["CONTRACT_TOKEN"])
        done = await sh(
            box,
            f'echo "$CONTRACT_TOKEN"; curl -sS -H "X-Key: $CONTRACT_TOKEN" '
            f"http://host.boxlite.internal:{WEB_PORT}/",
        )
        assert done.stdout == b"<BOXLITE_SECRET:CONTRACT_TOKEN>\nok", done.stderr
        (head,) = received
        assert f"X-Key: {SECRET_VALUE}".encode() in head
        with pytest.raises(InvalidArgumentError, match="NOT_CONFIGURED"):
            await make_box(network=NetworkSpec(mode="enabled"), secrets=["NOT_CONFIGURED"])
    finally:
        server.close()
