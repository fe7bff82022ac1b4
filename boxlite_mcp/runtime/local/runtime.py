"""The ``local`` runtime: the runtime contract on the official ``boxlite`` SDK.

Two ways to open it, one code path:

- ``LocalRuntime.embedded(home)``: BoxLite's embedded runtime, micro-VMs on this
  host (needs hardware virtualisation: Linux KVM, or macOS on Apple Silicon);
- ``LocalRuntime.rest(url, api_key)``: the SDK's own REST client
  (``Boxlite.rest``), every call going to a BoxLite server instead of a VM. The
  tests use it to run the contract suite through the SDK where no VM can boot.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import shutil
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx

from ...settings import HOME_ENV
from ..errors import (
    BoxliteError,
    ImageError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)
from ..network.policy import AllowList, PolicyError, for_server
from ..network.secrets import Secret, SecretError, for_box
from ..shared import validation
from ..types import (
    BoxInfo,
    BoxOptions,
    Capabilities,
    NetworkSpec,
    RuntimeInfo,
    RuntimeMetrics,
    check_name,
)
from . import convert, files, oci, sdk
from .box import LocalBox
from .errors import Translator
from .execution import LocalExecution

logger = logging.getLogger(__name__)

EMBEDDED_ISOLATION = (
    "each box is a BoxLite micro-VM with its own guest kernel, isolated from the host by "
    "hardware virtualisation (KVM or Hypervisor.framework)"
)
REST_ISOLATION = (
    "boxes run on the BoxLite server this runtime reaches through the official SDK's REST "
    "client; their isolation is the server's (micro-VMs on a BoxLite host)"
)
#: How many existing boxes a not-found message names.
_NAMED_IN_ERRORS = 20


class LocalRuntime:
    """Boxes through the official SDK's ``Boxlite`` runtime object."""

    def __init__(
        self,
        sdk_runtime: Any,
        *,
        home: Path | None = None,
        url: str | None = None,
        secrets: tuple[str, ...] = (),
        box_secrets: Mapping[str, Secret] | None = None,
        net_allow: Sequence[str] | None = None,
    ) -> None:
        self._sdk_module = sdk.load()
        #: The operator's widest list: a box's allow_net must lie within it.
        self.net_allow = AllowList.parse(["*"] if net_allow is None else net_allow)
        self._sdk: Any | None = sdk_runtime
        self._home = home
        self._url = url
        #: The operator's secrets, handed to the SDK (``Secret``) for boxes that name them.
        self.box_secrets = dict(box_secrets or {})
        self.errors = Translator((*secrets, *(s.value for s in self.box_secrets.values())))
        self._boxes: weakref.WeakSet[LocalBox] = weakref.WeakSet()
        self._executions: weakref.WeakSet[LocalExecution] = weakref.WeakSet()
        self._capabilities: Capabilities | None = None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def embedded(
        cls,
        home: Path | None = None,
        box_secrets: Mapping[str, Secret] | None = None,
        net_allow: Sequence[str] | None = None,
    ) -> LocalRuntime:
        """BoxLite's embedded VM runtime, its state under ``home``.

        ``home`` defaults to ``BOXLITE_HOME``, else ``~/.boxlite`` (the SDK's own
        default). One runtime at a time may use a home.
        """
        module = sdk.load()
        home = home or Path(os.environ.get(HOME_ENV) or Path.home() / ".boxlite")
        try:
            home.mkdir(parents=True, exist_ok=True)
            runtime = module.Boxlite(module.Options(home_dir=str(home)))
        except OSError as exc:
            raise InvalidArgumentError(f"cannot use {home} as the BoxLite home: {exc}") from exc
        except Exception as exc:
            if "already using directory" in str(exc):
                raise InvalidStateError(
                    f"another BoxLite runtime (another boxlite-mcp or boxlite process) is using "
                    f"{home}; stop it, or give this one its own home (--home or BOXLITE_HOME)"
                ) from exc
            raise Translator().error(exc, f"open the BoxLite runtime in {home}") from exc
        return cls(runtime, home=home, box_secrets=box_secrets, net_allow=net_allow)

    @classmethod
    def rest(
        cls,
        url: str,
        api_key: str | None = None,
        path_prefix: str | None = None,
        box_secrets: Mapping[str, Secret] | None = None,
    ) -> LocalRuntime:
        """The SDK's REST client (``Boxlite.rest``) for the BoxLite server at ``url``."""
        module = sdk.load()
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InvalidArgumentError(
                f"BoxLite server URL must start with http:// or https://, got {url!r}"
            )
        try:
            credential = module.ApiKeyCredential(api_key) if api_key else None
            options = module.BoxliteRestOptions(
                url=url, credential=credential, path_prefix=path_prefix
            )
            runtime = module.Boxlite.rest(options)
        except Exception as exc:
            raise Translator((api_key or "",)).error(
                exc, f"connect the SDK to the BoxLite server at {url}"
            ) from exc
        return cls(runtime, url=url, secrets=(api_key or "",), box_secrets=box_secrets)

    # -- what it is ----------------------------------------------------------------------

    @property
    def remote(self) -> bool:
        """True in REST mode (a server does the work), False for embedded VMs."""
        return self._url is not None

    async def info(self) -> RuntimeInfo:
        details = {
            "mode": "rest" if self.remote else "embedded",
            "sdk": f"boxlite {sdk.version() or 'unknown'}",
            "ports": "box_create's ports are exposed through the SDK's service tunnel "
            "right after create, as box_expose",
        }
        if self._home is not None:
            details["home"] = str(self._home)
        return RuntimeInfo(
            name="local",
            version=sdk.version(),
            isolation=REST_ISOLATION if self.remote else EMBEDDED_ISOLATION,
            endpoint=self._url,
            api_generation="0.10" if self.remote else None,
            capabilities=await self._read_capabilities(),
            details=details,
        )

    # -- boxes ---------------------------------------------------------------------------

    async def create(self, options: BoxOptions) -> LocalBox:
        module = self._runtime_sdk()
        options = validation.box_options(options)
        chosen = self._chosen_secrets(options)
        if options.network is not None and options.network.mode == "enabled":
            try:
                allow = for_server(self.net_allow, options.network.allow_net)
            except PolicyError as exc:
                raise InvalidArgumentError(f"network.allow_net: {exc}") from None
            options = options.model_copy(
                update={"network": NetworkSpec(mode="enabled", allow_net=allow)}
            )
        rootfs = await self._resolve_rootfs(options.rootfs_path)
        what = f"create box {options.name!r}" if options.name else "create a box"
        async with self.errors.translated(what):
            sdk_options = convert.box_options(
                self._sdk_module, options, rest=self.remote, rootfs_path=rootfs, secrets=chosen
            )
            handle = await module.create(sdk_options, name=options.name)
        return self.wrap(handle)

    def _chosen_secrets(self, options: BoxOptions) -> list[Secret]:
        enabled = options.network is not None and options.network.mode == "enabled"
        try:
            return list(for_box(self.box_secrets, options.secrets, enabled).values())
        except SecretError as exc:
            raise InvalidArgumentError(str(exc)) from None

    async def get(self, box: str) -> LocalBox:
        handle = await self.sdk_get(box)
        if handle is None:
            raise NotFoundError(await self._not_found(box))
        return self.wrap(handle)

    async def list(self) -> list[BoxInfo]:
        raw = await self.errors.call("list boxes", self._runtime_sdk().list_info())
        return [convert.box_info(item) for item in raw or []]

    async def remove(self, box: str, force: bool = False) -> None:
        info = await self.sdk_info(box)
        if info is None:
            raise NotFoundError(await self._not_found(box))
        status = convert.box_info(info).status.value
        if not force and status in ("running", "stopping", "paused"):
            raise InvalidStateError(
                f"box {box!r} is {status}; stop it first, or remove it with force",
                box=box,
                required_state="stopped",
            )
        await self.errors.call(
            f"remove box {box!r}", self._runtime_sdk().remove(str(info.id), force=force)
        )

    async def metrics(self) -> RuntimeMetrics:
        raw = await self.errors.call("read runtime metrics", self._runtime_sdk().metrics())
        metrics = convert.runtime_metrics(raw)
        if not self.remote:
            # The embedded SDK counts every box it has a handle for as running,
            # configured ones included; the boxes' own states are the truth.
            boxes = await self.list()
            metrics.num_running_boxes = sum(1 for box in boxes if box.running)
        return metrics

    async def import_box(self, archive: Path, name: str | None = None) -> LocalBox:
        if name is not None:
            check_name(name, "box")
        if not files.archive_exists(archive):
            raise NotFoundError(f"archive {archive} does not exist (or is not a file)")
        handle = await self.errors.call(
            f"import {archive}", self._runtime_sdk().import_box(str(archive), name=name)
        )
        return self.wrap(handle)

    async def aclose(self) -> None:
        """Stop watching executions and drop the SDK runtime (releasing its home lock).

        Embedded boxes that were not created detached stop with the runtime, as
        BoxLite does; REST-mode boxes stay as they are on the server.
        """
        runtime, self._sdk = self._sdk, None
        if runtime is None:
            return
        for execution in list(self._executions):
            await execution.aclose()
        if not self.remote:
            try:
                await runtime.shutdown(10)
            except Exception as exc:  # closing must not fail on a runtime already in trouble
                logger.warning("BoxLite runtime shutdown: %s", exc)
        for box in list(self._boxes):
            box.release()
        del runtime
        gc.collect()  # the native runtime holds its home's lock until it is freed

    # -- for LocalBox --------------------------------------------------------------------

    def wrap(self, handle: Any) -> LocalBox:
        box = LocalBox(self, handle)
        self._boxes.add(box)
        return box

    def track(self, execution: LocalExecution) -> None:
        self._executions.add(execution)

    async def sdk_get(self, box: str) -> Any:
        """The SDK's handle for a box id or name, or None."""
        if not box:
            raise InvalidArgumentError("a box id or name is required")
        return await self.errors.call(f"find box {box!r}", self._runtime_sdk().get(box))

    async def sdk_info(self, box: str) -> Any:
        """The SDK's info for a box id or name, or None."""
        if not box:
            raise InvalidArgumentError("a box id or name is required")
        return await self.errors.call(f"read box {box!r}", self._runtime_sdk().get_info(box))

    # -- internals -----------------------------------------------------------------------

    def _runtime_sdk(self) -> Any:
        if self._sdk is None:
            raise InvalidStateError("this local runtime is closed; open a new one")
        return self._sdk

    async def _not_found(self, box: str) -> str:
        try:
            boxes = await self.list()
        except BoxliteError:
            return f"no box {box!r}"
        if not boxes:
            return f"no box {box!r}; there are no boxes (create one first)"
        named = [f"{b.id} ({b.name})" if b.name else b.id for b in boxes[:_NAMED_IN_ERRORS]]
        more = f" and {len(boxes) - _NAMED_IN_ERRORS} more" if len(boxes) > _NAMED_IN_ERRORS else ""
        return f"no box {box!r}; existing boxes: {', '.join(named)}{more}"

    async def _resolve_rootfs(self, rootfs_path: str | None) -> str | None:
        """The path to hand the SDK for ``rootfs_path``.

        In REST mode the path is the server's, passed through. Embedded, BoxLite
        loads only OCI image layouts, so a plain rootfs directory is packed into a
        layout under the home first (content-addressed, reused when unchanged).
        """
        if rootfs_path is None or self.remote:
            return rootfs_path
        assert self._home is not None
        return str(await anyio.to_thread.run_sync(_layout_for_rootfs, rootfs_path, self._home))

    async def _read_capabilities(self) -> Capabilities:
        if self._capabilities is None:
            if self.remote:
                capabilities = await _server_capabilities(str(self._url))
            else:
                capabilities = Capabilities(
                    snapshots_enabled=True,
                    clone_enabled=True,
                    export_enabled=True,
                    import_enabled=True,
                    tty_enabled=True,
                    streaming_enabled=True,
                )
            # Both are the SDK's, whatever is behind it: it hands output over as
            # str decoded from UTF-8 (invalid bytes become U+FFFD), and it reads
            # output into unbounded queues whether or not anyone consumes it.
            capabilities.binary_output = False
            capabilities.output_backpressure = False
            self._capabilities = capabilities
        return self._capabilities


def _layout_for_rootfs(rootfs_path: str, home: Path) -> Path:
    """An OCI layout for ``rootfs_path``: itself if it is one, else its directory
    packed into a layout under ``home``, keyed by content."""
    rootfs = Path(rootfs_path).expanduser()
    if not rootfs.is_absolute():
        raise InvalidArgumentError(f"rootfs_path {rootfs_path!r} must be an absolute path")
    if not rootfs.is_dir():
        raise ImageError(
            f"rootfs_path {rootfs_path} does not exist or is not a directory; "
            "give an OCI image layout or a root filesystem directory"
        )
    if oci.is_layout(rootfs):
        return rootfs
    layouts = home / "mcp-layouts"
    layouts.mkdir(parents=True, exist_ok=True)
    scratch = layouts / f".build-{os.getpid()}-{id(rootfs)}"
    try:
        oci.build_layout(rootfs, scratch)
        digest = hashlib.sha256((scratch / "index.json").read_bytes()).hexdigest()[:32]
        final = layouts / digest
        if final.exists():
            return final
        os.replace(scratch, final)
        return final
    except OSError as exc:
        raise ImageError(f"cannot pack rootfs {rootfs} into an OCI layout: {exc}") from exc
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


async def _server_capabilities(url: str) -> Capabilities:
    """The server's ``GET /v1/config`` capabilities (no auth needed), as the SDK reads them."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(f"{url}/v1/config")
            response.raise_for_status()
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("could not read %s/v1/config: %s", url, exc)
        return Capabilities()
    raw = body.get("capabilities") if isinstance(body, dict) else None
    return Capabilities.model_validate(raw if isinstance(raw, dict) else {})
