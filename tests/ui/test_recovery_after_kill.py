"""Unsaved work survives a killed process: a real editor process is SIGKILLed after its autosave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sr_desk.core.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")]

CRASHING_EDITOR = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from sr_desk.core.selection import Selection
    from sr_desk.core.settings import Settings
    from sr_desk.ui.app import create_application
    from sr_desk.ui.main_window import MainWindow

    app = create_application()
    window = MainWindow(Settings(), recovery_dir=Path(sys.argv[1]), check_recovery_at_start=False)
    document = window.open_paths([sys.argv[2]])[0].document
    document.set_selection(Selection.rect(document.image.size, (2, 2, 5, 4)), "Rectangle")
    document.replace_image(document.image.with_pixels(document.image.rgb * 0.5, None), "Darken")
    window.autosave_now(blocking=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no closeEvent: a crash
    """
)


def test_unsaved_work_comes_back_after_the_process_is_killed(qtbot, make_png, tmp_path):
    from sr_desk.ui.main_window import MainWindow

    source = make_png("photo.png", size=(16, 12), color=(200, 100, 50))
    recovery = tmp_path / "recovery"
    result = subprocess.run([sys.executable, "-c", CRASHING_EDITOR, str(recovery), str(source)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr

    offered = []
    window = MainWindow(Settings(), recovery_dir=recovery, check_recovery_at_start=False,
                        recovery_prompt=lambda entries: offered.extend(entries) or "restore")
    try:
        restored = window.check_recovery()
        assert [e.name for e in offered] == ["photo.png"]
        document = restored[0].document
        expected = np.array([200, 100, 50], np.float32) / 255 * 0.5
        assert np.allclose(document.image.rgb, expected, atol=1e-6)
        assert document.selection.bbox == (2, 2, 5, 4)
        assert document.modified
    finally:
        for view in window.document_views():
            view.document.history.mark_clean()
        window.close()
