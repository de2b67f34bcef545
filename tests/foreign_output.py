"""What would reach a user's terminal besides sr-desk's own one-line messages: shared by both fuzzers.

``tests/test_fuzz.py`` imports it as ``tests.foreign_output``; ``tests/fuzz_atheris.py``, run as a script
from ``tests/``, as ``foreign_output``.
"""

from __future__ import annotations

import logging


class ForeignLogLines(logging.Handler):
    """Log records of other libraries (Pillow's, say) that the command line would print: sr-desk's own
    logging is one-line warnings; another library's lines are stray output."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("sr_desk"):
            self.lines.append(f"{record.name}: {record.getMessage()}")
