"""Screenshots of the editor for the README, taken from the running app on a virtual screen.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--method srdiff]

Opens the bundled sample, selects a region, upscales it with ``--method``
("selection only") and saves two window grabs: one while the previews
stream onto the canvas, one of the compare view after the result is applied.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from sr_desk.core.selection import Selection
from sr_desk.core.settings import Settings
from sr_desk.ui.app import create_application, create_main_window
from sr_desk_resources import SAMPLE_IMAGE

HERE = Path(__file__).resolve().parent / "images"


def pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="srdiff")
    parser.add_argument("--preview-after", type=int, default=6, help="grab after this many previews")
    args = parser.parse_args()
    app = create_application()
    window = create_main_window([str(SAMPLE_IMAGE)], Settings(), recovery_dir=Path(tempfile.mkdtemp()),
                                check_recovery_at_start=False)
    window.resize(1500, 920)
    window.show()
    pump(0.5)
    workbench = window.workbench  # type: ignore[attr-defined]
    view = window.current_document_view()
    document = view.document
    document.set_selection(Selection.rect(document.image.size, (12, 112, 104, 72)), "Rectangle")
    workbench.panel.select_method(args.method)
    workbench.panel.selection_check.setChecked(True)
    view.canvas.fit()
    previews: list[int] = []
    done: list[bool] = []
    workbench.controller.preview.connect(lambda *a: previews.append(1))
    workbench.controller.finished.connect(lambda *a: done.append(True))
    workbench.controller.failed.connect(lambda message: (print(message), done.append(False)))
    workbench.panel.request_run()
    grabbed = False
    deadline = time.monotonic() + 900
    while not done and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
        if not grabbed and len(previews) >= args.preview_after:
            pump(0.2)
            window.grab().save(str(HERE / "editor-preview.png"))
            grabbed = True
    pump(0.5)
    view.canvas.fit()
    workbench.show_compare()
    workbench.compare_view.set_mode("split")
    workbench.compare_view.set_heat_map_visible(True)
    pump(0.5)
    workbench.compare_window.grab().save(str(HERE / "editor-compare.png"))
    print(f"wrote {HERE / 'editor-preview.png'} and {HERE / 'editor-compare.png'}")
    workbench.shutdown()
    for v in window.document_views():
        v.document.history.mark_clean()
    window.close()
    app.quit()


if __name__ == "__main__":
    main()
