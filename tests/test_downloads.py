"""The weights downloader against a real HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sr_desk.api.method import WeightFile
from sr_desk.api.request import WeightsStore
from sr_desk.core.errors import SrDeskError
from sr_desk.engine.downloads import (
    DownloadCancelled,
    DownloadError,
    ModelManager,
    default_weights,
    download,
    part_path,
    sha256_of,
)
from sr_desk.engine.weights import LocalWeights

TIMEOUT = 5.0
CHUNK = 16 * 1024
PAYLOAD = os.urandom(300 * 1024 + 123)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class ServerState:
    """What the fake server serves, how it misbehaves, and what it saw."""

    payload: bytes = PAYLOAD
    ignore_range: bool = False
    fail_status: int | None = None
    drop_after: int | None = None  # one-shot: close the connection after this many body bytes
    stall: bool = False  # send headers, then never the body
    redirect_to: str | None = None  # one-shot: answer 302 with this Location
    ranges: list[str | None] = field(default_factory=list)
    served: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        state = self.server.state
        header = self.headers.get("Range")
        if state.redirect_to is not None:
            location, state.redirect_to = state.redirect_to, None
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        state.ranges.append(header)
        if state.fail_status is not None:
            self.send_error(state.fail_status)
            return
        body = state.payload
        start, status = 0, 200
        if header and not state.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", header)
            assert match, header
            start = int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if state.stall:
            state.stop.wait(TIMEOUT)
            return
        data = body[start:]
        if state.drop_after is not None:
            data, state.drop_after = data[: state.drop_after], None
            self.close_connection = True
        state.served.append(len(data))
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = ServerState()

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # a client that cancels mid-body breaks the pipe; that is the point of the test

    def url(self, name: str = "model.bin") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "*")  # a proxy in the environment must not see 127.0.0.1
    monkeypatch.setenv("NO_PROXY", "*")
    srv = FakeServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.state.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def fetch(server: FakeServer, target: Path, **kwargs) -> Path:  # type: ignore[no-untyped-def]
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("chunk_size", CHUNK)
    return download(server.url(), target, **kwargs)


# -- download() ----------------------------------------------------------------


def test_full_download_checks_the_hash_and_reports_progress(server, tmp_path):
    seen: list[tuple[int, int | None]] = []
    target = tmp_path / "deep" / "folder" / "model.bin"
    result = fetch(server, target, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=lambda d, t: seen.append((d, t)))
    assert result == target
    assert target.read_bytes() == PAYLOAD
    assert not part_path(target).exists()
    assert len(seen) > 2
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == len(PAYLOAD)
    assert {t for _, t in seen} == {len(PAYLOAD)}
    assert server.state.ranges == [None]


def test_total_comes_from_the_server_when_no_size_is_declared(server, tmp_path):
    seen: list[tuple[int, int | None]] = []
    fetch(server, tmp_path / "m.bin", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_an_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    target = tmp_path / "model.bin"
    cut = 100_000
    server.state.drop_after = cut
    with pytest.raises(DownloadError, match="try again to resume") as info:
        fetch(server, target, sha256=PAYLOAD_SHA)
    assert "\n" not in str(info.value) and "127.0.0.1" in str(info.value)
    assert not target.exists()
    assert part_path(target).read_bytes() == PAYLOAD[:cut]

    seen: list[int] = []
    fetch(server, target, sha256=PAYLOAD_SHA, progress=lambda d, t: seen.append(d))
    assert server.state.ranges == [None, f"bytes={cut}-"]
    assert server.state.served == [cut, len(PAYLOAD) - cut]
    assert seen[0] == cut and seen[-1] == len(PAYLOAD)
    assert sha256_of(target) == PAYLOAD_SHA
    assert not part_path(target).exists()


def test_a_server_ignoring_range_restarts_from_zero(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(PAYLOAD[:50_000])
    server.state.ignore_range = True
    seen: list[int] = []
    fetch(server, target, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=lambda d, t: seen.append(d))
    assert server.state.ranges == ["bytes=50000-"]
    assert server.state.served == [len(PAYLOAD)]
    assert target.read_bytes() == PAYLOAD
    assert seen == sorted(seen) and seen[0] == 0


def test_a_complete_part_answered_with_416_is_verified_and_installed(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(PAYLOAD)
    fetch(server, target, sha256=PAYLOAD_SHA)  # no size declared, so the server is asked
    assert server.state.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert target.read_bytes() == PAYLOAD


def test_a_complete_part_of_the_declared_size_needs_no_request(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(PAYLOAD)
    fetch(server, target, sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    assert server.state.ranges == []
    assert target.read_bytes() == PAYLOAD


def test_a_part_longer_than_the_file_restarts_from_zero(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(PAYLOAD + b"stale tail")
    fetch(server, target, sha256=PAYLOAD_SHA)
    assert server.state.ranges == [f"bytes={len(PAYLOAD) + 10}-", None]
    assert target.read_bytes() == PAYLOAD


def test_a_stale_prefix_is_dropped_and_downloaded_again(server, tmp_path):
    target = tmp_path / "model.bin"
    part_path(target).write_bytes(b"x" * 1000)  # from an older version of the file
    fetch(server, target, sha256=PAYLOAD_SHA)
    assert server.state.ranges == ["bytes=1000-", None]
    assert target.read_bytes() == PAYLOAD


def test_a_wrong_hash_deletes_everything(server, tmp_path):
    target = tmp_path / "model.bin"
    server.state.payload = b"not the model" * 1000
    with pytest.raises(DownloadError) as info:
        fetch(server, target, sha256=PAYLOAD_SHA)
    message = str(info.value)
    assert PAYLOAD_SHA[:12] in message
    assert hashlib.sha256(server.state.payload).hexdigest()[:12] in message
    assert "\n" not in message
    assert not target.exists() and not part_path(target).exists()


def test_a_wrong_size_from_the_server_keeps_nothing(server, tmp_path):
    target = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match="expected 1000"):
        fetch(server, target, size=1000)
    assert not target.exists() and not part_path(target).exists()


def test_http_errors_are_one_line(server, tmp_path):
    server.state.fail_status = 500
    with pytest.raises(DownloadError) as info:
        fetch(server, tmp_path / "model.bin")
    message = str(info.value)
    assert "HTTP 500" in message and "127.0.0.1" in message and "model.bin" in message
    assert "\n" not in message and "Traceback" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, SrDeskError)
    assert not (tmp_path / "model.bin").exists()


def test_connection_refused(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=rf"127\.0\.0\.1:{port}.*refused") as info:
        download(f"http://127.0.0.1:{port}/m.bin", tmp_path / "m.bin", timeout=TIMEOUT)
    assert "\n" not in str(info.value)


def test_a_stalled_server_times_out(server, tmp_path):
    server.state.stall = True
    with pytest.raises(DownloadError, match="timed out after 0.3 s"):
        fetch(server, tmp_path / "m.bin", timeout=0.3)


def test_cancel_keeps_the_part_for_a_later_resume(server, tmp_path):
    target = tmp_path / "model.bin"
    seen: list[int] = []
    with pytest.raises(DownloadCancelled, match="will resume"):
        fetch(server, target, progress=lambda d, t: seen.append(d), cancel=lambda: bool(seen) and seen[-1] > 0)
    kept = part_path(target).stat().st_size
    assert 0 < kept < len(PAYLOAD)
    assert not target.exists()

    fetch(server, target, sha256=PAYLOAD_SHA)
    assert server.state.ranges[-1] == f"bytes={kept}-"
    assert target.read_bytes() == PAYLOAD


def test_cancel_before_the_start_sends_no_request(server, tmp_path):
    with pytest.raises(DownloadCancelled):
        fetch(server, tmp_path / "m.bin", cancel=lambda: True)
    assert server.state.ranges == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/m.bin", "data:,hello", "m.bin", "http:///m"])
def test_only_http_urls(tmp_path, url):
    with pytest.raises(DownloadError, match="refusing"):
        download(url, tmp_path / "m.bin", timeout=TIMEOUT)
    assert not any(tmp_path.iterdir())


def test_redirects_are_followed_but_only_to_http(server, tmp_path):
    server.state.redirect_to = server.url("elsewhere.bin")
    fetch(server, tmp_path / "a.bin", sha256=PAYLOAD_SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD

    for location in ("file:///etc/passwd", "ftp://127.0.0.1/b.bin"):
        server.state.redirect_to = location
        with pytest.raises(DownloadError, match="not allowed") as info:
            fetch(server, tmp_path / "b.bin")
        assert "\n" not in str(info.value)
        assert not (tmp_path / "b.bin").exists() and not part_path(tmp_path / "b.bin").exists()


def test_an_existing_target_is_replaced_only_when_complete(server, tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    server.state.drop_after = 10
    with pytest.raises(DownloadError):
        fetch(server, target)
    assert target.read_bytes() == b"old"
    fetch(server, target)
    assert target.read_bytes() == PAYLOAD


# -- ModelManager --------------------------------------------------------------


@pytest.fixture
def folders(tmp_path):
    builtin, models = tmp_path / "builtin", tmp_path / "models"
    builtin.mkdir()
    return builtin, models


def test_manager_status_ensure_verify_remove(server, folders):
    builtin, models = folders
    manager = ModelManager(models, builtin_dirs=[builtin])
    wf = WeightFile("model.bin", url=server.url(), sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    assert isinstance(manager, WeightsStore)
    assert manager.status(wf) == "missing"
    assert not manager.verify(wf)

    server.state.drop_after = 1000
    with pytest.raises(DownloadError):
        manager.ensure(wf)
    assert manager.status(wf) == "partial"

    seen: list[int] = []
    path = manager.ensure(wf, progress=lambda d, t: seen.append(d))
    assert path == models / "model.bin" == manager.path("model.bin")
    assert seen[0] == 1000 and seen[-1] == len(PAYLOAD)
    assert manager.status(wf) == "installed"
    assert manager.verify(wf)

    requests = len(server.state.ranges)
    assert manager.ensure(wf) == path  # already there: no request
    assert len(server.state.ranges) == requests

    path.write_bytes(b"tampered")
    assert not manager.verify(wf)
    assert manager.remove("model.bin")
    assert not manager.remove("model.bin")
    assert manager.status(wf) == "missing"


def test_builtin_weights_come_first_and_are_never_removed(folders):
    builtin, models = folders
    models.mkdir()
    (builtin / "w.bin").write_bytes(b"shipped")
    (models / "w.bin").write_bytes(b"downloaded")
    manager = ModelManager(models, builtin_dirs=(builtin,))
    wf = WeightFile("w.bin", sha256=hashlib.sha256(b"shipped").hexdigest())
    assert manager.path("w.bin") == builtin / "w.bin"
    assert manager.status(wf) == "builtin"
    assert manager.ensure(wf) == builtin / "w.bin"  # no URL needed when present
    assert manager.verify(wf)
    assert manager.remove("w.bin")
    assert (builtin / "w.bin").read_bytes() == b"shipped"
    assert manager.path("w.bin") == builtin / "w.bin"


def test_missing_weights_explain_how_to_get_them(folders):
    _, models = folders
    manager = ModelManager(models)
    with pytest.raises(FileNotFoundError) as info:
        manager.path("x4.safetensors")
    message = str(info.value)
    assert "weights file x4.safetensors is not installed" in message
    assert "`sr-desk models download x4.safetensors`" in message
    assert str(models) in message
    with pytest.raises(ValueError):
        manager.path("../secret")


def test_ensure_without_a_url_is_a_download_error(folders):
    _, models = folders
    manager = ModelManager(models)
    with pytest.raises(DownloadError, match=r"w\.bin.*no download URL"):
        manager.ensure(WeightFile("w.bin"))
    assert not models.exists() or not any(models.iterdir())


def test_concurrent_ensures_download_once(server, folders):
    _, models = folders
    manager = ModelManager(models)
    wf = WeightFile("model.bin", url=server.url(), sha256=PAYLOAD_SHA)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(manager.ensure(wf))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert results == [models / "model.bin"] * 3
    assert server.state.ranges == [None]
    assert (models / "model.bin").read_bytes() == PAYLOAD


def test_default_weights_and_local_weights(tmp_path):
    store = default_weights(tmp_path / "models")
    assert isinstance(store, WeightsStore)
    assert store.folders[-1] == tmp_path / "models"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.bin").write_bytes(b"a")
    assert store.path("a.bin") == tmp_path / "models" / "a.bin"

    local = LocalWeights((tmp_path / "models",))
    assert local.path("a.bin") == tmp_path / "models" / "a.bin"
    with pytest.raises(FileNotFoundError, match="not found"):
        local.path("b.bin")
    with pytest.raises(ValueError):
        local.path("sub/a.bin")
