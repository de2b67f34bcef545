"""One editor per user: opening images while sr-desk runs opens them as new tabs of the running editor.

The first editor listens on a local socket (``QLocalServer``); a second
``sr-desk photo.png`` (from a shell, a file manager or the launcher) first
tries to hand its paths to it and exits when the running editor
acknowledges them. The conversation is one line each way: the new process
sends ``{"version": 1, "paths": [absolute paths]}`` as JSON and a newline;
the running one answers ``ok`` and a newline before it opens them.

The server name is per user and per settings folder (``SR_DESK_HOME``
included), so two users, or a portable install beside a normal one, never
talk to each other. On Linux the socket lives in ``$XDG_RUNTIME_DIR``
(private to the user) when there is one; elsewhere Qt puts it in the temp
folder and ``UserAccessOption`` restricts it to the user. A socket left by
an editor that crashed is removed when nobody answers on it.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from sr_desk.core.paths import app_paths

__all__ = ["PROTOCOL_VERSION", "SingleInstance", "server_name"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_ACK = b"ok\n"
_REFUSED = b"error\n"
_MAX_MESSAGE_BYTES = 1 << 20
_MAX_PATHS = 1000
_CLIENT_IDLE_MS = 5000
_PROBE_MS = 200
_MAX_SOCKET_PATH = 100  # sockaddr_un.sun_path is 104 (macOS) or 108 (Linux) bytes


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name at all (some containers): still per home folder
        return os.environ.get("USER") or os.environ.get("USERNAME") or ""


def server_name(config_dir: Path | None = None, user: str | None = None) -> str:
    """The local-socket name of this user's editor for the settings folder ``config_dir`` (default: the app's)."""
    config = Path(config_dir if config_dir is not None else app_paths().config_dir).expanduser().absolute()
    who = _user() if user is None else user
    digest = hashlib.sha256(f"{who}\0{config}".encode()).hexdigest()[:16]
    name = f"sr-desk-{digest}"
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if sys.platform.startswith("linux") and runtime and os.path.isdir(runtime):
        path = os.path.join(runtime, name)
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            return path
    return name


def _parse_message(line: bytes) -> list[str] | None:
    """The paths of a hand-off message, or None when it is not one."""
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("version"), int):
        return None
    paths = message.get("paths")
    if not isinstance(paths, list) or len(paths) > _MAX_PATHS or not all(isinstance(p, str) and p for p in paths):
        return None
    return list(paths)


class SingleInstance(QObject):
    """Hands paths to a running editor (:meth:`try_hand_off`), or listens for them (:meth:`listen`).

    ``name``: the local-socket name (default :func:`server_name`).

    Signals
    -------
    paths_received(list)
        Another process handed over these absolute paths (possibly none:
        "just show the window").
    """

    paths_received = Signal(list)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self.server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}  # connected clients and what they sent so far

    # -- the second process ---------------------------------------------------------------

    def try_hand_off(self, paths: Iterable[str | os.PathLike[str]], timeout_ms: int = 500) -> bool:
        """Give ``paths`` to the running editor; True once it acknowledged them (the caller then exits).

        False at once when no editor listens, or after ``timeout_ms`` when one
        does not answer. Needs a QCoreApplication; runs a local event loop
        while it waits, so a listener in this same process is served too.
        """
        if QCoreApplication.instance() is None:
            raise RuntimeError("SingleInstance.try_hand_off needs a QCoreApplication")
        absolute = [os.path.abspath(os.fspath(p)) for p in paths]
        payload = json.dumps({"version": PROTOCOL_VERSION, "paths": absolute}).encode("utf-8") + b"\n"
        socket = QLocalSocket()
        loop = QEventLoop()
        reply = bytearray()

        def on_connected() -> None:
            socket.write(payload)
            socket.flush()

        def on_ready_read() -> None:
            reply.extend(bytes(socket.readAll().data()))
            if b"\n" in reply:
                loop.quit()

        socket.connected.connect(on_connected)
        socket.readyRead.connect(on_ready_read)
        socket.errorOccurred.connect(loop.quit)
        socket.disconnected.connect(loop.quit)
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)
        try:
            socket.connectToServer(self.name)
            if socket.state() == QLocalSocket.LocalSocketState.UnconnectedState:
                return False  # nobody listens: refused at once
            timer.start(max(1, int(timeout_ms)))
            loop.exec()
            if socket.bytesAvailable():
                reply.extend(bytes(socket.readAll().data()))
            handed = bytes(reply).startswith(_ACK)
            if handed:
                log.info("handed %d path(s) to the running sr-desk", len(absolute))
            return handed
        finally:
            timer.stop()
            for signal in (socket.connected, socket.readyRead, socket.errorOccurred, socket.disconnected):
                signal.disconnect()  # the closures refer to the socket: no cycle outlives this call
            socket.abort()  # Python owns the parentless socket and the timer: they go with this frame

    # -- the first process ----------------------------------------------------------------

    def listen(self) -> bool:
        """Serve hand-offs from now on; False when another live editor already serves this name.

        A name left behind by an editor that died (nobody answers on it) is
        removed and taken over.
        """
        if self.server is not None and self.server.isListening():
            return True
        # Ask first: with UserAccessOption Qt binds elsewhere and renames over the name, so listen()
        # alone would take the name from a live editor instead of failing.
        if self._someone_answers():
            log.info("another sr-desk already serves %s", self.name)
            return False
        QLocalServer.removeServer(self.name)  # nobody answers: a socket file there is a dead editor's
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("cannot listen on %s: %s", self.name, server.errorString())
            server.deleteLater()
            return False
        server.newConnection.connect(self._on_new_connection)
        self.server = server
        return True

    def close(self) -> None:
        """Stop serving (the socket file goes too)."""
        self._buffers.clear()
        if self.server is not None:
            self.server.close()
            self.server.deleteLater()
            self.server = None

    def _someone_answers(self) -> bool:
        probe = QLocalSocket()
        try:
            probe.connectToServer(self.name)
            return probe.waitForConnected(_PROBE_MS)
        finally:
            probe.abort()

    def _on_new_connection(self) -> None:
        # Slots are methods, never lambdas holding the socket or self: a socket deleted later must
        # not drop the last reference to this object from inside its own destructor.
        server = self.server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            if socket is None:
                break
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(self._on_client_ready)
            socket.disconnected.connect(self._on_client_gone)
            idle = QTimer(socket)  # a client that never finishes its line is dropped
            idle.setSingleShot(True)
            # Not socket.abort: the socket came from C++ and has no wrapper for libpyside to add a slot to,
            # which it said on the terminal at every hand-off.
            idle.timeout.connect(self._on_client_idle)
            idle.start(_CLIENT_IDLE_MS)

    def _on_client_idle(self) -> None:
        timer = self.sender()
        socket = timer.parent() if timer is not None else None
        if isinstance(socket, QLocalSocket):
            socket.abort()

    def _on_client_gone(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._buffers.pop(socket, None)
            socket.deleteLater()

    def _on_client_ready(self) -> None:
        socket = self.sender()
        if not isinstance(socket, QLocalSocket):
            return
        data = bytes(socket.readAll().data())
        buffer = self._buffers.get(socket)
        if buffer is None or socket.state() != QLocalSocket.LocalSocketState.ConnectedState:
            return  # answered already, or gone
        buffer.extend(data)
        if b"\n" not in buffer:
            if len(buffer) > _MAX_MESSAGE_BYTES:
                socket.abort()
            return
        line = bytes(buffer[: buffer.index(b"\n")])
        del self._buffers[socket]
        paths = _parse_message(line)
        socket.write(_ACK if paths is not None else _REFUSED)
        socket.flush()
        socket.disconnectFromServer()
        if paths is None:
            log.warning("ignored a malformed hand-off message on %s", self.name)
            return
        # Acknowledged first: opening large images takes longer than the sender waits.
        self.paths_received.emit(paths)
