"""What a plugin declares about each method it offers.

A ``Method`` is a static description plus one callable. Building the
description must be cheap: discovery imports every plugin at start-up, so a
plugin keeps ``import torch`` and model construction inside ``run``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from sr_desk.api.params import DeclarationError, Param, ParamSet

if TYPE_CHECKING:
    import numpy as np

    from sr_desk.api.request import Context, Request

_METHOD_ID = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Task(str, Enum):
    """What a method does to the document. The set may grow; the GUI groups methods by it."""

    UPSCALE = "upscale"
    FUSE = "fuse"
    INTERPOLATE = "interpolate"


@dataclass(frozen=True)
class WeightFile:
    """A weights file a method needs, found by name in the weights store.

    ``url`` and ``sha256`` let the model manager download and verify it; a
    file shipped inside the plugin's package needs neither.
    """

    name: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name or self.name.startswith("."):
            raise DeclarationError(f"weight file name {self.name!r} must be a plain file name")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise DeclarationError(f"{self.name}: sha256 must be 64 lowercase hex digits")


@dataclass(frozen=True)
class Capabilities:
    """What a method supports; the host adapts everything else.

    ``scales``: the integer factors the method produces natively, or ``None``
    for any factor (including non-integer ones and exact target sizes). The
    host reaches other scales and sizes by running the next native scale up
    and resizing the result with Lanczos.
    ``region``: the method uses ``Request.mask`` itself (fusion does). Upscale
    methods without it still work on a selection: the host crops, runs and
    blends the result back.
    ``max_output_tile``: the largest output side the method computes in one
    piece (``None``: no limit). A method whose cost grows faster than its
    pixels (global attention) sets it; the host then tiles above it, whatever
    the user's tile setting.
    ``memory_per_output_pixel`` (API 1.2): the method's peak working memory,
    in bytes per output pixel of a tile, measured in float32 (``None``:
    unknown). The host then makes tiles small enough to fit in half of what
    the device has free, before they run, whatever the user's tile setting:
    on a small machine a tile too large may swap for minutes or be killed,
    rather than fail and be retried.
    """

    scales: tuple[int, ...] | None = None
    default_scale: float = 4.0
    region: bool = False
    previews: bool = False
    seeds: bool = False
    tiles: bool = True
    weights: tuple[WeightFile, ...] = ()
    max_output_tile: int | None = None
    memory_per_output_pixel: int | None = None

    def __post_init__(self) -> None:
        if self.scales is not None:
            object.__setattr__(self, "scales", tuple(sorted(self.scales)))
            if not self.scales or any(not isinstance(s, int) or s < 1 for s in self.scales):
                raise DeclarationError("scales must be positive integers (or None for any scale)")
            if self.default_scale not in self.scales:
                object.__setattr__(self, "default_scale", float(self.scales[-1]))
        if not self.default_scale > 0:
            raise DeclarationError("default_scale must be positive")
        if self.max_output_tile is not None and (not self.tiles or self.max_output_tile < 64):
            raise DeclarationError("max_output_tile needs tiles=True and at least 64 px")
        if self.memory_per_output_pixel is not None and (not self.tiles or self.memory_per_output_pixel <= 0):
            raise DeclarationError("memory_per_output_pixel needs tiles=True and a positive number of bytes")
        object.__setattr__(self, "weights", tuple(self.weights))

    @property
    def arbitrary_scale(self) -> bool:
        return self.scales is None

    def native_scale_for(self, wanted: float) -> float:
        """The scale to run at to reach ``wanted``: itself, or the next native scale up."""
        if self.scales is None:
            return wanted
        for scale in self.scales:
            if scale >= wanted - 1e-9:
                return float(scale)
        return float(self.scales[-1])


RunFunction = Callable[["Request", "Context"], "np.ndarray"]


@dataclass(frozen=True)
class Method:
    """One method a plugin offers.

    ``run(request, context)`` returns the result as a float32 ``H x W x 3``
    array in ``[0, 1]`` of size ``request.output_size`` (tasks that change
    no size return the input size). It runs on the worker thread; it should
    call ``context.report`` after each model step, which also raises
    ``Cancelled`` when the user cancelled.
    """

    id: str
    name: str
    task: Task
    run: RunFunction
    params: Sequence[Param] | ParamSet = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _METHOD_ID.match(self.id):
            raise DeclarationError(
                f"method id {self.id!r} must be 2-64 characters of a-z, 0-9, '.', '_' or '-', "
                "starting with a letter"
            )
        if not self.name:
            raise DeclarationError(f"method {self.id!r} needs a display name")
        try:
            object.__setattr__(self, "task", Task(self.task))
        except ValueError:
            tasks = ", ".join(t.value for t in Task)
            raise DeclarationError(f"method {self.id!r}: unknown task {self.task!r} (known: {tasks})") from None
        if not callable(self.run):
            raise DeclarationError(f"method {self.id!r}: run must be callable")
        if not isinstance(self.params, ParamSet):
            object.__setattr__(self, "params", ParamSet(tuple(self.params)))
        if not isinstance(self.capabilities, Capabilities):
            raise DeclarationError(f"method {self.id!r}: capabilities must be a Capabilities")

    @property
    def param_set(self) -> ParamSet:
        assert isinstance(self.params, ParamSet)
        return self.params

    def to_json(self) -> dict[str, Any]:
        caps = self.capabilities
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task.value,
            "description": self.description,
            "params": [p.to_json() for p in self.param_set],
            "capabilities": {
                "scales": list(caps.scales) if caps.scales is not None else None,
                "arbitrary_scale": caps.arbitrary_scale,
                "default_scale": caps.default_scale,
                "region": caps.region,
                "previews": caps.previews,
                "seeds": caps.seeds,
                "tiles": caps.tiles,
                "weights": [w.name for w in caps.weights],
            },
        }
