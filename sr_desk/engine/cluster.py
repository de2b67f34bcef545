"""The batch on a Ray cluster: the same job code as the local batch, one image a task, over a pool of actors.

A person with an archive of thousands of photos runs ``sr-desk upscale DIR -o
OUT --cluster ADDRESS`` (``local`` starts a Ray instance on this machine).
Ray Data maps the images over a pool of actors, each holding the method's
model once (a worker process, then :func:`sr_desk.engine.job_work.file_work`
for every image, exactly as the local batch). GPU actors when the cluster has
GPUs, CPU actors otherwise.

- **Resume**: writes are atomic, so an existing output is a complete one; the
  driver skips those before it starts and says how many.
- **Faults**: an image that fails is reported with its reason and never
  retried (the actor catches it). An actor whose process dies is restarted
  by Ray and its image sent again; the workers count the tries in a small
  file beside the output, and past :data:`RETRIES` retries the image is
  reported failed, so one that kills its worker every time cannot hold the
  batch forever. What a killed writer left (a
  temporary file) is removed after the run, through the write journal the
  workers list their temporary files in.

Ray is an optional dependency (``pip install "sr-desk[cluster]"``); this
module imports it only when a cluster batch runs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr_desk.core.errors import SrDeskError
from sr_desk.engine import object_store
from sr_desk.engine.object_store import is_uri
from sr_desk.engine.pipeline import JobSpec

__all__ = ["ClusterJob", "ClusterUnavailable", "Outcome", "RETRIES", "output_exists", "ray_available", "run_on_cluster"]

#: How often an image whose worker process died is tried again on a new one.
RETRIES = 2
INSTALL_HINT = 'the cluster batch needs Ray: pip install "sr-desk[cluster]"'


class ClusterUnavailable(SrDeskError):
    """Ray is not installed, or the cluster cannot be reached."""


@dataclass(frozen=True)
class ClusterJob:
    """What every actor needs to run the batch's images: the method, its prepared spec and the run's settings."""

    method_id: str
    spec: JobSpec
    quality: int
    device: str
    precision: str
    #: The user's models folder on this machine, where the workers look first (None: the default one).
    models_dir: str | None = None
    #: Where the workers list their temporary files while they write (beside the outputs, which every worker
    #: reaches): the driver removes those of killed workers after the run.
    journal: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One image's result: written (``error`` empty) or not, and why."""

    source: str
    target: str
    error: str = ""


def ray_available() -> bool:
    """Whether Ray with Ray Data is installed (the ``cluster`` extra)."""
    try:
        return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.data") is not None
    except ImportError:
        return False


class ImageActor:
    """One worker of the pool: the method and a worker thread made once, then one image per call."""

    def __init__(self, job: ClusterJob) -> None:
        from sr_desk.core.atomic import set_journal
        from sr_desk.core.settings import Settings
        from sr_desk.engine.downloads import default_weights
        from sr_desk.engine.plugins import discover_plugins
        from sr_desk.engine.worker import Worker

        if job.journal:
            set_journal(job.journal)  # a temporary file of a killed worker is listed, for the driver to remove
        self.job = job
        settings = Settings.load()  # this node's: its disabled plugins, its models folder
        self.method = discover_plugins(settings).method(job.method_id)
        models = Path(job.models_dir) if job.models_dir else settings.resolved_models_dir()
        self.worker = Worker(device=job.device, weights=default_weights(models), precision=job.precision,
                             preview_side=0)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        outcomes = [self.one(str(source), str(target)) for source, target in zip(batch["source"], batch["target"])]
        return {"source": [o.source for o in outcomes], "target": [o.target for o in outcomes],
                "error": [o.error for o in outcomes]}

    def one(self, source: str, target: str) -> Outcome:
        from sr_desk.core.imageio import load_image
        from sr_desk.engine.job_work import file_work
        from sr_desk.engine.worker import JobState, describe_error

        tries = attempts_file(target)
        tried = _read_count(tries)
        if tried > RETRIES:  # Ray restarts a dead worker and resends its image without limit; this is the limit
            _forget(tries)
            return Outcome(source, target, f"its worker died each of the {tried} times it was tried")
        _write_count(tries, tried + 1)
        try:
            with tempfile.TemporaryDirectory(prefix="sr-desk-cluster-") as scratch:
                local_source = object_store.fetch(source, Path(scratch)) if is_uri(source) else Path(source)
                local_target = Path(scratch, "out", object_store.name_of(target)) if is_uri(target) else Path(target)
                image = load_image(local_source)
                job = self.worker.submit(file_work(image, self.method, self.job.spec, local_target, self.job.quality),
                                         f"{self.method.id} {local_source.name}")
                job.wait()
                if job.state is JobState.FINISHED and is_uri(target):
                    object_store.put(local_target, target)
        except Exception as exc:  # noqa: BLE001 - a bad image is reported, never retried
            return Outcome(source, target, describe_error(exc))
        finally:
            _forget(tries)
        if job.state is not JobState.FINISHED:
            return Outcome(source, target, job.error or job.state.value)
        return Outcome(source, target)


def attempts_file(target: str) -> str:
    """Where the workers count the tries of ``target``'s image (beside it: every worker reaches that place)."""
    if is_uri(target):
        folder, name = target.rsplit("/", 1)
        return f"{folder}/.{name}.sr-desk-tries"
    path = Path(target)
    return str(path.with_name(f".{path.name}.sr-desk-tries"))


def _read_count(location: str) -> int:
    try:
        text = object_store.read_text(location) if is_uri(location) else Path(location).read_text()
        return int(text or 0)
    except (OSError, ValueError):
        return 0


def _write_count(location: str, count: int) -> None:
    if is_uri(location):
        object_store.write_text(location, str(count))
    else:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        Path(location).write_text(str(count))


def _forget(location: str) -> None:
    if is_uri(location):
        object_store.remove(location)
    else:
        Path(location).unlink(missing_ok=True)


def output_exists(target: str | Path) -> bool:
    """Whether ``target`` is written (complete: writes and uploads replace a file whole)."""
    return object_store.exists(str(target)) if is_uri(target) else Path(target).exists()


def _connect(address: str) -> None:
    import ray

    if ray.is_initialized():
        return
    for name in ("ray", "ray.data"):  # its notes would bury the batch's own progress
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # and so would its core's, on this process
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from None
    finally:  # Ray installs its own SIGTERM handler; the command's (stop cleanly, say so) stays in charge
        for number, handler in handlers.items():
            signal.signal(number, handler)


def pool_size(workers: int | None, gpus_per_actor: float, resources: dict[str, float]) -> int:
    """Actors in the pool: ``workers`` if given, else one per GPU, else one per two CPUs (torch uses two threads)."""
    if workers is not None:
        if workers < 1:
            raise SrDeskError(f"--workers must be at least 1 (got {workers})")
        return workers
    if gpus_per_actor:
        return max(1, int(resources.get("GPU", 0)))
    return max(1, int(resources.get("CPU", 1)) // 2)


def run_on_cluster(
    pairs: Sequence[tuple[str | Path, str | Path]],
    job: ClusterJob,
    address: str,
    *,
    workers: int | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Outcome]:
    """Every ``(source, target)`` pair run on the cluster at ``address``; an :class:`Outcome` for each, in order.

    Progress goes to ``log``: images done, per second, time left.
    """
    if not ray_available():
        raise ClusterUnavailable(INSTALL_HINT)
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, DataContext

    _connect(address)
    resources = ray.cluster_resources()
    gpus = 1.0 if resources.get("GPU", 0) >= 1 and job.device in ("auto", "cuda") else 0.0
    size = min(pool_size(workers, gpus, resources), max(1, len(pairs)))
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.max_errored_blocks = len(pairs)  # an image that kills every worker fails alone, not the batch
    for _, target in pairs:  # a count left by a run that was stopped starts again
        _forget(attempts_file(str(target)))
    items = [{"source": str(source), "target": str(target)} for source, target in pairs]
    log(f"sr-desk: {len(items)} image(s) on {size} {'GPU' if gpus else 'CPU'} worker(s) of the Ray cluster "
        f"({int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs)")
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        ImageActor,
        fn_constructor_args=(job,),
        batch_size=1,  # images, not rows of a table: one at a time per actor
        compute=ActorPoolStrategy(size=size),
        num_cpus=0 if gpus else min(2.0, max(1.0, resources.get("CPU", 1) / size)),
        num_gpus=gpus,
    )
    done: dict[str, Outcome] = {}
    started = time.monotonic()
    try:
        for row in dataset.iter_rows():
            outcome = Outcome(row["source"], row["target"], row["error"])
            done[outcome.target] = outcome
            log(_progress(len(done), len(items), time.monotonic() - started, outcome))
    finally:
        if job.journal:
            _remove_what_killed_writers_left(Path(job.journal))
    lost = "its worker died each time it was tried"
    return [done.get(str(target), Outcome(str(source), str(target), lost)) for source, target in pairs]


def _progress(done: int, total: int, elapsed: float, outcome: Outcome) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    left = f", {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
    status = f"failed: {outcome.error}" if outcome.error else "done"
    return f"sr-desk: {done}/{total} ({rate:.2f} images/s{left}) {os.path.basename(outcome.source)} {status}"


def _remove_what_killed_writers_left(journal: Path) -> None:
    from sr_desk.core.atomic import listed_temp_files, remove_stale_temp_files

    if not journal.exists():
        return
    for path in remove_stale_temp_files(journal):
        print(f"sr-desk: removed {path}, left by a worker that was killed while saving", file=sys.stderr)
    if not listed_temp_files(journal):
        for leftover in (journal, journal.with_name(journal.name + ".lock")):
            leftover.unlink(missing_ok=True)
