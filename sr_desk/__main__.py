"""``python -m sr_desk`` is the ``sr-desk`` command."""

import sys

from sr_desk.cli import main

sys.exit(main())
