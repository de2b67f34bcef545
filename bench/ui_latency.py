"""How smooth the editor stays while a method streams a preview at every step.

    python bench/ui_latency.py [--size 1024x768] [--steps 40] [--step-ms 40]

Drives the real editor (main window, workbench, job controller, canvas) with
a method that spends ``--step-ms`` per step in torch convolutions on the
worker thread, as a diffusion model does, and reports a full-size preview
after every step. A 5 ms timer on the GUI thread measures the event loop:
the longest gap beyond its period is the longest UI-thread stall, and the
99th percentile of the gaps is the event-loop latency. The same measurement
with no job running is the baseline; both run in this process.

Offscreen by default (QT_QPA_PLATFORM=offscreen); under ``xvfb-run`` it
paints to a real X server.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402

from sr_desk.api import Capabilities, IntParam, Method, Task, hookimpl  # noqa: E402
from sr_desk.core.selection import Selection  # noqa: E402
from sr_desk.core.settings import Settings  # noqa: E402
from sr_desk.engine.plugins import PluginHost  # noqa: E402
from sr_desk.ui.app import create_application  # noqa: E402
from sr_desk.ui.main_window import MainWindow  # noqa: E402
from sr_desk.ui.workbench import Workbench  # noqa: E402

TIMER_MS = 5


def busy_method(request, context):  # type: ignore[no-untyped-def]
    """Torch work per step (it releases the GIL, like a real model) and a full-size preview each step."""
    steps, step_ms = request.params["steps"], request.params["step_ms"]
    width, height = request.output_size
    weights = torch.randn(16, 16, 3, 3)
    x = torch.randn(1, 16, 128, 128)
    result = np.repeat(np.repeat(request.image, 2, 0), 2, 1)
    for step in range(1, steps + 1):
        start = time.perf_counter()
        while (time.perf_counter() - start) * 1000 < step_ms:
            x = torch.nn.functional.conv2d(x, weights, padding=1).tanh()
        preview = np.clip(result + 0.1 * np.sin(step / 3), 0, 1).astype(np.float32)
        context.report(step, steps, preview=preview[:height, :width])
    return result


class BenchPlugin:
    SR_DESK_API_VERSION = "1.0"

    @staticmethod
    @hookimpl
    def sr_desk_methods():  # type: ignore[no-untyped-def]
        return [
            Method(
                id="bench-busy",
                name="Busy x2",
                task=Task.UPSCALE,
                run=busy_method,
                params=[IntParam(name="steps", default=40, minimum=1, maximum=1000),
                        IntParam(name="step_ms", default=40, minimum=1, maximum=1000)],
                capabilities=Capabilities(scales=(2,), default_scale=2, previews=True, tiles=False),
            )
        ]


def measure_loop(app, until, timeout_s: float) -> list[float]:  # type: ignore[no-untyped-def]
    """Gaps (ms) between ticks of a TIMER_MS timer while ``until()`` is false."""
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    timer = QTimer()
    timer.setInterval(TIMER_MS)
    timer.timeout.connect(tick)
    timer.start()
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.0005)
    timer.stop()
    return gaps


def summary(gaps: list[float]) -> tuple[float, float, int]:
    array = np.array(gaps[1:] or [0.0])
    return float(array.max() - TIMER_MS), float(np.percentile(array, 99) - TIMER_MS), len(array)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x768", help="input size; the output (and each preview) is 2x")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--step-ms", type=int, default=40)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    app = create_application()
    window = MainWindow(Settings(), recovery_dir=Path(tempfile.mkdtemp()), check_recovery_at_start=False)
    host = PluginHost()
    host.register(BenchPlugin(), "bench")
    workbench = Workbench(window, host=host)
    window.resize(1400, 900)
    window.show()

    from sr_desk.core.document import Document
    from sr_desk.core.imageio import ImageData

    rgb = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    view = window.add_document(Document.from_image(ImageData(rgb=rgb), "bench"))
    view.document.set_selection(Selection.rect(view.document.image.size, (width // 4, height // 4, width // 2,
                                                                         height // 2)), "Rectangle")
    idle = measure_loop(app, lambda: False, timeout_s=2.0)

    previews: list[float] = []
    workbench.controller.preview.connect(lambda *a: previews.append(time.perf_counter()))
    done = []
    workbench.controller.finished.connect(lambda *a: done.append(True))
    workbench.panel.select_method("bench-busy")
    workbench.panel.set_param_values({"steps": args.steps, "step_ms": args.step_ms})
    start = time.perf_counter()
    workbench.panel.request_run()
    busy = measure_loop(app, lambda: bool(done), timeout_s=600)
    elapsed = time.perf_counter() - start
    workbench.shutdown()

    idle_stall, idle_p99, idle_n = summary(idle)
    run_stall, run_p99, run_n = summary(busy)
    print(f"editor {os.environ['QT_QPA_PLATFORM']}, input {width}x{height}, previews {2 * width}x{2 * height}, "
          f"{args.steps} steps of {args.step_ms} ms; {len(previews)} previews drawn in {elapsed:.1f} s")
    print(f"{'':<22}{'longest stall ms':>18}{'p99 latency ms':>16}{'ticks':>8}")
    print(f"{'idle (baseline)':<22}{idle_stall:18.1f}{idle_p99:16.1f}{idle_n:8d}")
    print(f"{'run with previews':<22}{run_stall:18.1f}{run_p99:16.1f}{run_n:8d}")
    verdict = "under" if run_stall < 50 else "OVER"
    print(f"longest stall {run_stall:.1f} ms: {verdict} the 50 ms budget "
          f"(x{run_stall / max(idle_stall, 0.1):.1f} the idle loop's)")


if __name__ == "__main__":
    main()
