"""``python -m tools.fuzz_tools``: the command line of :mod:`tools.fuzz_tools.run`."""

import sys

from .run import main

sys.exit(main())
