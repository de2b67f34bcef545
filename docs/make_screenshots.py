"""Screenshots of the editor for the README, taken from the running app on a virtual screen.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--method srdiff] [--only NAME,...]

Each shot drives the real editor as a user would and grabs the window:

* ``editor-first-start.png``: the window as a new user first sees it (no image yet);
* ``editor-preview.png``: a selection upscaled with ``--method``, previews streaming onto the canvas;
* ``editor-compare.png``: Compare of that result (split view, heat map);
* ``editor-compare-large-measuring.png``: Compare of a 28-megapixel result while it is measured on a
  worker thread (the busy bar shows and the window keeps answering: the grab itself needs it to);
* ``editor-interpolate.png``: SRDiff interpolation with Live ticked, the slider's preview on the canvas;
* ``editor-seeds.png``: DoSSR's "Try 4 seeds" picker.

``--only fusion`` (not in the default set) fuses ``--fusion-donor`` into an
elliptic selection of ``--fusion-base`` in the editor (SRDiff fusion, blend
mode, seed 0) and writes ``fusion.png``: base, donor, the results at
strengths 10 and 60, and the editor window. The defaults are two face photos
of ``../shared/data/faces``, whose licence forbids redistribution: the
picture is for your own eyes, and git ignores it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QApplication, QWidget

from sr_desk.core.selection import Selection
from sr_desk.core.settings import Settings
from sr_desk.ui.app import create_application, create_main_window
from sr_desk_resources import SAMPLE_IMAGE

HERE = Path(__file__).resolve().parent / "images"
SELECTION = (12, 112, 104, 72)
SHOTS = ("first-start", "preview", "compare-large", "interpolate", "seeds", "target-size")
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def wait_for(condition: Callable[[], bool], timeout: float = 900) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    return condition()


def save(widget: QWidget, name: str) -> None:
    path = HERE / f"editor-{name}.png"
    widget.grab().save(str(path))
    print(f"wrote {path}")


def new_window(paths: list[str]):
    window = create_main_window(paths, Settings(), recovery_dir=Path(tempfile.mkdtemp()), check_recovery_at_start=False)
    window.resize(1500, 920)
    window.show()
    pump(0.5)
    return window


def close(window) -> None:
    window.workbench.shutdown()  # type: ignore[attr-defined]
    for view in window.document_views():
        view.document.history.mark_clean()
    window.close()


def select_region(window) -> None:
    view = window.current_document_view()
    document = view.document
    document.set_selection(Selection.rect(document.image.size, SELECTION), "Rectangle")
    view.canvas.fit()


def run_and_wait(workbench) -> bool:
    done: list[bool] = []
    workbench.controller.finished.connect(lambda *a: done.append(True))
    workbench.controller.failed.connect(lambda message: (print(message), done.append(False)))
    workbench.panel.request_run()
    wait_for(lambda: bool(done))
    return bool(done) and done[0]


def shot_first_start() -> None:
    window = new_window([])
    pump(0.5)
    save(window, "first-start")
    close(window)


def shot_preview_and_compare(method: str, preview_after: int) -> None:
    window = new_window([str(SAMPLE_IMAGE)])
    workbench = window.workbench
    select_region(window)
    workbench.panel.select_method(method)
    workbench.panel.selection_check.setChecked(True)
    previews: list[int] = []
    grabbed: list[bool] = []

    def on_preview(*_args: object) -> None:
        previews.append(1)
        if len(previews) == preview_after and not grabbed:
            pump(0.2)
            save(window, "preview")
            grabbed.append(True)

    workbench.controller.preview.connect(on_preview)
    if run_and_wait(workbench):
        pump(0.5)
        window.current_document_view().canvas.fit()
        workbench.show_compare()
        workbench.compare_view.set_mode("split")
        workbench.compare_view.set_heat_map_visible(True)
        wait_for(lambda: not workbench.compare_view.is_measuring(), 60)
        pump(0.5)
        save(workbench.compare_window, "compare")
    close(window)


def shot_compare_large() -> None:
    """Compare of a 28-megapixel result: measured on a worker thread, grabbed while it measures."""
    from sr_desk.core.imageio import load_image
    from sr_desk.core.resize import Filter, resize

    window = new_window([str(SAMPLE_IMAGE)])
    workbench = window.workbench
    lr = load_image(SAMPLE_IMAGE).rgb
    size = (lr.shape[1] * 24, lr.shape[0] * 24)
    before, after = resize(lr, size, Filter.NEAREST), resize(lr, size, Filter.LANCZOS)
    view = workbench.compare_view
    started = time.monotonic()
    view.set_images(before, after, "input (pixels enlarged)", "Lanczos x24, 28 MP", reference_lr=lr)
    view.set_mode("split")
    workbench.compare_window.show()
    pump(0.3)  # the window paints and answers while the worker measures
    if view.is_measuring():
        save(workbench.compare_window, "compare-large-measuring")
    wait_for(lambda: not view.is_measuring(), 120)
    print(f"28 MP compare measured in {time.monotonic() - started:.1f} s with the window responsive")
    close(window)


def shot_interpolate() -> None:
    window = new_window([str(SAMPLE_IMAGE)])
    workbench = window.workbench
    select_region(window)
    panel = workbench.panel
    panel.select_method("srdiff-interpolate")
    panel.selection_check.setChecked(True)
    panel.set_param_values({"steps": 10})
    panel.live_check.setChecked(True)
    previews: list[int] = []
    workbench.controller.preview.connect(lambda *a: previews.append(1))
    finished: list[bool] = []
    workbench.controller.finished.connect(lambda *a: finished.append(True))
    panel.set_param_values({"blend": 0.3})
    panel.request_run(draft=True)
    wait_for(lambda: bool(finished))
    pump(0.5)
    print(f"live preview on the canvas: {window.current_document_view().canvas.has_preview}")
    save(window, "interpolate")
    close(window)


def shot_seeds() -> None:
    window = new_window([str(SAMPLE_IMAGE)])
    workbench = window.workbench
    select_region(window)
    panel = workbench.panel
    panel.select_method("dossr")
    panel.selection_check.setChecked(True)
    panel.seed_widget.set_value(1)
    panel.variations_spin.setValue(4)
    panel.request_run()
    if wait_for(lambda: workbench.seed_picker is not None and workbench.seed_picker.isVisible()):
        pump(0.5)
        save(workbench.seed_picker, "seeds")
    close(window)


def shot_target_size() -> None:
    """Diff-SR's panel, built from its declarations, asked for 4K: the presets and the result's size."""
    window = new_window([str(SAMPLE_IMAGE)])
    panel = window.workbench.panel
    panel.select_method("diffsr")
    panel.scale_combo.setCurrentIndex(panel.scale_combo.findData("size"))
    panel.size_preset.setCurrentIndex(panel.size_preset.findData("3840x2160"))
    pump(0.5)
    save(window, "target-size")
    close(window)


def shot_fusion(base_path: Path, donor_path: Path) -> None:
    from PIL import Image

    from sr_desk.core.imageio import load_image
    from sr_desk.core.resize import Filter, resize

    window = new_window([str(base_path)])
    workbench = window.workbench
    view = window.current_document_view()
    document = view.document
    width, height = document.image.size
    box = (round(width * 0.25), round(height * 0.22), round(width * 0.5), round(height * 0.66))
    document.set_selection(Selection.ellipse((width, height), box), "Ellipse")
    view.canvas.fit()
    panel = workbench.panel
    panel.select_method("srdiff-fusion")
    panel.param_widgets["donor"].load_path(donor_path)
    pump(0.2)
    # Aligned face crops: the donor lies exactly over the base, as a user would drag and scale it.
    box = (0.0, 0.0, float(width), float(height))
    workbench.placement.show("donor", workbench.placement.image, QRectF(*box))
    workbench._placement_fitted = False
    panel.set_placement("donor", box)
    panel.seed_widget.set_value(0)
    results = []
    for strength in (10, 60):
        panel.set_param_values({"strength": strength})
        if not run_and_wait(workbench):
            close(window)
            return
        results.append(document.image.rgb.copy())
        if strength == 10:
            window.undo()
    pump(0.5)
    save(window, "fusion-window")
    donor = panel.param_widgets["donor"].value().rgb
    donor = resize(donor, (width, height), Filter.LANCZOS) if donor.shape[:2] != (height, width) else donor
    base = load_image(base_path).rgb
    strip = np.concatenate([base, donor, *results], axis=1)
    path = HERE / "fusion.png"
    Image.fromarray((np.clip(strip, 0, 1) * 255).round().astype(np.uint8)).save(path)
    print(f"wrote {path} (base, donor, strength 10, strength 60)")
    close(window)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="srdiff")
    parser.add_argument("--preview-after", type=int, default=6, help="grab after this many previews")
    parser.add_argument("--only", default=",".join(SHOTS), help=f"comma-separated shots of {', '.join(SHOTS)}, fusion")
    parser.add_argument("--fusion-base", type=Path, default=FACES / "codeformer_crop_0143.png")
    parser.add_argument("--fusion-donor", type=Path, default=FACES / "codeformer_crop_0240.png")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    app = create_application()
    if "first-start" in wanted:
        shot_first_start()
    if "preview" in wanted:
        shot_preview_and_compare(args.method, args.preview_after)
    if "compare-large" in wanted:
        shot_compare_large()
    if "interpolate" in wanted:
        shot_interpolate()
    if "seeds" in wanted:
        shot_seeds()
    if "target-size" in wanted:
        shot_target_size()
    if "fusion" in wanted:
        shot_fusion(args.fusion_base, args.fusion_donor)
    app.quit()


if __name__ == "__main__":
    main()
