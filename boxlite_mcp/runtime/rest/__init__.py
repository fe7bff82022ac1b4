"""The ``rest`` runtime: any BoxLite REST server, API generation 0.9 or 0.10.

``RestRuntime(RestSettings.from_env())`` speaks to ``BOXLITE_REST_URL``. Modules:
``settings`` (environment, generation choice), ``client`` (HTTP, URLs, retries),
``pool`` (connection pools that stay cheap under concurrency), ``urls`` (parsed once),
``auth``, ``errors`` (HTTP → runtime errors), ``types`` (wire models),
``capabilities`` (gates), ``box``/``runtime`` (the contract), ``execution`` with
``exec_sse`` (0.9, over the bounded reader in ``sse``) and ``exec_ws`` (0.10, over the
lean ``websocket``; output is buffered by the shared ``runtime.output``), ``files``.
"""

from .box import RestBox
from .runtime import RestRuntime
from .settings import RestSettings

__all__ = ["RestBox", "RestRuntime", "RestSettings"]
