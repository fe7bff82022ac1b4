"""A box's network: egress policy, the filtering proxy, DNS and exposed ports.

Runtime-level pieces shared by the runtimes; the bwrap wiring lives in
``runtime/bwrap/network.py``.
"""
