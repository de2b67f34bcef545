"""Opening images while the editor runs opens them in the running editor (a local socket between processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from sr_desk.core.paths import app_paths
from sr_desk.ui.single_instance import SingleInstance, server_name

HAND_OFF = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QCoreApplication
    from sr_desk.ui.single_instance import SingleInstance

    app = QCoreApplication(sys.argv[:1])
    sys.exit(0 if SingleInstance().try_hand_off(sys.argv[1:], timeout_ms=30000) else 3)
    """
)


@pytest.fixture
def name():
    return f"sr-desk-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def listener(qtbot, name):
    instance = SingleInstance(name)
    assert instance.listen()
    yield instance
    instance.close()


def test_the_server_name_is_per_user_and_per_settings_folder():
    a, b = Path("/home/a/.config/sr-desk"), Path("/portable/sr-desk/config")
    assert server_name(a, "ann") == server_name(a, "ann")
    assert len({server_name(a, "ann"), server_name(b, "ann"), server_name(a, "bob")}) == 3
    assert server_name() == server_name(app_paths().config_dir)  # SR_DESK_HOME moves it too
    assert Path(server_name()).name.startswith("sr-desk-")


def test_a_hand_off_delivers_absolute_paths_and_is_acknowledged(qtbot, listener, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with qtbot.waitSignal(listener.paths_received, timeout=5000) as received:
        assert SingleInstance(name).try_hand_off(["photo.png", tmp_path / "b c.jpg"])
    assert received.args == [[str(tmp_path / "photo.png"), str(tmp_path / "b c.jpg")]]
    with qtbot.waitSignal(listener.paths_received, timeout=5000) as received:
        assert SingleInstance(name).try_hand_off([])  # no files: "show the running editor"
    assert received.args == [[]]


def test_without_a_listener_the_hand_off_fails_at_once(qtbot, name):
    started = time.monotonic()
    assert not SingleInstance(name).try_hand_off(["photo.png"], timeout_ms=3000)
    assert time.monotonic() - started < 1.0


def test_a_listener_that_never_answers_times_out(qtbot, name):
    silent = QLocalServer()
    assert silent.listen(name)
    try:
        started = time.monotonic()
        assert not SingleInstance(name).try_hand_off(["photo.png"], timeout_ms=200)
        assert 0.15 < time.monotonic() - started < 3.0
    finally:
        silent.close()


def test_a_second_listener_leaves_the_live_one_alone(qtbot, listener, name):
    assert not SingleInstance(name).listen()
    with qtbot.waitSignal(listener.paths_received, timeout=5000):
        assert SingleInstance(name).try_hand_off(["x.png"])


def test_a_malformed_message_is_refused(qtbot, listener, name):
    client = QLocalSocket()
    client.connectToServer(name)
    with qtbot.assertNotEmitted(listener.paths_received, wait=100):
        client.write(b'{"paths": "not a list"}\n')
        client.flush()
        qtbot.waitUntil(lambda: client.bytesAvailable() > 0 or client.state() != client.LocalSocketState.ConnectedState,
                        timeout=5000)
    assert bytes(client.readAll().data()) == b"error\n"
    client.abort()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX") or os.name != "posix", reason="socket files are a Unix thing")
def test_a_stale_socket_file_is_removed_and_taken_over(qtbot, tmp_path):
    path = str(tmp_path / "editor.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # an editor that died: the file stays, nobody listens
    dead.close()
    assert os.path.exists(path)
    started = time.monotonic()
    assert not SingleInstance(path).try_hand_off(["photo.png"])
    assert time.monotonic() - started < 1.0

    instance = SingleInstance(path)
    assert instance.listen()
    try:
        with qtbot.waitSignal(instance.paths_received, timeout=5000) as received:
            assert SingleInstance(path).try_hand_off(["/tmp/photo.png"])
        assert received.args == [["/tmp/photo.png"]]
    finally:
        instance.close()
    assert not os.path.exists(path)


@pytest.mark.slow
def test_a_second_process_hands_its_path_to_the_running_one(qtbot, tmp_path, make_png):
    photo = make_png("photo.png")
    listener = SingleInstance()  # the default name, from this test's private SR_DESK_HOME
    assert listener.listen()
    try:
        with qtbot.waitSignal(listener.paths_received, timeout=60_000) as received:
            second = subprocess.Popen([sys.executable, "-c", HAND_OFF, photo.name], cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert received.args == [[str(photo)]]
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
    finally:
        listener.close()


def test_run_app_hands_off_to_the_running_editor_without_a_window(qtbot, make_png, monkeypatch):
    from sr_desk.ui import app as app_module

    def no_window(*args, **kwargs):
        raise AssertionError("a second editor window was made")

    monkeypatch.setattr(app_module, "create_main_window", no_window)
    photo = make_png("photo.png")
    listener = SingleInstance()
    assert listener.listen()
    try:
        with qtbot.waitSignal(listener.paths_received, timeout=5000) as received:
            assert app_module.run_app([str(photo)]) == 0
        assert received.args == [[str(photo)]]
    finally:
        listener.close()


def test_run_app_listens_and_opens_handed_paths_as_tabs(qtbot, make_png, monkeypatch):
    """The first editor serves hand-offs: a path sent while it runs becomes a new tab."""
    from PySide6.QtWidgets import QApplication

    from sr_desk.ui import app as app_module
    from sr_desk.ui.main_window import MainWindow

    first, second = make_png("first.png"), make_png("second.png", color=(1, 2, 3))
    seen: dict[str, object] = {}

    def fake_exec(*_args):
        (window,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["before"] = [v.document.path for v in window.document_views()]
        seen["handed"] = SingleInstance().try_hand_off([second])
        qtbot.waitUntil(lambda: len(window.document_views()) == 2, timeout=5000)
        seen["after"] = [v.document.path for v in window.document_views()]
        window.close()
        window.deleteLater()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert app_module.run_app([str(first)]) == 0
    assert seen == {"before": [first], "handed": True, "after": [first, second]}
    assert not SingleInstance().try_hand_off([first])  # the editor stopped serving when it closed


def test_a_client_that_never_ends_its_line_is_dropped_and_nothing_is_said(qtbot, listener, name, capfd, monkeypatch):
    """The idle timer drops a client that stalls, through the listener's own slot (issue 28: connected to the
    socket's abort, it made libpyside print a warning at every hand-off in the running editor)."""
    import sr_desk.ui.single_instance as module

    monkeypatch.setattr(module, "_CLIENT_IDLE_MS", 50)
    with qtbot.waitSignal(listener.paths_received, timeout=5000):
        assert SingleInstance(name).try_hand_off(["a.png"])
    client = QLocalSocket()
    client.connectToServer(name)
    assert client.waitForConnected(2000)
    client.write(b'{"version": 1, "paths": [')  # and never the rest of the line
    client.flush()
    qtbot.waitUntil(lambda: client.state() == QLocalSocket.LocalSocketState.UnconnectedState, timeout=5000)
    assert "libpyside" not in capfd.readouterr().err
