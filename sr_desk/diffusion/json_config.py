"""A network's configuration as it travels in a weights file's header: JSON in, JSON out, nothing unknown."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Self


class JsonConfig:
    """Mixin for a frozen dataclass config: :meth:`to_json` for the header, :meth:`from_json` back.

    Unknown fields are an error: a file written by a newer version with an
    extra architecture knob must not silently build the wrong network. The
    dataclass's own ``__post_init__`` checks the values (they come from a
    file anyone can write).
    """

    #: The method's name in messages ("DTLS").
    METHOD: ClassVar[str] = "model"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, text: str) -> Self:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a {cls.METHOD} config must be a JSON object")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"unknown {cls.METHOD} config fields: {', '.join(unknown)}")
        return cls(**data)
