"""Capability gates: refuse an operation the server does not advertise, before sending it.

``GET /v1/config`` is read once per runtime (``RestClient.config``). An operation
runs only when its flag under ``capabilities`` is present and true:

==========  ==========================  ==========================================
operation   flag                        where documented
==========  ==========================  ==========================================
snapshots   ``snapshots_enabled``       both OpenAPI documents
clone       ``clone_enabled``           both OpenAPI documents
export      ``export_enabled``          both OpenAPI documents
import      ``import_enabled``          neither document; every BoxLite server of
                                        both generations (``boxlite serve``, the
                                        reference server, the cloud) sends it, and
                                        both reference clients gate import on it
==========  ==========================  ==========================================
"""

from __future__ import annotations

from typing import Literal

from ..errors import UnsupportedError
from .client import RestClient

Capability = Literal["snapshots", "clone", "export", "import"]

_FLAGS: dict[Capability, str] = {
    "snapshots": "snapshots_enabled",
    "clone": "clone_enabled",
    "export": "export_enabled",
    "import": "import_enabled",
}


async def require(client: RestClient, capability: Capability) -> None:
    """Return if the server offers ``capability``; else UnsupportedError naming it."""
    config = await client.config()
    flag = _FLAGS[capability]
    value = getattr(config.capabilities, flag, None) if config.capabilities else None
    if value is True:
        return
    state = "false" if value is False else "absent"
    raise UnsupportedError(
        f"the BoxLite server at {client.settings.url} does not offer {capability} "
        f"(capabilities.{flag} is {state} in GET /v1/config); nothing was sent. "
        f"Use a server with {capability} enabled, or do without it."
    )
