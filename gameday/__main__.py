"""``python -m gameday`` is ``chaosctl``."""

import sys

from gameday.cli import main

sys.exit(main())
