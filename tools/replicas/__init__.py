"""A replica cluster on loopback: Redis, the BoxLite test server, N replicas, HAProxy.

``Cluster`` (cluster.py) is for tests and load tools; ``python -m tools.replicas``
runs one until interrupted. haproxy.py runs deploy/haproxy.cfg as shipped.
"""

from .cluster import Cluster
from .haproxy import haproxy, haproxy_binary, missing_reason

__all__ = ["Cluster", "haproxy", "haproxy_binary", "missing_reason"]
