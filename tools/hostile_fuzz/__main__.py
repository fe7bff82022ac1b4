"""``python -m tools.hostile_fuzz``: the command line of :mod:`tools.hostile_fuzz.run`."""

from .run import main

main()  # exits with the run's status
