"""What a method receives when it runs: a typed request and a context.

Images cross the API as float32 numpy arrays, ``H x W x 3`` RGB in
``[0, 1]``: no torch and no Qt types, so the API stays importable anywhere
and a plugin picks its own tensor layout. Alpha never reaches a method; the
host upscales it separately so transparent images stay transparent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Cancelled(Exception):
    """Raised inside a running method when the user cancels; the host catches it."""


@dataclass(frozen=True)
class ImageInput:
    """A second image given to a method (see ``ImageParam``).

    ``placement``: where the user laid the image over the input, as
    ``(x, y, width, height)`` in input pixels (floats: a placement scaled on
    screen need not land on whole pixels), or ``None`` when nobody placed it.
    Only ``ImageParam(placeable=True)`` values carry one.

    ``fitted`` (API 1.6): the placement is the editor's starting box (covering
    the selection), which the user has not moved. A method that can place the
    image better by itself may do so then (SRDiff fusion puts a donor's face
    on the face in the selection); a placement the user made is theirs.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    source: str = ""
    placement: tuple[float, float, float, float] | None = None
    fitted: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


@dataclass(frozen=True)
class Request:
    """One run of one method.

    ``image``: float32 ``H x W x 3`` in ``[0, 1]``.
    ``mask``: float32 ``H x W`` in ``[0, 1]`` (1 = selected), or ``None`` for the whole image;
    only methods declaring ``Capabilities(region=True)`` receive one.
    ``scale`` and ``output_size`` (``(width, height)``): what to produce. For a
    method with native integer scales, ``scale`` is one of them.
    ``params``: every declared parameter, validated and defaulted.
    ``seed``: always set (the host draws one when the user asked for "random"),
    so every result can be reproduced.
    ``draft`` (API 1.1): the host wants a quick look, not the result (the
    editor's live slider runs again at every move); a method may trade
    quality for speed, fewer steps say. A run the user applies is never a draft.
    """

    image: np.ndarray
    scale: float
    output_size: tuple[int, int]
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    mask: np.ndarray | None = None
    draft: bool = False

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the input."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@runtime_checkable
class WeightsStore(Protocol):
    """Finds a method's weights file by name (built-in, user folder, or downloaded)."""

    def path(self, name: str) -> Path:
        """Local path of the weights file ``name``; raises ``FileNotFoundError`` with advice."""
        ...


@runtime_checkable
class Context(Protocol):
    """The host's side of a run, handed to ``Method.run``.

    ``device`` is a torch device string (``"cuda"``, ``"mps"`` or ``"cpu"``)
    chosen by the worker, which owns it; ``dtype`` is the preferred compute
    dtype name (``"float32"`` or ``"bfloat16"``).
    """

    device: str
    dtype: str
    weights: WeightsStore

    def report(
        self,
        step: int,
        total: int,
        preview: np.ndarray | None = None,
        message: str = "",
        box: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Report progress after a step, with an optional preview image.

        ``preview`` shows the whole output, or only the part ``box`` =
        ``(x, y, width, height)`` of it (a method that changes a small region
        of a large image previews just that region). It may be smaller than
        the box (the host scales it to fill the box); the host shows at most
        ``preview_side`` pixels on its longer side and a few a second, and
        drops the rest: ask ``wants_preview()`` before making one, or use
        ``sr_desk.diffusion.runtime.preview_of``, which does both.
        Raises ``Cancelled`` if the user cancelled, so calling it once per
        model step is all a method needs for a responsive Cancel.
        """
        ...

    def check_cancelled(self) -> None:
        """Raise ``Cancelled`` if the user cancelled (for loops that report less often)."""
        ...

    #: Longest side of the previews the host shows (None: any size; 0: the host shows none).
    preview_side: int | None

    def wants_preview(self) -> bool:
        """True when a preview reported now would be shown (previews are rate-limited)."""
        ...

    @property
    def cancelled(self) -> bool:
        """True once the user asked to cancel."""
        ...
