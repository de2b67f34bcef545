"""Wires the editor together: documents, the method panel, the job controller, compare and preferences.

The main window knows documents; the method panel knows plugin
declarations; the job controller knows the worker. This module is the only
place that knows all three, so each stays testable on its own.

A run takes the current document's pixels (and its selection when "selection
only" is on, or when the method works on regions), streams previews onto the
canvas, and applies the result as one undoable step. Live runs (the
interpolation slider) stay previews until the user presses Run.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRectF
from PySide6.QtGui import QAction, QImage, QKeySequence
from PySide6.QtWidgets import QDialog, QMessageBox, QVBoxLayout

from sr_desk.api import ImageInput, Method, Task
from sr_desk.core.imageio import ImageData
from sr_desk.core.faces import Face, face_placement, find_face
from sr_desk.core.placement import cover_box
from sr_desk.core.resize import Filter, resize
from sr_desk.engine.pipeline import ENLARGING_TASKS, JobSpec, can_stream, target_size
from sr_desk.engine.plugins import PluginHost, discover_plugins
from sr_desk.ui.compare import CompareView
from sr_desk.ui.document_view import DocumentView
from sr_desk.ui import file_dialogs
from sr_desk.ui.file_dialogs import SaveChoice
from sr_desk.engine.job_work import SavedResult
from sr_desk.ui.jobs import JobController
from sr_desk.ui.main_window import MainWindow
from sr_desk.ui.method_panel import MethodPanel
from sr_desk.ui.params_widgets import SEED_MAX
from sr_desk.ui.placement import ImagePlacement, PlaceImageTool
from sr_desk.ui.plugins_dialog import PluginsDialog
from sr_desk.ui.preferences import PreferencesDialog
from sr_desk.ui.qimage import rgb_to_qimage
from sr_desk.ui.seed_picker import SeedPicker, SeedResult

log = logging.getLogger(__name__)

#: Results larger than this (megapixels) are made only after the user says yes.
LARGE_RESULT_MP = 100
#: From this size on, "Selection only" says that the whole image is enlarged (the rest with bicubic).
SELECTION_NOTE_MP = 16


@dataclass
class RunningJob:
    view: DocumentView
    source: ImageData
    method: Method
    output_size: tuple[int, int]
    live: bool


@dataclass
class SeedTrial:
    """A Run that tries several seeds one after another; the user picks one result when all are done."""

    spec: JobSpec
    seeds: list[int]
    #: ``(x, y, w, h)`` of the changed region in the result's pixels: where the picker's crops come from.
    box: tuple[int, int, int, int]
    results: list[SeedResult] = field(default_factory=list)

    @property
    def next_seed(self) -> int | None:
        done = len(self.results)
        return self.seeds[done] if done < len(self.seeds) else None


class Workbench(QObject):
    """Connects a ``MainWindow`` to plugins and the worker."""

    def __init__(
        self,
        window: MainWindow,
        host: PluginHost | None = None,
        controller: JobController | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.settings = window.settings
        self.host = host or discover_plugins(self.settings)
        self.panel = MethodPanel(self.host)
        self.controller = controller or JobController(self.settings, self)
        self.compare_view = CompareView()
        self.compare_window = self._compare_window()
        self.job: RunningJob | None = None
        self.trial: SeedTrial | None = None
        self.seed_picker: SeedPicker | None = None
        self.plugins_dialog: PluginsDialog | None = None
        self.last_result: tuple[ImageData, ImageData, str] | None = None  # (input, result, label)
        self.previous_result: tuple[ImageData, ImageData, str] | None = None
        self._unsubscribe = lambda: None

        self.panel_dock = window.add_side_dock(self.panel, "Method")
        self._add_actions()
        self._add_placement()
        self._connect()
        self._on_document_changed(window.current_document_view())
        for record in self.host.broken():
            window.show_message(f"Plugin {record.name} is disabled: {record.error}", "warning")

    # -- construction -----------------------------------------------------------------

    def _compare_window(self) -> QDialog:
        """Compare gets a window of its own: a split view is no use squeezed into a side panel."""
        dialog = QDialog(self.window)
        dialog.setWindowTitle("Compare")
        dialog.setModal(False)
        layout = QVBoxLayout(dialog)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.compare_view)
        dialog.resize(1000, 720)
        return dialog

    def _add_actions(self) -> None:
        window = self.window
        self.compare_action = QAction("&Compare with Input", window)
        self.compare_action.setShortcut(QKeySequence("Ctrl+K"))
        self.compare_action.setEnabled(False)
        self.compare_action.triggered.connect(self.show_compare)
        window.menus["view"].addAction(self.compare_action)
        self.compare_results_action = QAction("Compare &Last Two Results", window)
        self.compare_results_action.setShortcut(QKeySequence("Ctrl+Shift+K"))
        self.compare_results_action.setToolTip("Two results of the same image (two seeds, two methods): undo, run again, compare")
        self.compare_results_action.setEnabled(False)
        self.compare_results_action.triggered.connect(self.show_compare_results)
        window.menus["view"].addAction(self.compare_results_action)
        window.actions["compare_results"] = self.compare_results_action
        self.preferences_action = QAction("&Preferences\u2026", window)
        self.preferences_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.preferences_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.preferences_action.triggered.connect(self.show_preferences)
        window.menus["edit"].addSeparator()
        window.menus["edit"].addAction(self.preferences_action)
        self.plugins_action = QAction("Plu&gins\u2026", window)
        self.plugins_action.setStatusTip("See, switch on and off, and install plugins")
        self.plugins_action.triggered.connect(self.show_plugins)
        window.menus["edit"].addAction(self.plugins_action)
        window.actions["compare"] = self.compare_action
        window.actions["preferences"] = self.preferences_action
        window.actions["plugins"] = self.plugins_action

    def _add_placement(self) -> None:
        """The Place Image tool, for methods that declare ``ImageParam(placeable=True)``."""
        self.placement = ImagePlacement(self)
        self.place_action = self.window.add_tool(PlaceImageTool, lambda: PlaceImageTool(self.placement))
        self.place_action.setEnabled(False)
        self._tool_before_place = self.window.tool_name
        self._placement_fitted = False  # True until the user moves the image: it then follows the selection
        self._donor: np.ndarray | None = None
        self._donor_face: Face | None = None
        self.placement.changed.connect(self._repaint_canvases)
        self.placement.moved.connect(self._on_placement_moved)
        self.panel.placeable_image_changed.connect(self._on_placeable_image)

    def _connect(self) -> None:
        panel, controller = self.panel, self.controller
        panel.run_requested.connect(self.run)
        panel.cancel_requested.connect(controller.cancel)
        panel.message.connect(self.window.show_message)
        controller.started.connect(self._on_started)
        controller.progress.connect(self._on_progress)
        controller.preview.connect(self._on_preview)
        controller.finished.connect(self._on_finished)
        controller.failed.connect(self._on_failed)
        controller.cancelled.connect(self._on_cancelled)
        self.window.current_document_changed.connect(self._on_document_changed)
        self.window.closing.connect(self.shutdown)

    # -- documents --------------------------------------------------------------------

    def _on_document_changed(self, view: DocumentView | None) -> None:
        self._unsubscribe()
        self._unsubscribe = lambda: None
        if view is None:
            self.panel.set_selection_available(False)
            return
        document = view.document

        def refresh(kind: str = "selection") -> None:
            if kind in ("selection", "image"):
                self.panel.set_selection_available(not document.selection.is_empty)
                self.panel.set_document_size(document.image.size)
                if self._placement_fitted:
                    self._fit_placement()

        self._unsubscribe = document.subscribe(refresh)
        refresh()
        if not self.placement.active:
            self.panel.announce_placeable()  # a donor chosen before any image was open

    # -- placing a second image ---------------------------------------------------------

    def _on_placeable_image(self, name: str, image: ImageInput | None) -> None:
        view = self.window.current_document_view()
        if image is None or view is None:
            self.placement.clear()
            self.place_action.setEnabled(False)
            if self.window.tool_name == PlaceImageTool.name:
                self.window.set_tool(self._tool_before_place)
            return
        self._placement_fitted = image.placement is None or image.fitted
        self._donor, self._donor_face = image.rgb, find_face(image.rgb)  # the donor's face, looked for once
        box = self._fitted_box(view) if self._placement_fitted else image.placement
        self.panel.set_placement(name, box, fitted=self._placement_fitted)
        self.placement.show(name, rgb_to_qimage(image.rgb), QRectF(*box))
        self.place_action.setEnabled(True)
        if self.window.tool_name != PlaceImageTool.name:
            self._tool_before_place = self.window.tool_name
            self.window.set_tool(PlaceImageTool.name)
            self.window.show_message(
                "Drag the image to place it over the selection, drag a corner to scale it, then Run.", "info",
                until="placement",
            )

    def _fitted_box(self, view: DocumentView) -> tuple[float, float, float, float]:
        """Where a new donor starts: its face on the face in the selection, else covering the selection (or the
        whole image). The method is told it is only a start (``ImageInput.fitted``)."""
        document, donor = view.document, self._donor
        size = (int(donor.shape[1]), int(donor.shape[0]))
        if document.selection.is_empty:
            return cover_box(size, (0, 0, *document.image.size))
        target = document.selection.bbox
        if self._donor_face is not None:
            on_face = face_placement(document.image.rgb, donor, target, self._donor_face)
            if on_face is not None:
                return on_face
        return cover_box(size, target)

    def _fit_placement(self) -> None:
        image, view = self.placement.image, self.window.current_document_view()
        if image is None or view is None or self._donor is None:
            return
        box = self._fitted_box(view)
        self.placement.show(self.placement.param_name, image, QRectF(*box))
        self.panel.set_placement(self.placement.param_name, box, fitted=True)

    def _on_placement_moved(self) -> None:
        self.window.resolve_message("placement")  # the user found the handles: stop covering them
        self._placement_fitted = False
        self.panel.set_placement(self.placement.param_name, self.placement.as_tuple())

    def _repaint_canvases(self) -> None:
        for view in self.window.document_views():
            view.canvas.update()

    # -- running ----------------------------------------------------------------------

    def run(self, method: Method, spec: JobSpec) -> None:
        view = self.window.current_document_view()
        if view is None:
            self.window.show_message("Open an image first (File \u25b8 Open or drop it on the window).", "warning",
                                     until="document")
            return
        document = view.document
        selection = document.selection
        wants_region = method.capabilities.region or (self.panel.selection_only() and method.task in ENLARGING_TASKS)
        if wants_region and not selection.is_empty:
            spec = dataclasses.replace(spec, selection=selection.mask)
        elif method.capabilities.region:
            self.window.show_message(f"{method.name} works on a selection: select a region first.", "warning")
            return
        try:
            output_size = target_size(document.image.size, spec, method)
        except Exception as exc:  # a bad scale or size: the panel validated most, say the rest
            self.window.show_message(str(exc), "error")
            return
        if not spec.draft:
            choice = self._large_result_choice(document.image, output_size, method, spec)
            if choice == "file":
                self._start_to_file(view, method, spec, output_size)
            if choice != "document":
                return
        self.trial = None
        tries = 1 if spec.draft else self.panel.variations()
        if tries > 1:
            # Seeds the panel's seed box can show, so that a picked one can be set there and run again.
            base = spec.seed if spec.seed is not None else random.randint(0, SEED_MAX - tries)
            seeds = [(base + k) % (SEED_MAX + 1) for k in range(tries)]
            box = self._changed_box(document.image.size, output_size, selection.bbox if spec.selection is not None else None)
            self.trial = SeedTrial(spec, seeds, box)
            spec = dataclasses.replace(spec, seed=seeds[0])
        self._start(view, method, spec, output_size)

    def _large_result_choice(self, source: ImageData, output: tuple[int, int], method: Method, spec: JobSpec) -> str:
        """``"document"``, ``"file"`` or ``"cancel"``: asked before a document over ``LARGE_RESULT_MP`` megapixels.

        Such a result can instead go straight to a file, band by band, as the
        command line writes it, when the job allows (``can_stream``). Below
        the limit nothing is asked; "Selection only" says what it enlarges.
        """
        megapixels = output[0] * output[1] / 1e6
        whole = spec.selection is not None and output != source.size
        if megapixels <= LARGE_RESULT_MP:
            if whole and megapixels >= SELECTION_NOTE_MP:
                self.window.show_message(
                    f"Selection only: the whole image becomes {output[0]}×{output[1]}; the selection is upscaled "
                    "with the method, the rest with bicubic.", "info")
            return "document"
        gigabytes = megapixels * 1e6 * 3 * 4 / 1e9  # float32 RGB, as the document holds it
        can_save = can_stream(source, method, spec)
        text = (f"The result will be {output[0]}×{output[1]} pixels ({megapixels:.0f} MP, about "
                f"{gigabytes:.1f} GB of memory)"
                + (", the whole image, although only the selection is upscaled with the method" if whole else "")
                + (". Make it, or save it straight to a file, which holds only a few rows of it in memory?"
                   if can_save else ". Make it?"))
        return self.ask_large_result(f"A {megapixels:.0f}-megapixel result", text, can_save)

    def ask_large_result(self, title: str, text: str, can_save: bool) -> str:
        """Make the document, save to a file (when ``can_save``) or cancel (tests replace it)."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, self.window)
        make = box.addButton("Make the document", QMessageBox.ButtonRole.AcceptRole)
        save = box.addButton("Save to a file…", QMessageBox.ButtonRole.ActionRole) if can_save else None
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        return "document" if clicked is make else "file" if save is not None and clicked is save else "cancel"

    def ask_result_path(self, suggested: Path) -> SaveChoice | None:
        """Where a result too large for a document goes (tests replace it)."""
        return file_dialogs.ask_save_path(self.window, suggested)

    def _start_to_file(self, view: DocumentView, method: Method, spec: JobSpec, output_size: tuple[int, int]) -> None:
        document = view.document
        base = document.path or document.original_path or Path.home() / document.display_name
        suggested = base.with_name(f"{Path(base).stem}-{method.id}-{output_size[0]}x{output_size[1]}.png")
        choice = self.ask_result_path(suggested)
        if choice is None:
            return
        self.trial = None  # one result, one file: no seed variations
        self._start(view, method, spec, output_size, save_to=(choice.path, choice.quality))

    def _start(self, view: DocumentView, method: Method, spec: JobSpec, output_size: tuple[int, int],
               save_to: tuple[Path, int] | None = None) -> None:
        image = view.document.image
        # Only the slider's own runs (drafts) stay previews: Run applies its result even with Live ticked.
        self.job = RunningJob(view, image, method, output_size, live=spec.draft)
        if self.controller.start(image, method, spec, save_to=save_to) < 0:
            self.job, self.trial = None, None
        elif self.window.tool_name == PlaceImageTool.name:
            self.window.set_tool(self._tool_before_place)  # placing is done: show the result, not the donor

    @staticmethod
    def _changed_box(
        source_size: tuple[int, int], output_size: tuple[int, int], bbox: tuple[int, int, int, int] | None
    ) -> tuple[int, int, int, int]:
        """The selection's box (or the whole image) in the result's pixels."""
        if bbox is None:
            return (0, 0, *output_size)
        fx, fy = output_size[0] / source_size[0], output_size[1] / source_size[1]
        x, y, w, h = bbox
        return round(x * fx), round(y * fy), max(1, round(w * fx)), max(1, round(h * fy))

    def _on_progress(self, fraction: float, text: str) -> None:
        trial = self.trial
        if trial is None:
            self.panel.set_progress(fraction, text)
            return
        done, total = len(trial.results), len(trial.seeds)
        self.panel.set_progress((done + fraction) / total, f"seed {done + 1} of {total}: {text}")

    def _on_started(self, job_id: int, device: str) -> None:
        self.panel.set_running(True)
        self.panel.set_device(device)
        self.window.set_device_text(device)

    def _on_preview(self, image: QImage, box: object) -> None:
        job = self.job
        if job is None or job.view not in self.window.document_views():
            return
        job.view.canvas.show_preview(image, box, box_space=job.output_size)

    def _on_finished(self, result: ImageData | SavedResult, spec: JobSpec) -> None:
        job, self.job = self.job, None
        self.panel.set_running(False)
        self.panel.set_progress(1.0, "done")
        if isinstance(result, SavedResult):
            if job is not None and job.view in self.window.document_views():
                job.view.canvas.clear_preview()
            width, height = result.size
            self.window.show_message(f"Saved the {width}×{height} result to {result.path}; the image is as it was.",
                                     "info")
            return
        if job is None or job.view not in self.window.document_views():
            return
        document = job.view.document
        if document.image is not job.source:
            self.trial = None
            self.window.show_message("The image changed while the method ran; its result was not applied.", "warning")
            job.view.canvas.clear_preview()
            return
        if job.live:
            # A live result stays a preview over the whole image; Run applies it.
            job.view.canvas.show_preview(result.rgb, (0, 0, *result.size), box_space=result.size)
            return
        trial = self.trial
        if trial is not None:
            trial.results.append(SeedResult(int(spec.seed or 0), result))
            seed = trial.next_seed
            if seed is not None:
                self._start(job.view, job.method, dataclasses.replace(trial.spec, seed=seed), job.output_size)
                return
            self.trial = None
            self._offer_results(job, trial)
            return
        self._apply(job, result, self._label(job.method, job.source, result, spec))

    def _offer_results(self, job: RunningJob, trial: SeedTrial) -> None:
        """The picker over every seed's result; the chosen one is applied, the preview goes either way."""
        job.view.canvas.clear_preview()
        if self.seed_picker is not None:
            self.seed_picker.deleteLater()
        picker = SeedPicker(trial.results, trial.box, self.window)

        def picked(item: SeedResult) -> None:
            if job.view not in self.window.document_views() or job.view.document.image is not job.source:
                self.window.show_message("The image changed; the picked result was not applied.", "warning")
                return
            label = f"{self._label(job.method, job.source, item.result, trial.spec)}, seed {item.seed}"
            self._apply(job, item.result, label)
            self.panel.seed_widget.set_value(item.seed)  # Run again gives this result again

        picker.picked.connect(picked)
        picker.discarded.connect(lambda: self.window.show_message(
            f"None of the {len(trial.results)} results was applied; the image is as it was.", "info"))
        self.seed_picker = picker
        picker.show()
        picker.raise_()

    def _apply(self, job: RunningJob, result: ImageData, label: str) -> None:
        """The result on the document as one undo step; it becomes what Compare shows."""
        document = job.view.document
        document.replace_image(result, label)
        self.previous_result, self.last_result = self.last_result, (job.source, result, label)
        self.compare_action.setEnabled(True)
        self.compare_results_action.setEnabled(self._comparable_results() is not None)
        if self.compare_window.isVisible():
            self.show_compare()

    def _on_failed(self, message: str) -> None:
        self._end_run()
        self.window.show_message(message, "error")

    def _on_cancelled(self) -> None:
        self._end_run()
        self.window.show_message("Cancelled; the image is as it was.", "info")

    def _end_run(self) -> None:
        job, self.job, self.trial = self.job, None, None
        self.panel.set_running(False)
        self.panel.set_progress(0.0, "")
        if job is not None and job.view in self.window.document_views():
            job.view.canvas.clear_preview()

    @staticmethod
    def _label(method: Method, source: ImageData, result: ImageData, spec: JobSpec) -> str:
        where = " (selection)" if spec.selection is not None else ""
        if method.task is Task.UPSCALE:
            factor = result.width / source.width
            return f"{method.name} \u00d7{factor:g}{where}"
        return f"{method.name}{where}"

    # -- compare and preferences ------------------------------------------------------------

    def show_compare(self) -> None:
        if self.last_result is None:
            return
        source, result, label = self.last_result
        shown = source.rgb
        if source.size != result.size:
            shown = resize(source.rgb, result.size, Filter.NEAREST)
        reference = source.rgb if source.size != result.size else None
        left = "input (pixels enlarged)" if reference is not None else "before"
        self.compare_view.set_images(shown, result.rgb, left, label, reference_lr=reference)
        self.compare_window.show()
        self.compare_window.raise_()

    def _comparable_results(self) -> tuple[tuple[ImageData, ImageData, str], tuple[ImageData, ImageData, str]] | None:
        """The last two results when they came from the very same input image and have the same size."""
        first, second = self.previous_result, self.last_result
        if first is None or second is None or first[1].size != second[1].size:
            return None
        a, b = first[0], second[0]
        if a is not b and (a.size != b.size or not np.array_equal(a.rgb, b.rgb)):
            return None  # undo restores equal pixels, not always the same object
        return first, second

    def show_compare_results(self) -> None:
        pair = self._comparable_results()
        if pair is None:
            self.window.show_message("Compare needs two results of the same image: undo, run again, then compare.")
            return
        (source, left, left_label), (_, right, right_label) = pair
        reference = source.rgb if source.size != right.size else None
        self.compare_view.set_images(left.rgb, right.rgb, left_label, right_label, reference_lr=reference)
        self.compare_view.set_mode("side_by_side")
        self.compare_window.show()
        self.compare_window.raise_()

    def show_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings, self.host, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.controller.apply_settings(self.settings)
        if dialog.plugins_changed():
            self.reload_plugins()

    def show_plugins(self) -> PluginsDialog:
        """The Plugins dialog (not modal): installing, enabling or disabling a plugin reloads the methods."""
        dialog = self.plugins_dialog
        if dialog is None or not dialog.isVisible():
            if dialog is not None:
                dialog.deleteLater()
            dialog = PluginsDialog(self.settings, self.host, self.window)
            dialog.plugins_changed.connect(self.reload_plugins)
            self.plugins_dialog = dialog
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def reload_plugins(self) -> None:
        """Discover plugins again (after enabling, disabling or installing one): no restart needed."""
        self.host = discover_plugins(self.settings)
        self.panel.set_methods(self.host.methods())
        for record in self.host.broken():
            self.window.show_message(f"Plugin {record.name} is disabled: {record.error}", "warning")

    def shutdown(self) -> None:
        self._unsubscribe()
        self.compare_window.close()
        if self.plugins_dialog is not None:
            self.plugins_dialog.close()  # stops a running pip install
        self.controller.shutdown()
