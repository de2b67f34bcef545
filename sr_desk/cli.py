"""The ``sr-desk`` command line: every method is scriptable.

Commands are generated from the plugins' declarations: ``--param NAME=VALUE``
is checked against the method's declared parameters, and ``methods`` prints
them. Bad input ends with one line on stderr and a non-zero exit, and no
output file is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from sr_desk import __version__
from sr_desk.api import API_VERSION, Method, ParamError
from sr_desk.api.params import parse_size
from sr_desk.core.errors import SrDeskError
from sr_desk.core.imageio import (
    IMAGE_EXTENSIONS,
    SAVE_FORMATS,
    check_output_path,
    check_output_fits,
    load_image,
)
from sr_desk.core.settings import Settings
from sr_desk.core.special_files import display_name, file_problem
from sr_desk.engine import object_store
from sr_desk.engine.devices import DEVICE_CHOICES, PRECISION_CHOICES
from sr_desk.engine.object_store import is_uri
from sr_desk.engine.plugins import PREFERRED_UPSCALERS, default_upscaler

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEMO_METHODS = ("srdiff", "srdiff-encoder", "lanczos", "bicubic")


class CliError(SrDeskError):
    """A problem with what the user typed (exit status 2)."""


class Cancelled(SrDeskError):
    """The user stopped the run (Ctrl-C): a batch ends here instead of going on with the next image."""


# -- argument parsing --------------------------------------------------------


def _path_or_uri(text: str) -> Path | str:
    """A path, or a URI kept as written (``Path`` would fold its ``//``)."""
    return text if is_uri(text) else Path(text)


def _region(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"region must be X,Y,WIDTH,HEIGHT in pixels (got {text!r})") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"region width and height must be positive (got {text!r})")
    return x, y, w, h


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = parse_size(text, "--size")
    except ParamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"--size sides must be positive (got {text!r})")
    return width, height


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number (got {text!r})")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {text!r})")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text!r})")
    return value


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=_path_or_uri,
                        help="an image file, or a folder to process every image in it (with --cluster also a URI: "
                        "s3://, gs://, file://)")
    parser.add_argument("-o", "--output", type=_path_or_uri, required=True,
                        help="output file (or folder for a batch; with --cluster also a URI)")
    sizing = parser.add_mutually_exclusive_group()
    sizing.add_argument("--scale", type=_positive_float, help="scale factor, e.g. 4 or 2.5")
    sizing.add_argument("--size", type=_size, metavar="WxH", help="exact output size, e.g. 1920x1080")
    parser.add_argument("--fit", action="store_true", help="with --size: keep the aspect ratio inside WxH")
    parser.add_argument("--region", type=_region, metavar="X,Y,W,H", help="work on this rectangle only")
    parser.add_argument("--feather", type=_non_negative_float, default=8.0, help="soft edge of the region in pixels (8)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a method parameter (repeatable)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a new one, printed)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, help="compute device (default: settings, then auto)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES,
                        help="compute precision (default: settings, then auto: bf16 on CUDA and on CPUs with native bf16, "
                        "float32 elsewhere)")
    parser.add_argument("--tile", type=int, help="tile size in input pixels for large images (0: never tile)")
    parser.add_argument("--weights", type=Path, metavar="PATH",
                        help="use this weights file (safetensors, or an official .ckpt) instead of the built-in one; "
                        "for diffsr also a diffusers UNet2DModel folder")
    parser.add_argument("--color-lock", action="store_true",
                        help="keep the output's colours and tones on the input's (undo colour drift)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality 1-100 (95)")
    parser.add_argument("--force", action="store_true", help="allow writing over the input file")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run a folder's images on a Ray cluster: 'local' starts one on this machine, an address "
                        "(ray://HOST:10001, or auto) joins a running one; a rerun skips the outputs already written "
                        "(needs pip install \"sr-desk[cluster]\")")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="with --cluster: N workers (default: one per GPU, else one per two CPUs)")


class OneLineParser(argparse.ArgumentParser):
    """Argument errors in one line that points at ``--help``, not a usage block of nine."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="sr-desk",
        description="Diffusion super-resolution image editor. With no command, opens the editor.",
    )
    parser.add_argument("--version", action="version", version=f"sr-desk {__version__} (plugin API {API_VERSION})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (tracebacks of plugin errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("upscale", help="upscale an image or a folder of images")
    _add_run_options(up)
    up.add_argument("--method", "-m", default=None,
                    help="method id (see `sr-desk methods`); default: the first installed of "
                    f"{', '.join(PREFERRED_UPSCALERS)} (srdiff-encoder: faithful and the fastest model method)")

    run = sub.add_parser("run", help="run any method (upscale, fuse, interpolate, ...)")
    run.add_argument("method", help="method id (see `sr-desk methods`)")
    _add_run_options(run)

    methods = sub.add_parser("methods", help="list the methods and their parameters")
    methods.add_argument("--json", action="store_true", help="print a JSON list")
    methods.add_argument("--task", help="only methods of this task")

    plugins = sub.add_parser("plugins", help="list the plugins, their versions and the broken ones")
    plugins.add_argument("--json", action="store_true", help="print a JSON list")
    switch = plugins.add_mutually_exclusive_group()
    switch.add_argument("--enable", metavar="NAME", help="switch a disabled plugin on again (it loads at the next start)")
    switch.add_argument("--disable", metavar="NAME", help="switch a plugin off (it is not even imported)")

    models = sub.add_parser("models", help="weights files: list, download, verify, remove")
    models.add_argument("action", nargs="?", choices=("list", "download", "verify", "remove"), default="list")
    models.add_argument("name", nargs="?", help="a weights file name (see `sr-desk models`)")

    train = sub.add_parser("train", help="train a method's model (e.g. `sr-desk train srdiff --help`)",
                           add_help=False)
    train.add_argument("trainer", nargs="?", help="trainer name; leave out to list them")
    train.add_argument("args", nargs=argparse.REMAINDER, help="the trainer's own arguments")

    demo = sub.add_parser("demo", help="open the bundled sample (or upscale it when there is no screen)")
    demo.add_argument("-o", "--output", type=Path, default=Path("sr-desk-demo-x4.png"))
    demo.add_argument("--headless", action="store_true", help="upscale the sample even where a screen exists")

    launcher = sub.add_parser("install-launcher", help="add sr-desk to the desktop's application menu")
    launcher.add_argument("--uninstall", action="store_true", help="remove what install-launcher added")
    launcher.add_argument("--dry-run", action="store_true", help="only print the files it would write or remove")
    return parser


# -- commands ----------------------------------------------------------------


def _plugin_host(settings: Settings):  # type: ignore[no-untyped-def]
    from sr_desk.engine.plugins import discover_plugins

    return discover_plugins(settings)


def cmd_methods(args: argparse.Namespace, settings: Settings) -> int:
    host = _plugin_host(settings)
    methods = host.methods(args.task)
    if args.json:
        rows = []
        for m in methods:
            row = m.to_json()
            record = host.plugin_of(m.id)
            row["plugin"] = record.name if record else None
            rows.append(row)
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for m in methods:
        record = host.plugin_of(m.id)
        caps = m.capabilities
        scales = "any scale" if caps.arbitrary_scale else "x" + ", x".join(str(s) for s in caps.scales or ())
        print(f"{m.id}  [{m.task.value}, {scales}, plugin {record.name if record else '?'}]  {m.name}")
        if m.description:
            print(f"    {m.description}")
        for p in m.param_set:
            extra = ""
            if hasattr(p, "minimum") and hasattr(p, "maximum"):
                extra = f" {p.minimum}..{p.maximum}"
            elif getattr(p, "choices", None):
                extra = " " + "|".join(p.choices)
            print(f"    --param {p.name}=<{p.kind}{extra}> (default {p.default!r})  {p.help}")
    broken = host.broken()
    if broken:
        print(f"\n{len(broken)} plugin(s) could not load; see `sr-desk plugins`.", file=sys.stderr)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace, settings: Settings) -> int:
    if args.enable or args.disable:
        return _switch_plugin(settings, args.enable, args.disable)
    host = _plugin_host(settings)
    if args.json:
        print(json.dumps([r.to_json() for r in host.records], indent=2))
        return EXIT_OK
    for r in host.records:
        origin = "built-in" if r.builtin else (r.distribution or "unknown package")
        print(f"{r.name} {r.version or '?'} ({origin}) [{r.status}]  methods: {', '.join(m.id for m in r.methods) or '-'}")
        if r.author:
            print(f"    by {r.author}")
        if r.error:
            print(f"    {r.error}")
        elif r.disabled_reason:
            print(f"    {r.disabled_reason}")
    return EXIT_OK


def _switch_plugin(settings: Settings, enable: str | None, disable: str | None) -> int:
    """``plugins --enable/--disable NAME``: the settings change without importing any plugin (one may be the
    reason the user is here)."""
    from importlib.metadata import entry_points

    from sr_desk.api import ENTRY_POINT_GROUP
    from sr_desk.core.paths import app_paths

    name = enable or disable
    assert name is not None
    if enable:
        if not settings.enable_plugin(enable):
            raise CliError(f"plugin {enable!r} is not disabled (see `sr-desk plugins`)")
    else:
        user_plugins = str(app_paths().plugins_dir)
        if user_plugins not in sys.path and os.path.isdir(user_plugins):
            sys.path.append(user_plugins)
        installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if name not in installed and name not in settings.disabled_plugins:
            known = ", ".join(sorted(installed)) or "none"
            raise CliError(f"no plugin named {name!r} is installed (installed: {known})")
        settings.disable_plugin(name)
    settings.save()
    print(f"plugin {name!r} {'enabled' if enable else 'disabled'}")
    return EXIT_OK


@dataclass
class Batch:
    """What one run works on: (input, output) pairs, and the folder entries it cannot read, with why."""

    pairs: list[tuple[Path, Path]]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    is_folder: bool = False


def _batch(input_path: Path, output: Path) -> Batch:
    if not input_path.is_dir():
        if not input_path.exists() and not input_path.is_symlink():
            raise CliError(f"cannot open {str(input_path)!r}: no such file")
        return Batch([(input_path, output)])
    if output.exists() and not output.is_dir():
        raise CliError(f"the input is a folder, so the output {str(output)!r} must be a folder too")
    files, unreadable = _folder_images(input_path)
    names = batch_output_names(files)
    return Batch([(p, output / names[p]) for p in files], unreadable, is_folder=True)


def _folder_images(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The images of a batch folder that can be opened, and those that cannot (with why); none at all is an error."""
    named = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    problems = {p: file_problem(p) for p in named}
    files = [p for p in named if problems[p] is None]
    unreadable = [(p, problem) for p, problem in problems.items() if problem is not None]
    if not files and not unreadable:
        raise CliError(f"no images in folder {str(folder)!r}")
    return files, unreadable


def _uri_batch(input_location: Path | str, output: Path | str) -> Batch:
    """A folder batch where the input folder or the output folder (or both) is a URI (sr_desk.engine.object_store)."""
    unreadable: list[tuple[Path, str]] = []
    if is_uri(input_location):
        names_of = {Path(object_store.name_of(f)): f for f in object_store.list_files(str(input_location))
                    if Path(object_store.name_of(f)).suffix.lower() in IMAGE_EXTENSIONS}
        if not names_of:
            raise CliError(f"no images in {input_location}")
    else:
        if not Path(input_location).is_dir():
            raise CliError(f"the cluster batch runs a folder of images: {str(input_location)!r} is not one")
        files, unreadable = _folder_images(Path(input_location))
        names_of = {Path(p.name): str(p) for p in files}
    names = batch_output_names(list(names_of))
    pairs = [(names_of[name], object_store.join(str(output), names[name]) if is_uri(output) else Path(output) / names[name])
             for name in names_of]
    return Batch(pairs, unreadable, is_folder=True)  # type: ignore[arg-type]


def batch_output_names(sources: Sequence[Path]) -> dict[Path, str]:
    """Each batch input's output file name, no two alike.

    The input's own name where its format can be written, else its stem as
    PNG (GIF, BMP, MPO...); when that PNG name is another input's too
    (``scan.png`` beside ``scan.gif``), the converted one keeps its extension
    (``scan.gif.png``). Raises :class:`CliError` before any work when two
    names still meet.
    """
    def plain(source: Path) -> str:
        return source.name if source.suffix.lower() in SAVE_FORMATS else source.stem + ".png"

    claims = Counter(_name_key(plain(s)) for s in sources)
    names = {s: plain(s) if s.name == plain(s) or claims[_name_key(plain(s))] == 1 else s.name + ".png"
             for s in sources}
    seen: dict[str, Path] = {}
    for source, name in names.items():
        other = seen.setdefault(_name_key(name), source)
        if other is not source:
            raise CliError(f"{other.name!r} and {source.name!r} would both be written as {name!r}; "
                           "rename one of them or move it to another folder")
    return names


def _name_key(name: str) -> str:
    """File names as the platform's usual file system compares them (without case on Windows and macOS)."""
    return name.casefold() if sys.platform in ("win32", "darwin") else name


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from sr_desk.engine.pipeline import JobSpec, load_image_params, prepare
    from sr_desk.engine.plugins import UnknownMethodError

    host = _plugin_host(settings)
    try:
        method = host.method(args.method) if args.method is not None else default_upscaler(host.methods())
        if method is None:
            raise CliError("no upscaling method is installed (see `sr-desk plugins`)")
    except UnknownMethodError as exc:
        raise CliError(str(exc)) from None
    if args.fit and not args.size:
        raise CliError("--fit needs --size")
    if args.quality < 1 or args.quality > 100:
        raise CliError(f"--quality must be between 1 and 100 (got {args.quality})")
    if args.command == "upscale" and method.task.value != "upscale":
        article = "an" if method.task.value[0] in "aeiou" else "a"
        raise CliError(f"method {method.id!r} is {article} {method.task.value} method; "
                       f"use `sr-desk run {method.id} ...`")
    params = load_image_params(method, method.param_set.parse_assignments(args.param))
    tile = settings.tile_size if args.tile is None else args.tile
    spec = prepare(
        method,
        JobSpec(
            method_id=method.id,
            scale=args.scale,
            size=args.size,
            fit=args.fit,
            region=args.region,
            params=params,
            seed=args.seed,
            feather=args.feather,
            tile_size=max(0, tile),
            tile_overlap=min(settings.tile_overlap, tile // 4) if tile > 0 else settings.tile_overlap,  # small --tile
            color_lock=args.color_lock,
            weights=str(args.weights) if args.weights is not None else None,
        ),
    )
    if args.workers is not None and not args.cluster:
        raise CliError("--workers needs --cluster")
    if args.cluster:
        from sr_desk.engine.cluster import INSTALL_HINT, ray_available

        if not ray_available():
            raise CliError(INSTALL_HINT)
    if is_uri(args.input) or is_uri(args.output):
        if not args.cluster:
            raise CliError("an input or output given by URI (s3://, gs://, file://) is for the cluster batch: "
                           "add --cluster")
        batch = _uri_batch(args.input, args.output)
        for source, problem in batch.unreadable:
            print(f"sr-desk: skipped {display_name(source)}: {problem}", file=sys.stderr)
        return _run_on_cluster(args, settings, method, spec, batch)
    batch = _batch(args.input, args.output)
    for source, target in batch.pairs:
        if _same_file(source, target) and not args.force:
            raise CliError(f"refusing to overwrite the input {str(source)!r}; choose another output or add --force")
        check_output_path(target)  # before any work: a wrong extension or path would waste the whole run
    if batch.is_folder:
        args.output.mkdir(parents=True, exist_ok=True)
    for source, problem in batch.unreadable:
        print(f"sr-desk: skipped {display_name(source)}: {problem}", file=sys.stderr)

    if args.cluster:
        return _run_on_cluster(args, settings, method, spec, batch)
    from sr_desk.engine.downloads import default_weights
    from sr_desk.engine.worker import Worker

    worker = Worker(
        device=args.device or settings.device,
        weights=default_weights(settings.resolved_models_dir()),
        precision=args.precision or settings.precision,
        preview_side=0,  # the command line shows no previews: methods skip making them
    )
    written = 0
    try:
        for source, target in batch.pairs:
            try:
                _run_one(worker, method, spec, source, target, args.quality, batch.is_folder)
                written += 1
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad file must not end a batch
                if not batch.is_folder:
                    raise
                from sr_desk.engine.worker import describe_error

                print(f"sr-desk: skipped {display_name(source)}: {describe_error(exc)}", file=sys.stderr)
    except BaseException:  # Ctrl-C, SIGTERM: a method that never reports progress cannot be cancelled; don't wait
        worker.stop(timeout=STOP_GRACE_S)
        raise
    worker.stop()
    if not batch.is_folder:
        return EXIT_OK
    return _batch_summary(written, len(batch.pairs) + len(batch.unreadable), args.output)


def _batch_summary(written: int, total: int, output: Path | str, already: int = 0) -> int:
    """The last lines of a batch, and its exit status: 1 when any image failed."""
    kept = f" ({already} already there)" if already else ""
    print(f"sr-desk: wrote {written} of {total} image(s) to {output}{kept}", file=sys.stderr)
    if written + already < total:
        print(f"sr-desk: {total - written - already} of {total} image(s) failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


#: The cluster workers' list of the files they are writing, in the output folder (removed when the run ends clean).
CLUSTER_JOURNAL = ".sr-desk-writes"


def _run_on_cluster(args: argparse.Namespace, settings: Settings, method: Method, spec, batch: Batch) -> int:  # type: ignore[no-untyped-def]
    """The batch on a Ray cluster (sr_desk.engine.cluster): the outputs already written are skipped (resume)."""
    from sr_desk.engine.cluster import ClusterJob, output_exists, run_on_cluster

    if not batch.is_folder:
        raise CliError("--cluster runs a folder of images; give a folder as the input")
    todo = [(source, target) for source, target in batch.pairs if not output_exists(target)]
    already = len(batch.pairs) - len(todo)
    if already:
        print(f"sr-desk: skipped {already} image(s) already written to {args.output} (writes are atomic: an "
              "existing output is complete)", file=sys.stderr)
    journal = None
    if not is_uri(args.output):
        args.output.mkdir(parents=True, exist_ok=True)
        journal = str(args.output / CLUSTER_JOURNAL)
    job = ClusterJob(method.id, spec, args.quality, args.device or settings.device, args.precision or settings.precision,
                     str(settings.resolved_models_dir()), journal=journal)
    outcomes = run_on_cluster(todo, job, args.cluster, workers=args.workers) if todo else []
    for outcome in outcomes:
        if outcome.error:
            name = object_store.name_of(outcome.source) if is_uri(outcome.source) else display_name(Path(outcome.source))
            print(f"sr-desk: skipped {name}: {outcome.error}", file=sys.stderr)
    written = sum(1 for outcome in outcomes if not outcome.error)
    return _batch_summary(written, len(batch.pairs) + len(batch.unreadable), args.output, already)


#: After Ctrl-C or SIGTERM, how long the job may take to stop (and remove its temporary file) before sr-desk
#: leaves without it; the next start removes what it leaves.
STOP_GRACE_S = 1.0


def input_warnings(spec, size: tuple[int, int], name: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What the job will do that the user may not expect of this image: a stretch, a clipped region."""
    warnings = []
    if spec.size is not None and not spec.fit:
        (w, h), (out_w, out_h) = size, spec.size
        if abs((out_w / out_h) / (w / h) - 1) > 0.01:
            warnings.append(
                f"--size {out_w}x{out_h} stretches {name} ({w}x{h}, aspect {w / h:.3g}) to aspect {out_w / out_h:.3g}; "
                "add --fit to keep its shape"
            )
    if spec.region is not None:
        x, y, rw, rh = spec.region
        if x < 0 or y < 0 or x + rw > size[0] or y + rh > size[1]:
            from sr_desk.engine.pipeline import clip_region

            try:
                cx, cy, cw, ch = clip_region(spec.region, size)
            except SrDeskError:
                return warnings  # the job itself refuses it, with the reason
            warnings.append(
                f"--region {x},{y},{rw},{rh} reaches outside {name} ({size[0]}x{size[1]}); using {cx},{cy},{cw},{ch}"
            )
    return warnings


def _run_one(worker, method: Method, spec, source: Path, target: Path, quality: int, named: bool) -> None:  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    from sr_desk.engine.job_work import file_work, streams_to_file
    from sr_desk.engine.pipeline import target_size
    from sr_desk.engine.worker import EventKind, JobState

    image = load_image(source)
    for warning in input_warnings(spec, image.size, source.name):
        print(f"sr-desk: warning: {warning}", file=sys.stderr)
    if method.task.value == "upscale":  # what the result cannot fit is refused before the compute, not after
        size = target_size(image.size, spec, method)
        check_output_fits(target, image, size)
        if not streams_to_file(image, method, spec):
            _check_memory_for(size)
    label = source.name if named else method.id
    bar = tqdm(total=1000, desc=label, unit="‰", file=sys.stderr, leave=False,
               disable=None, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    started, reported = time.monotonic(), [0]

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind is not EventKind.PROGRESS:
            return
        bar.n = event.step
        bar.refresh()
        tenth = min(10, event.step * 10 // 1000)
        if bar.disable and tenth > reported[0]:  # not a terminal (piped, logged): a line every 10%
            reported[0] = tenth
            print(f"{label}: {tenth * 10}% ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

    # A large result goes to the file band by band: never whole in memory as float.
    job = worker.submit(file_work(image, method, spec, target, quality), f"{method.id} {source.name}", on_event)
    try:
        job.wait_or_cancel()
    except KeyboardInterrupt:
        bar.close()
        _wait_for_cancel(job)
        raise Cancelled("cancelled; nothing was written") from None
    bar.close()
    if job.state is JobState.CANCELLED:
        raise Cancelled("cancelled; nothing was written")
    if job.state is JobState.FAILED:
        raise SrDeskError(f"{method.id} failed on {source.name}: {job.error}")
    width, height = job.result.size
    seed = f", seed {spec.seed}" if method.capabilities.seeds else ""  # with the result: what reproduces it
    print(f"{target} ({width}x{height}{seed})", file=sys.stderr)


#: A result that is not streamed is held whole as float32 RGB at least, before any working copy.
RESULT_BYTES_PER_PIXEL = 12


def _check_memory_for(size: tuple[int, int]) -> None:
    """Refuse, before the compute, a result that cannot fit in the memory that is free now."""
    from sr_desk.engine.memory import free_memory

    available = free_memory("cpu")
    need = size[0] * size[1] * RESULT_BYTES_PER_PIXEL
    if available is not None and need > available:
        raise SrDeskError(f"a {size[0]}x{size[1]} result needs at least {need / 2**30:.1f} GiB of memory and "
                          f"{available / 2**30:.1f} GiB is free; choose a smaller --scale or --size")


def _wait_for_cancel(job) -> None:  # type: ignore[no-untyped-def]
    """Wait for a cancelled job to stop; a method that never reports progress cannot be stopped
    cleanly, so a second Ctrl-C leaves at once (the worker is a daemon thread; nothing is written)."""
    if job.wait(1.0):
        return
    print("sr-desk: cancelling after the method's current step (Ctrl-C again to quit now)", file=sys.stderr)
    try:
        while not job.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from sr_desk.engine.downloads import default_weights

    host = _plugin_host(settings)
    store = default_weights(settings.resolved_models_dir())
    declared = {}
    for method in host.methods():
        for wf in method.capabilities.weights:
            declared.setdefault(wf.name, (wf, []))[1].append(method.id)
    if args.action == "list":
        print(f"models folder: {store.models_dir}")
        for name, (wf, users) in sorted(declared.items()):
            where = ""
            if store.status(wf) in ("builtin", "installed"):
                where = f"  {store.path(name)}"
            print(f"{name}  [{store.status(wf)}]  used by {', '.join(users)}{where}")
            if wf.url:
                print(f"    from {wf.url}" + (f" ({wf.size / 1e6:.1f} MB)" if wf.size else ""))
        return EXIT_OK
    names = [args.name] if args.name else sorted(declared)
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise CliError(f"no method uses a weights file {unknown[0]!r} (known: {', '.join(sorted(declared)) or 'none'})")
    if args.action == "remove":
        if not args.name:
            raise CliError("say which weights file to remove")
        print("removed" if store.remove(args.name) else "nothing to remove (built-in files stay)")
        return EXIT_OK
    if args.action == "verify":
        bad = [n for n in names if store.status(declared[n][0]) in ("builtin", "installed") and not store.verify(declared[n][0])]
        for n in names:
            print(f"{n}: {'damaged (size or SHA-256 differs)' if n in bad else store.status(declared[n][0])}")
        return EXIT_FAILED if bad else EXIT_OK
    from tqdm import tqdm

    for name in names:
        wf = declared[name][0]
        with tqdm(desc=name, unit="B", unit_scale=True, file=sys.stderr, disable=None, total=wf.size) as bar:

            def progress(done: int, total: int | None) -> None:
                bar.total = total or bar.total
                bar.n = done
                bar.refresh()

            print(store.ensure(wf, progress=progress))
    return EXIT_OK


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from sr_desk.engine.plugins import UnknownMethodError

    host = _plugin_host(settings)
    if not args.trainer:
        for record in host.records:
            for trainer in record.trainers if record.ok else ():
                print(f"{trainer.name}  [plugin {record.name}]  {trainer.description}")
        return EXIT_OK
    try:
        trainer = host.trainer(args.trainer)
    except UnknownMethodError as exc:
        raise CliError(str(exc)) from None
    return int(trainer.main(list(args.args)))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from sr_desk_resources import SAMPLE_IMAGE

    gui = _gui_entry()
    if gui is not None and not args.headless and _has_screen():
        return int(gui([str(SAMPLE_IMAGE)]))
    from sr_desk.engine.downloads import default_weights

    host = _plugin_host(settings)
    store = default_weights(settings.resolved_models_dir())
    ready = {m.id for m in host.methods("upscale") if all(_has_weights(store, w.name) for w in m.capabilities.weights)}
    method_id = next((m for m in DEMO_METHODS if m in ready), None)
    if method_id is None:
        raise CliError("no upscale method is available; see `sr-desk plugins`")
    print(f"sr-desk: no screen here, so upscaling the bundled sample with {method_id!r}", file=sys.stderr)
    parser = build_parser()
    run_args = parser.parse_args(
        ["upscale", str(SAMPLE_IMAGE), "-o", str(args.output), "--method", method_id, "--scale", "4", "--seed", "0"]
    )
    return cmd_run(run_args, settings)


def cmd_install_launcher(args: argparse.Namespace, settings: Settings) -> int:
    from sr_desk.launcher import install_launcher

    paths = install_launcher(uninstall=args.uninstall, dry_run=args.dry_run)
    if args.uninstall:
        verb = "would remove" if args.dry_run else "removed"
    else:
        verb = "would write" if args.dry_run else "wrote"
    for path in paths:
        print(f"{verb} {path}")
    if not paths:
        print("nothing to remove: no launcher is installed")
    return EXIT_OK


def _has_weights(store, name: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        store.path(name)
    except FileNotFoundError:
        return False
    return True


def _gui_entry():  # type: ignore[no-untyped-def]
    """The editor's entry point, or None while sr-desk is installed without it."""
    try:
        from sr_desk.ui.app import run_app  # type: ignore[import-not-found]
    except ImportError:
        return None
    return run_app


def _has_screen() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


COMMANDS = {
    "upscale": cmd_run,
    "run": cmd_run,
    "methods": cmd_methods,
    "plugins": cmd_plugins,
    "models": cmd_models,
    "train": cmd_train,
    "demo": cmd_demo,
    "install-launcher": cmd_install_launcher,
}


def _is_file_list(argv: Sequence[str]) -> bool:
    """``sr-desk photo.png other.jpg``, as a launcher or a file manager calls it (``Exec=... %F``)."""
    return bool(argv) and argv[0] not in COMMANDS and all(
        not a.startswith("-") and (Path(a).is_file() or Path(a).suffix.lower() in IMAGE_EXTENSIONS) for a in argv
    )


def open_editor(paths: Sequence[str]) -> int:
    gui = _gui_entry()
    if gui is None or not _has_screen():
        print("sr-desk: error: the editor needs a screen; use `sr-desk upscale FILE -o OUT` here", file=sys.stderr)
        return EXIT_FAILED
    return int(gui(list(paths)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _is_file_list(argv):
        return open_editor(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="sr-desk: %(message)s")
    settings = Settings.load()
    if args.command is None:
        if _gui_entry() is None or not _has_screen():
            parser.print_help()
            return EXIT_OK
        return open_editor([])
    from sr_desk.core.atomic import start_journal
    from sr_desk.core.paths import app_paths
    from sr_desk.engine.devices import keep_compiled_kernels_in

    keep_compiled_kernels_in(app_paths().cache_dir / "kernels")
    for leftover in start_journal(app_paths().write_journal):
        print(f"sr-desk: removed {leftover}, left by an sr-desk that was killed while saving", file=sys.stderr)
    try:
        with _exit_cleanly_on_sigterm():
            return COMMANDS[args.command](args, settings)
    except CliError as exc:
        print(f"sr-desk: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SrDeskError, ParamError) as exc:
        print(f"sr-desk: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("sr-desk: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place any other failure becomes one line
        from sr_desk.engine.worker import describe_error

        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        hint = "" if args.verbose else " (run with -v for the traceback)"
        print(f"sr-desk: error: {describe_error(exc)}{hint}", file=sys.stderr)
        return EXIT_FAILED


@contextlib.contextmanager
def _exit_cleanly_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so a file being written is cleaned up (atomic_write's finally)."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except (ValueError, OSError):  # not the main thread, or no such signal here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
