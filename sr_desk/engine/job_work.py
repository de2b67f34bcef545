"""What one job does on the worker, the same whoever asked: the editor, the command line or the bench.

A result is either returned whole (it becomes a document, or the caller saves
it) or, when it would be too large to hold as float32, streamed to its file
band by band as the method computes it; the caller then gets where it went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sr_desk.api import Method
from sr_desk.core.imageio import ImageData, save_image_bands
from sr_desk.engine.pipeline import JobSpec, run_job, stream_job, target_size
from sr_desk.engine.worker import JobContext

__all__ = ["SavedResult", "job_work"]


@dataclass(frozen=True)
class SavedResult:
    """A result written straight to a file, band by band, instead of being returned: where, how large."""

    path: Path
    size: tuple[int, int]


def job_work(
    image: ImageData, method: Method, spec: JobSpec, save_to: tuple[Path, int] | None = None
) -> Callable[[JobContext], ImageData | SavedResult]:
    """The function a ``Worker`` runs for ``spec`` on ``image``.

    Without ``save_to`` it returns the result whole; with ``save_to`` =
    ``(path, quality)`` it streams the result into that file (its folder
    made) and returns a :class:`SavedResult`.
    """
    if save_to is None:
        return lambda context: run_job(image, method, spec, context)
    path, quality = save_to

    def stream_to_file(context: JobContext) -> SavedResult:
        size = target_size(image.size, spec, method)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image_bands(path, image, size, lambda start: stream_job(image, method, spec, context, start),
                         quality=quality)
        return SavedResult(path, size)

    return stream_to_file
