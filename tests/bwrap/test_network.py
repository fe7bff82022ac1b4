"""A bwrap box's own network, with real traffic on the host's loopback only.

The "internet" here is HTTP servers this test starts on 127.0.0.1; the operator's
list (``net_allow``) opens one of them as ``host.boxlite.internal:PORT``. No
packet goes to any address outside 127.0.0.0/8: names the box asks for are
refused by policy before anything is resolved on the host.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boxlite_mcp.runtime.bwrap import BwrapRuntime
from boxlite_mcp.runtime.bwrap.box import BwrapBox
from boxlite_mcp.runtime.errors import InvalidArgumentError
from boxlite_mcp.runtime.types import BoxOptions, ExecRequest, NetworkSpec

from .conftest import run, sh

pytestmark = pytest.mark.anyio

FETCH = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print("HTTP", e.code, e.read().decode()); sys.exit(3)
except Exception as e:
    print("ERR", e); sys.exit(4)
"""


#: Asks the kernel for a new nftables table in the box's namespace; exits 0 only if
#: the kernel accepted it (box root lacks CAP_NET_ADMIN there, so it must not).
NFT_NEW_TABLE = "; ".join(
    [
        "import socket, struct, sys",
        "m = lambda t, f, q, p: struct.pack('=IHHII', 16 + len(p), t, f, q, 0) + p",
        "g = lambda fam, r=0: struct.pack('=BBH', fam, 0, socket.htons(r))",
        "a = struct.pack('=HH', 12, 1) + b'boxlite' + bytes(1)",
        "s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)",
        "s.sendall(m(16, 1, 1, g(0, 10)) + m(2560, 1029, 2, g(2) + a) + m(17, 1, 3, g(0, 10)))",
        "d = s.recv(65536)",
        "sys.exit(0 if struct.unpack('=H', d[4:6])[0] == 2 and d[16:20] == bytes(4) else 1)",
    ]
)


async def _serve(body: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def servers() -> AsyncIterator[tuple[int, int, int]]:
    """(allowed port, other port, the "MCP server's own" port), all on 127.0.0.1."""
    started = [await _serve(b"allowed"), await _serve(b"other"), await _serve(b"mcp")]
    yield started[0][1], started[1][1], started[2][1]
    for server, _ in started:
        server.close()


@pytest.fixture
async def netrt(tmp_path: Path, servers: tuple[int, int, int]) -> AsyncIterator[BwrapRuntime]:
    rt = BwrapRuntime(home=tmp_path / "home", net_allow=[f"host.boxlite.internal:{servers[0]}"])
    try:
        yield rt
    finally:
        await rt.aclose()


async def _netbox(rt: BwrapRuntime, allow_net: list[str] | None = None) -> BwrapBox:
    return await rt.create(BoxOptions(network=NetworkSpec(mode="enabled", allow_net=allow_net)))


async def fetch(box: BwrapBox, url: str) -> tuple[int, str]:
    result, out, err = await run(box, "python3", "-c", FETCH, url)
    return result.exit_code, (out + err).decode()


async def test_reaches_only_the_listed_host_port(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    allowed, other, mcp = servers
    box = await _netbox(netrt)
    assert await fetch(box, f"http://host.boxlite.internal:{allowed}/") == (0, "allowed\n")
    for port in (other, mcp):
        code, text = await fetch(box, f"http://host.boxlite.internal:{port}/")
        assert code == 3 and "HTTP 403" in text, text
        assert f"host.boxlite.internal:{port}" in text and "not listed" in text
        assert "--net-allow" in text
    # The host's loopback by address: the box's own loopback, where nothing listens.
    code, text = await fetch(box, f"http://127.0.0.1:{allowed}/")
    assert code == 4 and "refused" in text.lower(), text
    info = await box.info()
    assert info.network is not None and info.network.mode == "enabled"


async def test_https_connect_and_socks_refused_fast_with_reason(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    allowed, other, _ = servers
    box = await _netbox(netrt)
    # curl with HTTPS_PROXY (CONNECT) and with ALL_PROXY (SOCKS5).
    _, out, err = await sh(
        box,
        f"curl -sS -m 5 https://host.boxlite.internal:{other}/; "
        f"echo; curl -sS -m 5 --noproxy '' https://127.0.0.1:{other}/; "
        f"echo; curl -sS -m 5 --proxy socks5h://127.0.0.1:3128 "
        f"http://host.boxlite.internal:{allowed}/; echo; curl -sS -m 5 --proxy "
        f"socks5h://127.0.0.1:3128 http://host.boxlite.internal:{other}/",
    )
    text = (out + err).decode()
    assert text.count("403") == 2, text  # CONNECT refused with 403, twice
    assert "\nallowed\n" in text  # SOCKS5 to the listed port works
    assert "SOCKS5 connection to host.boxlite.internal. (2)" in text, text  # "not allowed"
    network = netrt._states[box.id].network
    assert network is not None
    denied = [d.destination for d in network.denials]
    assert f"127.0.0.1:{other}" in denied and f"host.boxlite.internal:{other}" in denied


async def test_box_sees_only_its_own_sockets(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    box = await _netbox(netrt)
    _, out, _ = await sh(box, "cat /proc/net/tcp /proc/net/tcp6")
    ports = {
        int(line.split()[1].rsplit(":", 1)[1], 16)
        for line in out.decode().splitlines()
        if ":" in line.split()[1]
    }
    assert not ports & set(servers)
    assert 3128 in ports  # the proxy, served from outside the box


async def test_box_root_cannot_widen_its_policy(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    allowed, other, _ = servers
    box = await _netbox(netrt)
    attempts = {
        "route": "ip route add default dev lo",
        "address": "ip addr add 10.9.9.9/32 dev lo",
        "link": "ip link add dummy0 type dummy",
        "resolv.conf": "echo nameserver 10.0.0.1 > /etc/resolv.conf",
        "resolv.conf unmount": "umount /etc/resolv.conf",
        "ip_forward": "echo 1 > /proc/sys/net/ipv4/ip_forward",
        "raw socket": "python3 -c 'import socket; socket.socket(socket.AF_INET, "
        "socket.SOCK_RAW, socket.IPPROTO_TCP)'",
        "host netns": "nsenter --net=/proc/1/ns/net true",
        "firewall (nftables over netlink)": f"python3 -c '{NFT_NEW_TABLE}'",
    }
    for what, script in attempts.items():
        result, _, _ = await sh(box, script + " 2>/dev/null")
        assert result.exit_code != 0, what
    # The nftables probe does work where its caller may: host root in a throwaway namespace.
    control = await anyio.run_process(
        ["unshare", "-n", "python3", "-c", NFT_NEW_TABLE], check=False
    )
    assert control.returncode == 0
    _, out, _ = await sh(box, "cat /etc/resolv.conf; ip route; cat /proc/net/dev")
    assert "nameserver 127.0.0.1" in out.decode()
    assert "default" not in out.decode()
    # Taking the proxy's port away is not possible either: it is bound already.
    result, _, _ = await run(
        box, "python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1', 3128))"
    )
    assert result.exit_code != 0
    # And after all that: still exactly the listed destination.
    code, text = await fetch(box, f"http://host.boxlite.internal:{other}/")
    assert code == 3 and "HTTP 403" in text
    assert await fetch(box, f"http://host.boxlite.internal:{allowed}/") == (0, "allowed\n")


async def test_dns_answers_per_policy(netrt: BwrapRuntime, servers: tuple[int, int, int]) -> None:
    box = await _netbox(netrt)
    result, out, _ = await sh(box, "getent hosts host.boxlite.internal")
    assert result.exit_code == 0 and out.split()[0] == b"198.18.0.1"
    result, _, _ = await sh(box, "getent hosts blocked.example.org")
    assert result.exit_code != 0
    network = netrt._states[box.id].network
    assert network is not None
    assert any(d.destination == "blocked.example.org (DNS)" for d in network.denials)


async def test_dns_over_tcp_answers_per_policy(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    """glibc's resolver asked to use TCP (RES_OPTIONS=use-vc) gets the same answers."""
    box = await _netbox(netrt)
    result, out, _ = await sh(box, "RES_OPTIONS=use-vc getent hosts host.boxlite.internal")
    assert result.exit_code == 0 and out.split()[0] == b"198.18.0.1"
    result, _, _ = await sh(box, "RES_OPTIONS=use-vc getent hosts blocked-tcp.example.org")
    assert result.exit_code != 0
    network = netrt._states[box.id].network
    assert network is not None
    assert any(d.destination == "blocked-tcp.example.org (DNS)" for d in network.denials)


async def test_allow_net_narrows_the_operators_set(
    tmp_path: Path, servers: tuple[int, int, int]
) -> None:
    allowed, other, _ = servers
    rt = BwrapRuntime(
        home=tmp_path / "home",
        net_allow=[f"host.boxlite.internal:{allowed}", f"host.boxlite.internal:{other}"],
    )
    try:
        box = await _netbox(rt, [f"host.boxlite.internal:{other}"])
        assert await fetch(box, f"http://host.boxlite.internal:{other}/") == (0, "other\n")
        code, text = await fetch(box, f"http://host.boxlite.internal:{allowed}/")
        assert code == 3 and "not listed" in text
        assert f"allow_net: host.boxlite.internal:{other} (within" in text
    finally:
        await rt.aclose()


async def test_stopping_the_box_ends_its_network(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    box = await _netbox(netrt)
    await sh(box, "true")
    state = netrt._states[box.id]
    network = state.network
    assert network is not None
    fd = network.netns.fd
    await box.stop()
    assert state.network is None and network.netns.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)
    assert await fetch(box, f"http://host.boxlite.internal:{servers[0]}/") == (0, "allowed\n")


async def test_box_without_network_has_no_proxy(netrt: BwrapRuntime) -> None:
    box = await netrt.create(BoxOptions())
    _, out, _ = await sh(box, "echo ${HTTP_PROXY:-none}")
    assert out == b"none\n"
    assert netrt._states[box.id].network is None


def _wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel (built by hand: no network, no build backend)."""
    import base64
    import hashlib
    import zipfile

    name = "boxlite_probe_pkg-1.0-py3-none-any.whl"
    files = {
        "boxlite_probe_pkg/__init__.py": b"VALUE = 'installed through the box proxy'\n",
        "boxlite_probe_pkg-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: boxlite-probe-pkg\nVersion: 1.0\n"
        ),
        "boxlite_probe_pkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("boxlite_probe_pkg-1.0.dist-info/RECORD,,")
    files["boxlite_probe_pkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    (directory / "simple" / "boxlite-probe-pkg").mkdir(parents=True)
    with zipfile.ZipFile(directory / "simple" / "boxlite-probe-pkg" / name, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    (directory / "simple" / "boxlite-probe-pkg" / "index.html").write_text(
        f'<html><body><a href="{name}">{name}</a></body></html>\n'
    )
    return directory


async def test_pip_install_from_a_local_index(tmp_path: Path) -> None:
    """A PEP 503 index served by ``python -m http.server`` on loopback; allow_net names it."""
    import socket
    import subprocess
    import sys

    index = _wheel(tmp_path / "index")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await anyio.open_process(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=index,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rt = BwrapRuntime(home=tmp_path / "home", net_allow=["*", f"host.boxlite.internal:{port}"])
    try:
        for _ in range(200):  # polled: the index server starts on its own
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.02)
        box = await _netbox(rt, [f"host.boxlite.internal:{port}"])
        url = f"http://host.boxlite.internal:{port}/simple/"
        result, out, err = await sh(
            box,
            f"python3 -m pip install -q --disable-pip-version-check --no-deps --target /opt/t "
            f"--index-url {url} --trusted-host host.boxlite.internal boxlite-probe-pkg && "
            "PYTHONPATH=/opt/t python3 -c 'import boxlite_probe_pkg as p; print(p.VALUE)'",
            timeout_seconds=120,
        )
        assert result.exit_code == 0, (out + err).decode()
        assert out.decode().strip().endswith("installed through the box proxy")
        network = rt._states[box.id].network
        assert network is not None and not network.denials  # nothing else was tried
        code, text = await fetch(box, "http://pypi.org/simple/")  # the rest: refused
        assert code == 3 and "pypi.org:80" in text and "not listed" in text
    finally:
        await rt.aclose()
        server.terminate()
        await server.wait()


async def _get(url: str) -> bytes:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    try:
        async with asyncio.timeout(10):
            return await reader.read(-1)
    finally:
        writer.close()


async def _start_http_server(box: BwrapBox, port: int) -> None:
    execution = await box.exec(
        ExecRequest(
            command="sh",
            args=[
                "-c",
                f"mkdir -p /srv && echo served-from-box > /srv/index.html && "
                f"cd /srv && exec python3 -m http.server {port} --bind 127.0.0.1",
            ],
        )
    )
    await execution.close_stdin()
    for _ in range(500):  # polled: the server in the box starts on its own
        result, _, _ = await sh(
            box, f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 1)\""
        )
        if result.exit_code == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the box's http.server did not start")


async def test_expose_serves_a_box_http_server_to_the_host(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    box = await netrt.create(BoxOptions())  # no network needed to be reached from the host
    await _start_http_server(box, 8000)
    exposed = await box.expose(8000)
    assert exposed.port == 8000 and exposed.url == f"http://127.0.0.1:{exposed.host_port}/"
    assert (await box.expose(8000)) == exposed  # idempotent
    reply = await _get(exposed.url)
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"served-from-box\n")
    # A raw TCP client too: the bytes go through unchanged.
    reader, writer = await asyncio.open_connection("127.0.0.1", exposed.host_port)
    writer.write(b"HEAD / HTTP/1.0\r\n\r\n")
    async with asyncio.timeout(10):
        assert (await reader.read(-1)).startswith(b"HTTP/1.0 200")
    writer.close()
    info = await box.info()
    assert info.network_status is not None and info.network_status.exposed == [exposed]
    # Another box, with network, cannot reach it through host.boxlite.internal.
    other = await _netbox(netrt)
    code, text = await fetch(other, f"http://host.boxlite.internal:{exposed.host_port}/")
    assert code == 3 and "HTTP 403" in text, text
    # Nothing listens on 8001 in the box: the host's client sees the connection close.
    assert await _get((await box.expose(8001)).url) == b""
    # It ends with the box.
    await box.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", exposed.host_port)
    assert (await box.info()).network_status is None


@pytest.mark.parametrize("port", [0, -1, 65536, True, "80"])
async def test_expose_refuses_bad_ports(netrt: BwrapRuntime, port: object) -> None:
    box = await netrt.create(BoxOptions())
    with pytest.raises(InvalidArgumentError, match="not a TCP port"):
        await box.expose(port)  # type: ignore[arg-type]
    assert (await box.info()).status.value == "configured"  # nothing started


async def test_info_and_metrics_show_policy_denials_and_traffic(
    netrt: BwrapRuntime, servers: tuple[int, int, int]
) -> None:
    allowed, other, _ = servers
    box = await _netbox(netrt)
    assert (await fetch(box, f"http://host.boxlite.internal:{allowed}/"))[0] == 0
    assert (await fetch(box, f"http://host.boxlite.internal:{other}/"))[0] == 3
    status = (await box.info()).network_status
    assert status is not None
    assert f"host.boxlite.internal:{allowed}" in status.policy
    assert status.proxy == "http://127.0.0.1:3128 (in the box)"
    (denial,) = status.recent_denials
    assert denial.destination == f"host.boxlite.internal:{other}" and "not listed" in denial.reason
    metrics = await box.metrics()
    assert metrics.network_tcp_connections == 1
    assert (metrics.network_bytes_sent or 0) > 0 and (metrics.network_bytes_received or 0) > 0


async def test_server_own_port_refused_even_where_all_host_ports_are_listed(
    tmp_path: Path, servers: tuple[int, int, int]
) -> None:
    allowed, _, mcp = servers
    rt = BwrapRuntime(
        home=tmp_path / "home", net_allow=["host.boxlite.internal"], server_ports=[mcp]
    )
    try:
        box = await _netbox(rt)
        assert await fetch(box, f"http://host.boxlite.internal:{allowed}/") == (0, "allowed\n")
        code, text = await fetch(box, f"http://host.boxlite.internal:{mcp}/")
        assert code == 3 and "MCP server's own" in text
    finally:
        await rt.aclose()


async def test_network_in_a_rootfs_without_etc(
    netrt: BwrapRuntime, servers: tuple[int, int, int], tmp_path: Path
) -> None:
    """A small image without /etc/resolv.conf still gets the box's DNS and proxy."""
    from boxlite_mcp.runtime.local.oci import host_rootfs

    for dangling in (False, True):  # absent, or a link to a file the image lacks
        root = host_rootfs(tmp_path / f"root-{dangling}")
        resolv = root / "etc" / "resolv.conf"
        if resolv.exists() or resolv.is_symlink():
            resolv.unlink()
        if dangling:
            resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
        box = await netrt.create(
            BoxOptions(rootfs_path=str(root), network=NetworkSpec(mode="enabled"))
        )
        result, out, err = await sh(box, "cat /etc/resolv.conf; echo $HTTP_PROXY")
        assert result.exit_code == 0, err
        assert out.decode().endswith("nameserver 127.0.0.1\nhttp://127.0.0.1:3128\n")


async def test_long_destinations_are_clipped_in_box_info(netrt: BwrapRuntime) -> None:
    box = await _netbox(netrt)
    name = ".".join(["a" * 60] * 4)  # 243 characters: a valid, unlisted name
    await run(
        box,
        "python3",
        "-c",
        "\n".join(
            [
                "import socket",
                "s = socket.create_connection(('127.0.0.1', 3128))",
                f"s.sendall(b'CONNECT {name}:443 HTTP/1.1\\r\\n\\r\\n')",
                "s.recv(1000)",
                "s = socket.create_connection(('127.0.0.1', 3128))",
                "s.sendall(b'CONNECT ' + b'x' * 20000 + b':443 HTTP/1.1\\r\\n\\r\\n')",
                "s.recv(1000)",
            ]
        ),
    )
    status = (await box.info()).network_status
    assert status is not None and len(status.recent_denials) == 2
    assert all(len(d.destination) <= 300 and len(d.reason) <= 600 for d in status.recent_denials)
