"""A deliberately malicious BoxLite server, both API generations, for fuzzing the client.

Each behaviour in ``catalogue.BEHAVIOURS`` lives under its own base URL,
``{server}/b/{behaviour}``: a REST client configured with that URL meets a server
that answers correctly (``base``) until the one operation the behaviour attacks:
tar archives that climb out of the destination or explode (``tars``), malformed
SSE streams and WebSocket frames (``streams``), bogus JSON, huge, compressed or
trickling bodies and HTTP broken on the wire (``bodies``, ``raw``).

    async with serve_hostile(HostileConfig()) as server:
        settings = RestSettings(url=server.base_url("tar-dotdot"), api="0.9")

``python -m tools.hostile_server`` runs it standalone; ``python -m tools.hostile_fuzz``
drives the REST runtime through every behaviour.
"""

from .app import RunningHostile, create_app, serve_hostile
from .base import HostileConfig
from .catalogue import BEHAVIOURS, BY_NAME, Behaviour
from .tars import MARKER

__all__ = [
    "BEHAVIOURS",
    "BY_NAME",
    "MARKER",
    "Behaviour",
    "HostileConfig",
    "RunningHostile",
    "create_app",
    "serve_hostile",
]
