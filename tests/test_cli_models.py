"""`sr-desk models`: list, download (from a server on 127.0.0.1), verify and remove a method's weights."""

import functools
import hashlib
import http.server
import threading

import pytest

from sr_desk.cli import main
from tests.conftest import install_fake_plugin

PAYLOAD = bytes(range(256)) * 400

PLUGIN = """
from sr_desk.api import Capabilities, Method, WeightFile, hookimpl
SR_DESK_API_VERSION = "1.0"
WEIGHTS = WeightFile(name="toy-x2.safetensors", url="{url}", sha256="{sha}", size={size})

@hookimpl
def sr_desk_methods():
    return [Method(id="toy", name="Toy", task="upscale", run=print, capabilities=Capabilities(weights=(WEIGHTS,)))]
"""


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "toy-x2.safetensors").write_bytes(PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/toy-x2.safetensors"
    httpd.shutdown()
    thread.join(5)


def test_models_download_verify_remove(site_dir, server, private_home, capsys, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    install_fake_plugin(site_dir, "toy", PLUGIN.format(url=server, sha=sha, size=len(PAYLOAD)))
    assert main(["models"]) == 0
    assert "toy-x2.safetensors  [missing]  used by toy" in capsys.readouterr().out
    assert main(["models", "download", "toy-x2.safetensors"]) == 0
    installed = private_home / "data" / "models" / "toy-x2.safetensors"
    assert installed.read_bytes() == PAYLOAD
    assert main(["models", "verify"]) == 0
    assert "toy-x2.safetensors: installed" in capsys.readouterr().out
    installed.write_bytes(b"tampered")
    assert main(["models", "verify"]) == 1
    assert main(["models", "remove", "toy-x2.safetensors"]) == 0
    assert not installed.exists()
    assert main(["models", "download", "nope.safetensors"]) == 2
