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
from sr_desk.core.imageio import ImageData, save_image, save_image_bands
from sr_desk.engine import pipeline
from sr_desk.engine.pipeline import JobSpec, can_stream, run_job, stream_job, target_size
from sr_desk.engine.worker import JobContext

__all__ = ["SavedResult", "file_work", "job_work", "streams_to_file"]


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


def streams_to_file(image: ImageData, method: Method, spec: JobSpec) -> bool:
    """Whether this job's result goes to its file band by band: a large result the pipeline can stream."""
    if not can_stream(image, method, spec):
        return False
    width, height = target_size(image.size, spec, method)
    return width * height >= pipeline.STREAM_MIN_PIXELS  # read at the call: a setting, not a constant


def file_work(image: ImageData, method: Method, spec: JobSpec, target: Path,
              quality: int) -> Callable[[JobContext], SavedResult]:
    """The work that writes the result of ``spec`` on ``image`` to ``target``, however large (a batch's one image).

    Streamed band by band when :func:`streams_to_file`, else computed whole
    and saved; both writes are atomic, so an existing ``target`` is always a
    complete one.
    """
    if streams_to_file(image, method, spec):
        return job_work(image, method, spec, (target, quality))

    def compute_and_save(context: JobContext) -> SavedResult:
        result = run_job(image, method, spec, context)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(target, result, quality=quality)
        return SavedResult(target, result.size)

    return compute_and_save
