"""Secrets on bwrap: the box holds a placeholder, the host swaps the value in (HTTP, HTTPS).

Servers this test starts on 127.0.0.1 play the internet; the HTTPS one has a
certificate for host.boxlite.internal from a CA the operator names
(``net_ca_file``). The secret's value is random per run, so finding it anywhere
means it leaked.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.network.secrets import Secret
from boxlite_mcp.runtime.types import BoxOptions, NetworkSpec

from .conftest import sh

pytestmark = pytest.mark.anyio

VALUE = "s3cr3t-" + secrets.token_hex(16)


def _test_ca(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """(CA file for the operator, server context for host.boxlite.internal)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test upstream CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("host.boxlite.internal")]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "upstream-ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "upstream.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_file, context


@dataclass
class Upstream:
    port: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_body(reader: asyncio.StreamReader, head: bytes, received: bytearray) -> bytes:
    """A request's body (a chunked one decoded); ``received`` grows as pieces arrive, so
    a request cut off midway shows what got through."""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    received += await reader.readexactly(length)
    if b"transfer-encoding: chunked" in head.lower():
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            received += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
    return bytes(received)


async def _recording_server(context: ssl.SSLContext | None) -> tuple[asyncio.Server, Upstream]:
    upstream = Upstream()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            upstream.requests.append(head + await read_body(reader, head, bytearray()))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreceived"
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    upstream.port = server.sockets[0].getsockname()[1]
    return server, upstream


@dataclass
class World:
    runtime: BwrapRuntime
    https: Upstream
    http: Upstream
    other: Upstream


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    ca_file, context = _test_ca(tmp_path)
    servers = [
        await _recording_server(context),
        await _recording_server(None),
        await _recording_server(None),
    ]
    (_, https), (_, http), (_, other) = servers
    rt = BwrapRuntime(
        home=tmp_path / "home",
        net_allow=[
            f"host.boxlite.internal:{https.port}",
            f"host.boxlite.internal:{http.port}",
            f"127.0.0.1:{other.port}",
        ],
        secrets={
            "API_TOKEN": Secret("API_TOKEN", ("host.boxlite.internal",), VALUE),
            "UNUSED": Secret("UNUSED", ("*",), "unused-" + VALUE),
        },
        net_ca_file=str(ca_file),
    )
    try:
        yield World(rt, https, http, other)
    finally:
        await rt.aclose()
        for server, _ in servers:
            server.close()


async def _secret_box(rt: BwrapRuntime) -> BwrapBox:
    return await rt.create(BoxOptions(network=NetworkSpec(mode="enabled"), secrets=["API_TOKEN"]))


async def test_https_and_http_get_the_value_the_box_only_the_placeholder(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    box = await _secret_box(world.runtime)
    script = (
        f'curl -sS -f "https://host.boxlite.internal:{world.https.port}/v1?key=$API_TOKEN" '
        '-H "Authorization: Bearer $API_TOKEN" --data "token=$API_TOKEN&x=1"; echo; '
        f'curl -sS -f "http://host.boxlite.internal:{world.http.port}/plain" '
        '-H "X-Key: $API_TOKEN"; echo; '
        'python3 -c "import os, urllib.request; print(urllib.request.urlopen(urllib.request.'
        f"Request('https://host.boxlite.internal:{world.https.port}/py', "
        "headers={'X-Key': os.environ['API_TOKEN']})).read().decode())\"; "
        'echo "$API_TOKEN"'
    )
    result, out, err = await sh(box, script)
    assert result.exit_code == 0, (out + err).decode()
    assert out.decode().splitlines() == [
        "received",
        "received",
        "received",
        "<BOXLITE_SECRET:API_TOKEN>",
    ]
    first, third = world.https.requests
    assert first.startswith(f"POST /v1?key={VALUE} HTTP/1.1".encode())
    assert f"Authorization: Bearer {VALUE}".encode() in first
    assert first.endswith(f"token={VALUE}&x=1".encode())
    assert f"Content-Length: {len(f'token={VALUE}&x=1')}".encode() in first
    assert f"X-Key: {VALUE}".encode() in third
    (plain,) = world.http.requests
    assert f"X-Key: {VALUE}".encode() in plain
    assert b"BOXLITE_SECRET" not in first + third + plain
    # Nowhere in the box: its environment, processes, memory-backed and written files (the
    # pattern travels base64-encoded through a pipe, so no command line holds it).
    encoded = base64.b64encode(VALUE.encode()).decode()
    result, out, _ = await sh(
        box,
        f"echo {encoded} | base64 -d | grep -rlsFf - /tmp /run /dev/shm "
        "/etc/boxlite-mcp /proc/[0-9]*/environ /proc/[0-9]*/cmdline; echo done",
    )
    assert out == b"done\n", out
    _, env_out, _ = await sh(box, "env")
    assert (
        VALUE not in env_out.decode() and "API_TOKEN=<BOXLITE_SECRET:API_TOKEN>" in env_out.decode()
    )
    upper = world.runtime.store.box_dir(box.id) / "upper"
    for path in upper.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert VALUE.encode() not in path.read_bytes(), path
    assert VALUE not in caplog.text
    assert VALUE not in (out + err).decode()


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
async def test_placeholder_to_a_host_not_the_secrets_is_refused(world: World, scheme: str) -> None:
    """Through the HTTP proxy and through SOCKS alike."""
    box = await _secret_box(world.runtime)
    _, out, err = await sh(
        box,
        f"curl -sS --noproxy '' -x {scheme}://127.0.0.1:3128 -H \"X-Key: $API_TOKEN\" "
        f"http://127.0.0.1:{world.other.port}/",
    )
    text = (out + err).decode()
    assert "secret API_TOKEN" in text and "127.0.0.1" in text and "was not sent" in text
    assert VALUE not in text
    assert world.other.requests == []
    # Without a placeholder the same destination works.
    _result, out, _ = await sh(
        box,
        f"curl -sS --noproxy '' -x {scheme}://127.0.0.1:3128 http://127.0.0.1:{world.other.port}/",
    )
    assert out == b"received"
    status = (await box.info()).network_status
    assert status is not None and "API_TOKEN" in status.recent_denials[-1].reason


async def test_secrets_checked_at_create(world: World) -> None:
    with pytest.raises(InvalidArgumentError, match=r"'NOPE' is not configured.*API_TOKEN"):
        await world.runtime.create(
            BoxOptions(network=NetworkSpec(mode="enabled"), secrets=["NOPE"])
        )
    with pytest.raises(InvalidArgumentError, match="network"):
        await world.runtime.create(BoxOptions(secrets=["API_TOKEN"]))
    assert await world.runtime.list() == []


async def test_box_without_secrets_tunnels_https_untouched(world: World) -> None:
    box = await world.runtime.create(BoxOptions(network=NetworkSpec(mode="enabled")))
    _result, out, _err = await sh(
        box,
        f"curl -sS https://host.boxlite.internal:{world.https.port}/ 2>&1; "
        "echo ${SSL_CERT_FILE:-none}",
    )
    # The box does not trust the upstream's test CA: TLS goes end to end, unread.
    assert b"certificate" in out.lower() and out.endswith(b"none\n"), out


async def test_socks_and_chunked_bodies_get_the_value(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """SOCKS (plain HTTP and HTTPS through the box's CA) and a chunked body whose
    placeholder is split across chunks: each reaches the host with the value."""
    caplog.set_level(logging.DEBUG)
    box = await _secret_box(world.runtime)
    chunked = (
        "import http.client, os; p = os.environ['API_TOKEN'].encode(); "
        "c = http.client.HTTPConnection('127.0.0.1', 3128); "
        f"c.request('POST', 'http://host.boxlite.internal:{world.http.port}/chunked', "
        "body=iter([b'k=' + p[:9], p[9:20], p[20:] + b'&end=1']), encode_chunked=True); "
        "print(c.getresponse().read().decode())"
    )
    script = (
        f'curl -sS -f -x socks5h://127.0.0.1:3128 -H "X-Key: $API_TOKEN" '
        f"http://host.boxlite.internal:{world.http.port}/socks; echo; "
        f'curl -sS -f -x socks5h://127.0.0.1:3128 -H "X-Key: $API_TOKEN" '
        f"https://host.boxlite.internal:{world.https.port}/socks-tls; echo; "
        f'python3 -c "{chunked}"'
    )
    result, out, err = await sh(box, script)
    assert result.exit_code == 0, (out + err).decode()
    assert out.decode().splitlines() == ["received"] * 3
    socks_plain, chunked_body = world.http.requests
    (socks_tls,) = world.https.requests
    assert f"X-Key: {VALUE}".encode() in socks_plain
    assert f"X-Key: {VALUE}".encode() in socks_tls
    assert chunked_body.endswith(f"k={VALUE}&end=1".encode()), chunked_body
    assert b"BOXLITE_SECRET" not in socks_plain + socks_tls + chunked_body
    assert VALUE not in caplog.text and VALUE not in (out + err).decode()
