"""Starting the editor: the QApplication, the main window, and a safety net for errors."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from sr_desk.core.settings import Settings
from sr_desk.core.xcb import missing_xcb_packages, needs_xcb, xcb_advice
from sr_desk.ui.main_window import MainWindow

__all__ = ["APP_NAME", "create_application", "create_main_window", "install_exception_hooks", "run_app"]

log = logging.getLogger(__name__)

APP_NAME = "sr-desk"
ORGANIZATION = "sr-desk"


def _app_icon() -> QIcon | None:
    try:
        from sr_desk_resources import ICONS_DIR
    except ImportError:  # pragma: no cover - resources are part of the distribution
        return None
    for name in ("sr-desk.svg", "sr-desk-256.png"):
        path = ICONS_DIR / name
        if path.is_file():
            icon = QIcon(str(path))
            if not icon.isNull():
                return icon
    return None


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (the running one if there is one), named and with sr-desk's icon."""
    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    app.setDesktopFileName("sr-desk")
    icon = _app_icon()
    if icon is not None:
        app.setWindowIcon(icon)
    return app


def _warm_up(window: MainWindow) -> None:
    """Have the worker load the compiled kernels now, before the user's first job needs them."""
    from sr_desk.engine.devices import warm_compiled_kernels

    workbench = getattr(window, "workbench", None)
    if workbench is not None:
        workbench.controller.worker.submit(warm_compiled_kernels, label="warm-up")


def create_main_window(
    paths: Sequence[str] = (), settings: Settings | None = None, *, workbench: bool = True, **kwargs: Any
) -> MainWindow:
    """A main window with ``paths`` open (the QApplication must exist); for ``run_app`` and tests.

    ``workbench`` adds the method panel, the worker and compare (``window.workbench``).
    """
    window = MainWindow(settings, **kwargs)
    if workbench:
        from sr_desk.ui.workbench import Workbench

        window.workbench = Workbench(window)  # type: ignore[attr-defined]
    icon = _app_icon()
    if icon is not None:
        window.setWindowIcon(icon)
    if paths:
        window.open_paths(list(paths))
    return window


class _ErrorRelay(QObject):
    """Carries error reports from any thread to the GUI thread (a queued signal)."""

    report = Signal(str, str)


def install_exception_hooks(show: Callable[[str, str], None]) -> Callable[[], None]:
    """Route uncaught exceptions (GUI thread and other threads) to ``show(text, level)`` and the log.

    Returns a function that puts the previous hooks back.
    """
    relay = _ErrorRelay()
    relay.report.connect(show)
    previous_sys = sys.excepthook
    previous_threading = threading.excepthook

    def summary(exc_type: type[BaseException], exc: BaseException | None) -> str:
        text = " ".join(str(exc).split()) if exc is not None else ""
        return f"Unexpected error: {exc_type.__name__}{': ' + text if text else ''} (details in the log)"

    def sys_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous_sys(exc_type, exc, tb)
            return
        log.error("uncaught exception:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        try:
            relay.report.emit(summary(exc_type, exc), "error")
        except RuntimeError:  # the relay is gone while shutting down
            previous_sys(exc_type, exc, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a background thread"
        log.error(
            "uncaught exception in %s:\n%s",
            name,
            "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)),
        )
        try:
            relay.report.emit(summary(args.exc_type, args.exc_value), "error")
        except RuntimeError:
            previous_threading(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def uninstall() -> None:
        if sys.excepthook is sys_hook:
            sys.excepthook = previous_sys
        if threading.excepthook is thread_hook:
            threading.excepthook = previous_threading
        relay.deleteLater()

    uninstall.relay = relay  # type: ignore[attr-defined]  # keep it alive as long as the hooks
    return uninstall


def _bring_forward(window: MainWindow, paths: list[str]) -> None:
    """Open what another ``sr-desk`` process handed over, and show the window to the user."""
    if paths:
        window.open_paths(paths)
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


def run_app(paths: list[str]) -> int:
    """Open the editor with ``paths`` and run until the window closes; the exit status.

    When this user's editor already runs, ``paths`` open as new tabs there
    and this returns 0 at once, without a window of its own. Where Qt's X11
    plugin would abort for want of system libraries, this says which packages
    to install and returns 1 instead.
    """
    from sr_desk.ui.single_instance import SingleInstance

    if needs_xcb():
        missing = missing_xcb_packages()
        if missing:
            print(xcb_advice(missing), file=sys.stderr)
            return 1

    from sr_desk.core.atomic import start_journal
    from sr_desk.core.paths import app_paths
    from sr_desk.engine.devices import keep_compiled_kernels_in

    start_journal(app_paths().write_journal)  # removes temporary files a killed sr-desk left behind
    keep_compiled_kernels_in(app_paths().cache_dir / "kernels")
    app = create_application()
    instance = SingleInstance(parent=app)
    if instance.try_hand_off(paths):
        return 0
    instance.listen()  # False when it cannot (another editor won a race): this one still works
    window = create_main_window([])
    instance.paths_received.connect(lambda received: _bring_forward(window, received))
    uninstall = install_exception_hooks(window.show_message)
    try:
        window.show()
        if paths:
            window.open_paths(paths)
        _warm_up(window)
        return int(app.exec())
    finally:
        instance.close()
        uninstall()
