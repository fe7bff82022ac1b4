"""What the benchmark, the proof commands and the replica tools share.

- ``machine``: the machine and software a run happened on;
- ``procs``: subprocesses (the REST test server), free ports, RSS, process trees.

The benchmark's own measurements live in ``tools/bench``.
"""
