"""How soon a live slider move shows its first picture: SRDiff interpolation drafts on a selection.

    python bench/live_draft.py [--selection 256] [--moves 4] [--device cpu]

Runs as the editor does with Live on: each move of the blend slider is a
draft job (``JobSpec.draft``) of ``srdiff-interpolate`` on the selection
(a square of ``--selection`` px in the middle of a held-out photo, or of a
seeded texture without the data), through the worker, the pipeline and its
previews, with the editor's preview side and rate. For every move it prints
the seconds to the first preview and to the finished draft. The same moves
without the quick look (the full-size draft only, as before issue 28) run
first in the same process as the baseline. The model is loaded by a warm-up
move that is not counted, as the editor has it loaded by the first move.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"


def photo(side: int) -> np.ndarray:
    """A ``side`` px square: the centre of the first held-out photo, or a seeded texture without the data."""
    try:
        from sr_desk.training.data import list_images, load_photo, split_holdout

        pixels = load_photo(split_holdout(list_images(DATA))[1][0])
        y, x = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
        crop = pixels[max(0, y) : max(0, y) + side, max(0, x) : max(0, x) + side]
        return np.ascontiguousarray(crop, dtype=np.float32) / (255.0 if crop.dtype == np.uint8 else 1.0)
    except (OSError, IndexError, ValueError):
        rng = np.random.default_rng(0)
        return np.kron(rng.random((side // 8, side // 8, 3)), np.ones((8, 8, 1))).astype(np.float32)


def move(worker, method, image, selection, blend: float) -> tuple[float, float]:
    """One slider move: ``(seconds to the first preview, seconds to the finished draft)``."""
    from sr_desk.engine.pipeline import JobSpec, prepare, run_job
    from sr_desk.engine.worker import EventKind, JobState

    first = threading.Event()
    spec = prepare(method, JobSpec(method_id=method.id, params={"blend": blend, "seed_b": 2}, seed=1,
                                   draft=True, selection=selection))

    def seen(event) -> None:
        if event.kind is EventKind.PROGRESS and event.preview is not None and not first.is_set():
            first.set()

    start = time.perf_counter()
    job = worker.submit(lambda context: run_job(image, method, spec, context), on_event=seen)
    first.wait(600)
    to_preview = time.perf_counter() - start
    job.wait(600)
    if job.state is not JobState.FINISHED:
        raise RuntimeError(f"the draft failed: {job.error}")
    return to_preview, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--selection", type=int, default=256, help="side of the square selection in px (256)")
    parser.add_argument("--moves", type=int, default=4, help="slider moves timed per variant (4)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch

    from sr_desk.core.imageio import ImageData
    from sr_desk.engine.plugins import PluginHost
    from sr_desk.engine.downloads import default_weights
    from sr_desk.engine.worker import Worker
    from sr_desk_plugins.srdiff import methods as srdiff_methods

    side = args.selection
    pixels = photo(side + 128)
    image = ImageData(rgb=pixels)
    selection = np.zeros(pixels.shape[:2], np.float32)
    selection[64 : 64 + side, 64 : 64 + side] = 1.0
    host = PluginHost()
    host.discover()
    method = host.method("srdiff-interpolate")
    blends = [0.2 + 0.6 * k / max(1, args.moves - 1) for k in range(args.moves)]
    quick_side = srdiff_methods.QUICK_SIDE
    # The editor's previews: its screen-sized side (at least 2048) and 15 a second.
    with Worker(device=args.device, weights=default_weights(ROOT / "runs" / "models"), preview_side=2048,
                preview_rate=15.0) as worker:
        move(worker, method, image, selection, 0.5)  # loads the model, as the editor has it by the first move
        rows = []
        for label, side_used in (("full-size draft only (before)", 10**9), ("quick look, then the draft", quick_side)):
            srdiff_methods.QUICK_SIDE = side_used
            times = [move(worker, method, image, selection, blend) for blend in blends]
            rows.append((label, times))
        srdiff_methods.QUICK_SIDE = quick_side
    device = f"CPU, {torch.get_num_threads()} threads" if args.device == "cpu" else args.device
    print(f"command: python bench/live_draft.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"device: {device}; selection {side} x {side} px of a {side + 128} px photo; {args.moves} moves each")
    print("| variant | first preview, s (each move) | finished draft, s (each move) | first preview x baseline |")
    print("|---|---|---|---:|")
    base = np.mean([t[0] for t in rows[0][1]])
    for label, times in rows:
        firsts = " / ".join(f"{t[0]:.2f}" for t in times)
        ends = " / ".join(f"{t[1]:.2f}" for t in times)
        print(f"| {label} | {firsts} | {ends} | {np.mean([t[0] for t in times]) / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
