"""The frozen ``sr-desk`` program: PyInstaller's entry script (see sr-desk.spec).

All logic lives in :mod:`sr_desk.frozen` so it can be tested without a build;
this file only hands it ``sys.argv``.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen app re-runs itself for child processes; this catches those calls first.
    multiprocessing.freeze_support()

    from sr_desk.frozen import run_frozen

    sys.exit(run_frozen(sys.argv))
