"""Build the one-folder sr-desk app with PyInstaller, then smoke-test it.

    python packaging/build_frozen.py                       # everything, in build/frozen
    python packaging/build_frozen.py --venv /tmp/freeze-venv --skip-install
    python packaging/build_frozen.py --smoke-only build/frozen/dist/sr-desk

Steps: a clean virtual environment (PyInstaller bundles what is installed
there, so nothing from the developer's own environment leaks in), torch
pinned to the CPU build, a regular (non-editable) install of this repository
(an editable install would leave the app pointing at the source tree) and
PyInstaller; then ``pyinstaller packaging/frozen/sr-desk.spec`` and
packaging/smoke_test_frozen.py. Prints the build time and the bundle size.
Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "frozen" / "sr-desk.spec"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from smoke_test_frozen import SmokeError, smoke_test  # noqa: E402

#: Exactly this release: on the build machine it resolves to the local CPU wheel,
#: where a looser requirement pulls gigabytes of CUDA wheels. See packaging/README.md for CUDA.
TORCH = "torch==2.13.0"


def venv_python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def step(title: str, command: list[str], cwd: Path | None = None) -> float:
    """Run ``command`` with its output on ours; the seconds it took. Exits the build on failure."""
    print(f"\n== {title}\n$ {' '.join(command)}", flush=True)
    start = time.monotonic()
    if subprocess.run(command, cwd=cwd).returncode != 0:
        sys.exit(f"build_frozen: {title} failed")
    return time.monotonic() - start


def folder_size(path: Path) -> int:
    """Bytes on disk under ``path`` (as ``du``: allocated blocks where the platform reports them)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            total += getattr(info, "st_blocks", 0) * 512 or info.st_size
    return total


def install(python: Path) -> float:
    # The bundled pip is the one users' plugin installs run: bundle a current one, not ensurepip's.
    seconds = step("pip", [str(python), "-m", "pip", "install", "--upgrade", "pip"])
    seconds += step("torch (CPU build)", [str(python), "-m", "pip", "install", TORCH])
    seconds += step("sr-desk's dependencies, PyInstaller, setuptools (builds the plugin template in the smoke test)",
                    [str(python), "-m", "pip", "install", str(ROOT), "pyinstaller", "setuptools"])  # fmt: skip
    # A local folder of the same version may count as installed already: force the current source in.
    seconds += step("sr-desk from this checkout",
                    [str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", str(ROOT)])  # fmt: skip
    return seconds


def run_smoke(dist: Path, python: str) -> float:
    print(f"\n== smoke test of {dist}", flush=True)
    start = time.monotonic()
    try:
        smoke_test(dist, python)
    except SmokeError as exc:
        sys.exit(f"build_frozen: smoke test failed: {exc}")
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "frozen",
                        help="work folder; the app lands in BUILD_DIR/dist/sr-desk (build/frozen)")  # fmt: skip
    parser.add_argument("--venv", type=Path, help="use (or create) this virtual environment (BUILD_DIR/venv)")
    parser.add_argument("--skip-install", action="store_true", help="the venv is ready: install nothing")
    parser.add_argument("--smoke-only", type=Path, metavar="DIST", help="only smoke-test this one-folder dist")
    args = parser.parse_args(argv)
    build_dir = args.build_dir.resolve()
    venv_dir = (args.venv or build_dir / "venv").resolve()
    python = venv_python(venv_dir)

    if args.smoke_only:
        seconds = run_smoke(args.smoke_only, str(python) if python.exists() else sys.executable)
        print(f"\nsmoke test: {seconds:.0f} s")
        return 0

    started = time.monotonic()
    install_s = 0.0
    build_dir.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        print(f"creating {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    if not args.skip_install:
        install_s = install(python)
    dist_dir, work_dir = build_dir / "dist", build_dir / "work"
    build_s = step("PyInstaller", [str(python), "-m", "PyInstaller", "--noconfirm", "--clean",
                                   "--distpath", str(dist_dir), "--workpath", str(work_dir), str(SPEC)],
                   cwd=build_dir)  # fmt: skip
    dist = dist_dir / "sr-desk"
    size_mib = folder_size(dist) / 2**20
    smoke_s = run_smoke(dist, str(python))
    print(f"\ninstall: {install_s:.0f} s  PyInstaller build: {build_s:.0f} s  smoke test: {smoke_s:.0f} s")
    print(f"bundle {dist}: {size_mib:.0f} MiB; everything took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
