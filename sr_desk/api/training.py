"""Training entry points a plugin may offer (``sr-desk train NAME ...``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sr_desk.api.params import DeclarationError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")


@dataclass(frozen=True)
class Trainer:
    """A command-line training program: ``main(argv)`` parses its own arguments and returns an exit status."""

    name: str
    description: str
    main: Callable[[Sequence[str]], int]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DeclarationError(f"trainer name {self.name!r} must be 2-40 characters of a-z, 0-9, '_' or '-'")
        if not callable(self.main):
            raise DeclarationError(f"trainer {self.name!r}: main must be callable")
