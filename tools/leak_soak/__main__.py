"""``python -m tools.leak_soak``: the command line of :mod:`tools.leak_soak.run`."""

import sys

from .run import main

sys.exit(main())
