"""Typed parameter declarations.

A method declares its parameters once; the CLI parses ``--param NAME=VALUE``
with them and the GUI builds its widgets from them, so a new plugin gets both
without writing any front-end code. Every declaration checks itself when it is
made (bad range, default outside the range, empty choices), which is how the
plugin host tells a plugin with broken declarations from a working one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: Largest seed accepted; seeds must fit an unsigned 32-bit generator state.
MAX_SEED = 2**32 - 1


class ParamError(ValueError):
    """A value given for a parameter cannot be accepted; the message says why in one line."""


class DeclarationError(ValueError):
    """A plugin declared a parameter or method that cannot work."""


@dataclass(frozen=True, kw_only=True)
class Param:
    """Base class of every parameter declaration.

    ``name`` is the key in ``Request.params`` and on the command line,
    ``label`` is what the GUI shows and ``help`` becomes the tooltip and the
    CLI help line.
    """

    kind: ClassVar[str] = "param"
    name: str
    label: str = ""
    help: str = ""
    default: Any = None
    #: A knob for those who know the method (sampler internals, say): the editor keeps it in a folded
    #: "Advanced" section, so the first look shows what most users change.
    advanced: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DeclarationError(
                f"parameter name {self.name!r} must be lower_snake_case, 1-40 characters"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())
        self._check_declaration()
        if self.default is not None:
            try:
                object.__setattr__(self, "default", self.validate(self.default))
            except ParamError as exc:
                raise DeclarationError(f"default of {self.name!r} is invalid: {exc}") from None

    def _check_declaration(self) -> None:
        """Raise DeclarationError when the declaration itself is inconsistent."""

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ParamError."""
        return value

    def parse(self, text: str) -> Any:
        """Parse a command-line string, then validate it."""
        return self.validate(text)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (used by ``sr-desk methods --json``)."""
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "label": self.label, "help": self.help}
        for key, value in self.__dict__.items():
            if key not in data:
                data[key] = list(value) if isinstance(value, tuple) else value
        return data

    def _fail(self, message: str) -> ParamError:
        return ParamError(f"parameter {self.name!r} {message}")


@dataclass(frozen=True, kw_only=True)
class IntParam(Param):
    """An integer in ``[minimum, maximum]``; the GUI shows a slider with a spin box."""

    kind: ClassVar[str] = "int"
    default: int = 0
    minimum: int = 0
    maximum: int = 100
    step: int = 1

    def _check_declaration(self) -> None:
        if self.minimum > self.maximum:
            raise DeclarationError(f"{self.name!r}: minimum {self.minimum} > maximum {self.maximum}")
        if self.step < 1:
            raise DeclarationError(f"{self.name!r}: step must be at least 1")

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise self._fail(f"must be a whole number (got {value!r})")
        value = int(value)
        if not self.minimum <= value <= self.maximum:
            raise self._fail(f"must be between {self.minimum} and {self.maximum} (got {value})")
        return value

    def parse(self, text: str) -> int:
        try:
            return self.validate(int(text.strip()))
        except ValueError as exc:
            if isinstance(exc, ParamError):
                raise
            raise self._fail(f"must be a whole number (got {text!r})") from None


@dataclass(frozen=True, kw_only=True)
class FloatParam(Param):
    """A real number in ``[minimum, maximum]``; the GUI shows a slider with a spin box."""

    kind: ClassVar[str] = "float"
    default: float = 0.0
    minimum: float = 0.0
    maximum: float = 1.0
    step: float = 0.01
    decimals: int = 2

    def _check_declaration(self) -> None:
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum)):
            raise DeclarationError(f"{self.name!r}: range must be finite")
        if self.minimum > self.maximum:
            raise DeclarationError(f"{self.name!r}: minimum {self.minimum} > maximum {self.maximum}")
        if not self.step > 0:
            raise DeclarationError(f"{self.name!r}: step must be positive")

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._fail(f"must be a finite number (got {value!r})")
        value = float(value)
        if not self.minimum <= value <= self.maximum:
            raise self._fail(f"must be between {self.minimum:g} and {self.maximum:g} (got {value:g})")
        return value

    def parse(self, text: str) -> float:
        try:
            number = float(text.strip())
        except ValueError:
            raise self._fail(f"must be a number (got {text!r})") from None
        return self.validate(number)


@dataclass(frozen=True, kw_only=True)
class BoolParam(Param):
    """On or off; the GUI shows a check box."""

    kind: ClassVar[str] = "bool"
    default: bool = False

    _TRUE: ClassVar[frozenset[str]] = frozenset({"1", "true", "yes", "on"})
    _FALSE: ClassVar[frozenset[str]] = frozenset({"0", "false", "no", "off"})

    def validate(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self._fail(f"must be true or false (got {value!r})")
        return value

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in self._TRUE:
            return True
        if word in self._FALSE:
            return False
        raise self._fail(f"must be true or false (got {text!r})")


@dataclass(frozen=True, kw_only=True)
class ChoiceParam(Param):
    """One of a fixed set of strings; the GUI shows a drop-down."""

    kind: ClassVar[str] = "choice"
    choices: tuple[str, ...] = ()
    default: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.default and self.choices:
            object.__setattr__(self, "default", self.choices[0])
        super().__post_init__()

    def _check_declaration(self) -> None:
        if not self.choices:
            raise DeclarationError(f"{self.name!r}: a choice needs at least one option")
        if len(set(self.choices)) != len(self.choices):
            raise DeclarationError(f"{self.name!r}: options must be unique")
        if not all(isinstance(c, str) and c for c in self.choices):
            raise DeclarationError(f"{self.name!r}: options must be non-empty strings")

    def validate(self, value: Any) -> str:
        if value not in self.choices:
            raise self._fail(f"must be one of {', '.join(self.choices)} (got {value!r})")
        return value

    def parse(self, text: str) -> str:
        return self.validate(text.strip())


@dataclass(frozen=True, kw_only=True)
class SeedParam(Param):
    """A random seed; ``None`` means "pick one" and the GUI adds a dice button.

    Methods that declare no seed parameter still receive ``Request.seed``;
    declare one for each *extra* seed a method needs (the second result of an
    interpolation, say).
    """

    kind: ClassVar[str] = "seed"
    default: int | None = None

    def validate(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise self._fail(f"must be a whole number from 0 to {MAX_SEED} (got {value!r})")
        return value

    def parse(self, text: str) -> int | None:
        word = text.strip().lower()
        if word in {"", "random", "none"}:
            return None
        try:
            return self.validate(int(word))
        except ValueError as exc:
            if isinstance(exc, ParamError):
                raise
            raise self._fail(f"must be a whole number (got {text!r})") from None


@dataclass(frozen=True, kw_only=True)
class ImageParam(Param):
    """A second image (a fusion donor, say).

    On the command line the value is a file path; the host loads it and the
    method receives an ``ImageInput`` holding float RGB pixels, so plugins
    never read files themselves.

    ``placeable`` (API 1.1): the image is laid over the input image, and the
    editor lets the user move and scale it on the canvas. The method then
    receives ``ImageInput.placement``; where that is ``None`` (the command
    line, or a host that cannot place) the method chooses its own placement.
    """

    kind: ClassVar[str] = "image"
    required: bool = True
    placeable: bool = False

    def validate(self, value: Any) -> Any:
        if value is None:
            if self.required:
                raise self._fail("needs an image")
            return None
        if not hasattr(value, "rgb"):
            raise self._fail(f"must be an image (got {type(value).__name__})")
        return value

    def parse(self, text: str) -> str:
        # The host turns the path into pixels; see sr_desk.engine.requests.
        if not text.strip():
            raise self._fail("needs an image file path")
        return text.strip()


@dataclass(frozen=True, kw_only=True)
class SizeParam(Param):
    """A target size ``(width, height)`` in pixels, given as ``WxH`` on the command line."""

    kind: ClassVar[str] = "size"
    default: tuple[int, int] | None = None
    maximum: int = 65535

    def validate(self, value: Any) -> tuple[int, int] | None:
        if value is None:
            return None
        try:
            width, height = (int(v) for v in value)
        except (TypeError, ValueError):
            raise self._fail(f"must be a width and a height (got {value!r})") from None
        if not (1 <= width <= self.maximum and 1 <= height <= self.maximum):
            raise self._fail(f"sides must be between 1 and {self.maximum} (got {width}x{height})")
        return (width, height)

    def parse(self, text: str) -> tuple[int, int] | None:
        return self.validate(parse_size(text, self.name))


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """Parse ``"1920x1080"`` (``x``, ``X`` or ``*``) into ``(1920, 1080)``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not match:
        raise ParamError(f"{what} must look like WIDTHxHEIGHT, e.g. 1920x1080 (got {text!r})")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class ParamSet:
    """An ordered, name-checked collection of declarations."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DeclarationError(f"parameter names declared twice: {', '.join(duplicates)}")
        for p in self.params:
            if not isinstance(p, Param):
                raise DeclarationError(f"{p!r} is not a parameter declaration")

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def get(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with validated ``given`` values; unknown names are an error."""
        unknown = sorted(set(given) - {p.name for p in self.params})
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            raise ParamError(f"unknown parameter {unknown[0]!r} (this method takes: {known})")
        values = {}
        for p in self.params:
            values[p.name] = p.validate(given[p.name]) if p.name in given else p.validate(p.default)
        return values

    def parse_assignments(self, assignments: list[str]) -> dict[str, Any]:
        """Turn ``["steps=20", "sampler=ddim"]`` into typed values (not yet defaulted)."""
        values: dict[str, Any] = {}
        for item in assignments:
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ParamError(f"--param expects NAME=VALUE (got {item!r})")
            param = self.get(name)
            if param is None:
                known = ", ".join(p.name for p in self.params) or "none"
                raise ParamError(f"unknown parameter {name!r} (this method takes: {known})")
            values[name] = param.parse(text)
        return values
