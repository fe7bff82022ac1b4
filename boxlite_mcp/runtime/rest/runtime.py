"""``RestRuntime``: the runtime contract on any BoxLite REST server, 0.9 or 0.10."""

from __future__ import annotations

# asyncio: execution tasks outlive calls; closing the runtime cancels them.
import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx

from ..errors import (
    AlreadyExistsError,
    InternalError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from ..network.policy import AllowList, PolicyError, for_server
from ..network.secrets import Secret, SecretError, for_box, placeholder, to_spec
from ..shared import validation
from ..types import (
    BoxInfo,
    BoxOptions,
    Capabilities,
    ExposedPort,
    RuntimeInfo,
    RuntimeMetrics,
    check_name,
)
from . import capabilities
from .box import RestBox
from .client import RestClient
from .errors import unavailable
from .ports import PublishedPorts, port_specs
from .settings import RestSettings
from .types import ImageInfo, ListBoxesResponse, WireBox, WireRuntimeMetrics, parse

#: Fields of BoxOptions a 0.10 create request cannot carry (its schema forbids them).
#: ``ports`` is exposed through the tunnel after create instead.
_NOT_IN_010 = frozenset({"auto_remove", "ports"})
_IMPORT_CHUNK = 256 * 1024
#: Pages of ``GET /boxes`` followed at most (a server inventing tokens cannot loop us).
MAX_PAGES = 1000


def _without_nulls(value: Any) -> Any:
    """Drop ``None`` members: a field set to None is not a field set (schemas forbid null)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


class RestRuntime:
    """Boxes on a BoxLite REST server. One pooled HTTP client; ``aclose()`` releases it."""

    def __init__(
        self,
        settings: RestSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        secrets: Mapping[str, Secret] | None = None,
        net_allow: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else RestSettings.from_env()
        #: The operator's widest list: a box's allow_net must lie within it (sent as is).
        self.net_allow = AllowList.parse(["*"] if net_allow is None else net_allow)
        #: The operator's secrets: sent as SecretSpec with a box that names them.
        self.secrets = dict(secrets or {})
        self.client = RestClient(self.settings, transport=transport)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Ports boxes published at create (0.9).
        self.ports = PublishedPorts()

    def __repr__(self) -> str:
        return f"RestRuntime(url={self.settings.url!r})"

    def _secret_fields(self, options: BoxOptions) -> dict[str, Any]:
        """``secrets`` (SecretSpec, values from the operator) and the placeholders in
        ``env``: the box sees ``NAME=<BOXLITE_SECRET:NAME>``, the server swaps it."""
        enabled = options.network is not None and options.network.mode == "enabled"
        try:
            chosen = for_box(self.secrets, options.secrets, enabled)
        except SecretError as exc:
            raise InvalidArgumentError(str(exc)) from None
        env = dict(options.env or {})
        env.update({s.name: placeholder(s.name) for s in chosen.values()})
        return {"secrets": [to_spec(s) for s in chosen.values()], "env": env}

    def _box(self, body: bytes, what: str) -> RestBox:
        return RestBox(self.client, self._tasks, self.ports, parse(WireBox, body, what).to_info())

    async def info(self) -> RuntimeInfo:
        await self.client.ensure_ready()
        config = await self.client.config()
        caps = config.capabilities.to_capabilities() if config.capabilities else Capabilities()
        details = {
            "path": (await self.client.url()).removeprefix(self.settings.url) or "/",
            "auth": self.client.auth_scheme,
            "secrets": (", ".join(s.name for s in self.secrets.values()) or "none configured")
            + "; sent with a box that names them, as BoxLite SecretSpec (the server swaps "
            "the value into the box's HTTP(S) requests)",
            "box_expose": "the server's service tunnel (API 0.10); on 0.9 only the ports "
            "named at box_create (ports), which 0.9 publishes only then",
            "ports": "box_create's ports: in the create request as PortSpec (API 0.9, the "
            "host port chosen by this client); exposed through the tunnel right after "
            "create (API 0.10)",
        }
        return RuntimeInfo(
            name="rest",
            isolation=(
                "whatever the BoxLite server at this URL isolates boxes with: hardware "
                "micro-VMs on a BoxLite server, or what its own runtime provides"
            ),
            endpoint=self.settings.url,
            api_generation=self.client.generation,
            capabilities=caps,
            details=details,
        )

    async def create(self, options: BoxOptions) -> RestBox:
        options = validation.box_options(options)
        body = _without_nulls(options.set_fields())
        body.pop("secrets", None)
        if options.network is not None and options.network.mode == "enabled":
            try:
                allow = for_server(self.net_allow, options.network.allow_net)
            except PolicyError as exc:
                raise InvalidArgumentError(f"network.allow_net: {exc}") from None
            body["network"] = {"mode": "enabled", **({"allow_net": allow} if allow else {})}
        if options.secrets:
            body.update(self._secret_fields(options))
        await self.client.ensure_ready()
        published: list[ExposedPort] = []
        if self.client.generation == "0.10":
            body = {key: value for key, value in body.items() if key not in _NOT_IN_010}
        elif options.ports:
            body["ports"], published = port_specs(self.settings.url, options.ports)
        response = await self.client.request(
            "POST",
            await self.client.url("boxes"),
            json=body,
            idempotency_key=True,
            what="create a box" + (f" named {options.name!r}" if options.name else ""),
        )
        box = self._box(response.content, "create a box")
        for exposed in published:
            self.ports.add(box.id, exposed)
        return box

    async def get(self, box: str) -> RestBox:
        if not box or "/" in box:
            raise InvalidArgumentError(f"invalid box id or name {box!r}")
        try:
            response = await self.client.request(
                "GET", await self.client.url("boxes", box), what=f"find box {box!r}"
            )
        except NotFoundError:
            raise NotFoundError(await self._not_found(box)) from None
        return self._box(response.content, f"find box {box!r}")

    async def _not_found(self, box: str) -> str:
        known = [info.name or info.id for info in await self.list()][:20]
        listing = ", ".join(known) if known else "none"
        return f"no box {box!r} on the BoxLite server; boxes that exist: {listing}"

    async def list(self) -> list[BoxInfo]:
        return [wire.to_info() async for wire in self._pages()]

    async def _pages(self) -> AsyncIterator[WireBox]:
        url = await self.client.url("boxes")
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {"pageToken": token} if token else None
            response = await self.client.request("GET", url, params=params, what="list boxes")
            page = parse(ListBoxesResponse, response.content, "list boxes")
            for wire in page.boxes:
                yield wire
            token = page.next_page_token
            if not token or token in seen:  # a server repeating a token must not loop us
                return
            seen.add(token)
        raise InternalError(
            f"the server kept paginating the box list past {MAX_PAGES} pages; refused"
        )

    async def remove(self, box: str, force: bool = False) -> None:
        if not box or "/" in box:
            raise InvalidArgumentError(f"invalid box id or name {box!r}")
        try:
            await self.client.request(
                "DELETE",
                await self.client.url("boxes", box),
                params={"force": "true"} if force else None,
                idempotency_key=True,
                what=f"remove box {box!r}",
            )
        except InvalidStateError as exc:  # only a running box conflicts with a removal
            raise exc.about(box).requiring("stopped") from None
        self.ports.forget(box)

    async def metrics(self) -> RuntimeMetrics:
        response = await self.client.request(
            "GET", await self.client.url("metrics"), what="read the runtime metrics"
        )
        return parse(WireRuntimeMetrics, response.content, "read metrics").to_metrics()

    async def import_box(self, archive: Path, name: str | None = None) -> RestBox:
        await capabilities.require(self.client, "import")
        if name is not None:
            check_name(name, "box")
        path = anyio.Path(archive)
        if not await path.is_file():
            raise NotFoundError(f"archive {archive} does not exist or is not a file")
        if name is not None:
            # importBox documents no conflict answer in either generation: check first.
            taken = await self.client.request(
                "GET",
                await self.client.url("boxes", name),
                ok_statuses=(404,),
                what=f"check whether box name {name!r} is free",
            )
            if taken.status_code != 404:
                raise AlreadyExistsError(
                    f"a box named {name!r} already exists; import under another name"
                )
        size = (await path.stat()).st_size

        async def body() -> AsyncIterator[bytes]:
            async with await anyio.open_file(archive, "rb") as f:
                while chunk := await f.read(_IMPORT_CHUNK):
                    yield chunk

        url = await self.client.url("boxes", "import")
        try:
            response = await self.client.request(
                "POST",
                url,
                content=body,
                params={"name": name} if name else None,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                what=f"import {archive.name}",
            )
        except httpx.TransportError as exc:  # the upload body failed mid-way
            raise unavailable(url, exc) from exc
        return self._box(response.content, f"import {archive.name}")

    async def pull_image(self, reference: str) -> ImageInfo:
        """Pull an image into the server's cache (``POST /images/pull``)."""
        if not reference:
            raise InvalidArgumentError("an image reference is required, e.g. alpine:latest")
        response = await self.client.request(
            "POST",
            await self.client.url("images", "pull"),
            json={"reference": reference},
            idempotency_key=True,
            what=f"pull image {reference!r}",
        )
        return parse(ImageInfo, response.content, f"pull image {reference!r}")

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.aclose()

    async def __aenter__(self) -> RestRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
