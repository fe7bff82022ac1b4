"""A TCP proxy that cuts connections at random points: fault injection for the REST runtime.

``FaultProxy`` sits between a client and a BoxLite server on 127.0.0.1 and cuts
connections where a seeded ``CutPolicy`` says: mid-request, mid-response, mid-SSE
event, mid-WebSocket frame, in either direction. ``python -m tools.fault_soak`` drives
the REST runtime through it; ``python -m tools.faultproxy`` runs it standalone.
"""

from .policy import CutPlan, CutPolicy
from .proxy import Cut, FaultProxy, ProxyStats

__all__ = ["Cut", "CutPlan", "CutPolicy", "FaultProxy", "ProxyStats"]
