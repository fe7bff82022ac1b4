"""A bounded load run over a replica cluster (tools/replicas): issue 12's acceptance run.

``python -m tools.replica_load``: N agents through the balancer, each creating a
box, running its execs (``exec_start`` then ``exec_read`` until the exit, the way
that survives a replica dying) and removing the box, with one replica SIGKILLed
and restarted halfway; then the same workload on one replica. It counts lost
outputs (an exec whose output is not exactly what it printed), leaked boxes (on
the BoxLite server afterwards), throughput and p50/p99 per exec.
"""

from .run import LoadResult, Workload, run_load

__all__ = ["LoadResult", "Workload", "run_load"]
