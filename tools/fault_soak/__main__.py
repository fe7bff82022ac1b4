"""``python -m tools.fault_soak``: the command line of :mod:`tools.fault_soak.run`."""

from .run import main

main()  # exits with the run's status
