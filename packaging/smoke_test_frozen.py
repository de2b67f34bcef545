"""Smoke test of a frozen (PyInstaller) sr-desk: does the bundle really work?

    python packaging/smoke_test_frozen.py build/frozen/dist/sr-desk [--python VENV_PYTHON]

Runs the bundled program as a user would, each step in a fresh process with
``SR_DESK_HOME`` in a temporary folder (so nothing of the real user's is read
or written) and ``QT_QPA_PLATFORM=offscreen``: list the methods (built-in
plugins found through the bundled entry-point metadata), upscale with bicubic
and with SRDiff (the bundled weights load), run pip from inside the app and
install the plugin template with it the way the Plugins dialog does, and open
the editor. Stdlib only, so any Python runs it; ``--python`` (a Python with
pip and setuptools) only builds the template's wheel. Exits 1 at the first
failing step with its output.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "packaging" / "plugin-template"
SAMPLE = ROOT / "resources" / "samples" / "sample.png"


class SmokeError(Exception):
    """A step of the smoke test failed; the message says which and why."""


def write_png(path: Path, width: int, height: int) -> None:
    """A small RGB test pattern as PNG, without Pillow (the test needs only the stdlib)."""
    def pixel(x: int, y: int) -> tuple[int, int, int]:
        return (x * 255) // width, (y * 255) // height, ((x ^ y) * 16) % 256

    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    data = path.read_bytes()[:24]
    if not data.startswith(b"\x89PNG"):
        raise SmokeError(f"{path} is not a PNG file")
    return struct.unpack(">II", data[16:24])


def find_program(dist: Path) -> Path:
    """The executable inside a one-folder dist (or the dist path itself when it is the program)."""
    if dist.is_file():
        return dist
    for name in ("sr-desk", "sr-desk.exe", "sr-desk.app/Contents/MacOS/sr-desk"):
        if (dist / name).is_file():
            return dist / name
    raise SmokeError(f"no sr-desk program in {dist}")


class Smoke:
    """Runs the steps against one program with one isolated environment."""

    def __init__(self, program: Path, home: Path) -> None:
        self.program = program
        self.home = home
        self.env = {**os.environ, "SR_DESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
                    "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
        self.env.pop("PYTHONPATH", None)  # the bundle must not lean on a Python installation

    def run(self, step: str, *args: str, timeout: float = 600) -> str:
        """Run ``sr-desk ARGS``; its output, or SmokeError unless it exits 0."""
        start = time.monotonic()
        try:
            done = subprocess.run([str(self.program), *args], env=self.env, capture_output=True, text=True,
                                  timeout=timeout, cwd=self.home)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SmokeError(f"{step}: no answer within {timeout:.0f} s") from None
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise SmokeError(f"{step}: exit status {done.returncode}\n{output}")
        print(f"ok   {step} ({time.monotonic() - start:.1f} s)", flush=True)
        return output

    def check_upscale(self, step: str, source: Path, method: str, scale: int, *extra: str) -> None:
        target = self.home / f"out-{method}.png"
        self.run(step, "upscale", str(source), "-o", str(target), "--method", method, "--scale", str(scale), *extra)
        if not target.is_file():
            raise SmokeError(f"{step}: exited 0 but wrote no {target.name}")
        width, height = png_size(source)
        if png_size(target) != (width * scale, height * scale):
            raise SmokeError(f"{step}: output is {png_size(target)}, expected {(width * scale, height * scale)}")

    def check_editor(self, seconds: float) -> None:
        """Open the editor on a file: it must still run after ``seconds`` and take a second file from another call."""
        env = {**self.env, "DISPLAY": self.env.get("DISPLAY") or ":0"}  # offscreen needs none; the CLI asks for one
        image = self.home / "editor.png"
        write_png(image, 32, 32)
        start = time.monotonic()
        editor = subprocess.Popen([str(self.program), str(image)], env=env, cwd=self.home,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            try:
                output, _ = editor.communicate(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass
            else:
                took = time.monotonic() - start
                raise SmokeError(f"editor: ended after {took:.1f} s, status {editor.returncode}\n{output}")
            # The single-instance hand-off needs the running editor's event loop to answer.
            try:
                second = subprocess.run([str(self.program), str(image)], env=env, cwd=self.home,
                                        capture_output=True, text=True, timeout=60)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise SmokeError("editor: a second call did not hand its file to the running editor") from None
            if second.returncode != 0:
                output = second.stdout + second.stderr
                raise SmokeError(f"editor: the hand-off call exited {second.returncode}\n{output}")
            print(f"ok   editor opens and answers a second call ({time.monotonic() - start:.1f} s)", flush=True)
        finally:
            if editor.poll() is None:
                editor.terminate()
                try:
                    editor.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    editor.kill()
                    editor.wait()


def build_template_wheel(python: str, out: Path) -> Path:
    """The plugin template built into a wheel by ``python``'s pip (from a copy: the repo stays clean)."""
    source = out / "plugin-template"
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "dist"))
    done = subprocess.run(
        [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    wheels = sorted(out.glob("sr_desk_example_plugin-*.whl"))
    if done.returncode != 0 or not wheels:
        raise SmokeError(f"building the plugin template's wheel with {python} failed\n{done.stdout}{done.stderr}")
    return wheels[0]


def smoke_test(dist: Path, python: str, editor_seconds: float = 20.0) -> None:
    """Every step, in order; raises SmokeError at the first failure."""
    program = find_program(dist).resolve()
    with tempfile.TemporaryDirectory(prefix="sr-desk-smoke-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        smoke = Smoke(program, home)
        smoke.run("--version", "--version")
        listing = smoke.run("methods", "methods")
        missing = [m for m in ("bicubic", "lanczos", "srdiff", "srdiff-encoder") if f"\n{m} " not in "\n" + listing]
        if missing:
            raise SmokeError(f"methods: {', '.join(missing)} missing from the list\n{listing}")
        smoke.check_upscale("upscale bicubic x4 (256x192 sample)", SAMPLE, "bicubic", 4)
        tiny = home / "tiny.png"
        write_png(tiny, 24, 24)
        smoke.check_upscale("upscale srdiff x4 (24x24, 4 steps)", tiny, "srdiff", 4,
                            "--param", "steps=4", "--seed", "0")  # fmt: skip
        version = smoke.run("-m pip --version", "-m", "pip", "--version")
        if not version.startswith("pip "):
            raise SmokeError(f"-m pip --version: unexpected output\n{version}")
        wheel = build_template_wheel(python, Path(tmp))
        plugins_dir = home / "data" / "plugins"  # app_paths().plugins_dir under SR_DESK_HOME
        # The command line of sr_desk.ui.plugins_dialog.build_pip_command for a frozen app.
        smoke.run("-m pip install --target <user plugin folder> (plugin template wheel)",
                  "-m", "pip", "install", "--upgrade", "--no-input", "--disable-pip-version-check",
                  "--progress-bar", "off", "--no-deps", "--target", str(plugins_dir), str(wheel))  # fmt: skip
        listing = smoke.run("methods after the plugin install", "methods")
        if "\nexample-sharpen " not in "\n" + listing:
            raise SmokeError(f"methods: the installed plugin's example-sharpen is missing\n{listing}")
        smoke.check_upscale("upscale with the installed plugin (example-sharpen x2)", tiny, "example-sharpen", 2)
        if editor_seconds > 0:
            smoke.check_editor(editor_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=Path, help="the one-folder dist (build/frozen/dist/sr-desk) or the program")
    parser.add_argument("--python", default=sys.executable,
                        help="a Python with pip and setuptools, to build the plugin template's wheel (this one)")
    parser.add_argument("--editor-seconds", type=float, default=20.0,
                        help="how long the editor must stay up (0: skip the editor)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        smoke_test(args.dist, args.python, args.editor_seconds)
    except SmokeError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    print(f"smoke test passed in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
