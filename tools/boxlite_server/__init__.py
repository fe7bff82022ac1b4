"""A BoxLite REST server over any runtime, for tests and benchmarks.

Serves both API generations from one app: 0.9 (``/v1/default/...``: SSE output,
stdin by POST, OAuth2 client credentials) and 0.10 (``/v1/...``: WebSocket
attach, API key, ``/v1/me``), with strict checking against the OpenAPI
documents, exact output replay after dropped connections, idempotency keys and
fault injection. One command starts it::

    python -m tools.boxlite_server --strict

Tests embed it::

    async with serve(runtime, ServerConfig(strict=True)) as server:
        ...  # server.url, server.v09_url, server.v10_url
        assert server.violations == []
"""

from .app import RunningServer, create_app, serve, serve_in_thread
from .config import ServerConfig
from .faults import CutRule
from .validation import Violation

__all__ = [
    "CutRule",
    "RunningServer",
    "ServerConfig",
    "Violation",
    "create_app",
    "serve",
    "serve_in_thread",
]
