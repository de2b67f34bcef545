"""`sr-desk install-launcher`: the menu entry, the icons, and their removal, in a private home."""

from __future__ import annotations

import base64
import importlib.util
import plistlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_desk import launcher
from sr_desk.cli import main
from sr_desk.launcher import ICON_SIZES, LauncherError, install_launcher, windows_shortcut_script
from sr_desk_resources import ICONS_DIR, RESOURCES_DIR

VALIDATE = shutil.which("desktop-file-validate")
NEEDS_VALIDATE = pytest.mark.skipif(
    VALIDATE is None,
    reason="desktop-file-validate is not installed (Debian/Ubuntu: apt-get install desktop-file-utils)",
)


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """HOME and XDG_DATA_HOME in tmp_path: nothing reaches the real desktop."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.delenv("APPDATA", raising=False)
    return home / "data"


def expected_linux_files(data: Path) -> set[Path]:
    hicolor = data / "icons" / "hicolor"
    return {
        data / "applications" / "sr-desk.desktop",
        hicolor / "scalable" / "apps" / "sr-desk.svg",
        *(hicolor / f"{n}x{n}" / "apps" / "sr-desk.png" for n in ICON_SIZES),
    }


def files_under(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def parse_exec(value: str) -> list[str]:
    """Split an Exec value as a desktop would (Desktop Entry spec: string escapes, then quoting)."""
    text = value.replace("\\\\", "\0").replace("\\s", " ").replace("\\n", "\n").replace("\\t", "\t")
    text = text.replace("\\r", "\r").replace("\0", "\\")
    args, current, quoted, started, i = [], [], False, False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if current or started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
        i += 1
    assert not quoted, f"unbalanced quotes in {value!r}"
    if current or started:
        args.append("".join(current))
    return [a.replace("%%", "%") if not (a.startswith("%") and len(a) == 2) else a for a in args]


def entry_keys(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if line and not line.startswith("#")]
    assert body[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in body[1:])


# -- the icon ----------------------------------------------------------------


def test_the_icon_pngs_exist_in_every_size_with_alpha():
    for n in ICON_SIZES:
        image = Image.open(ICONS_DIR / f"sr-desk-{n}.png")
        assert image.size == (n, n) and image.mode == "RGBA", n
        alpha = np.asarray(image)[..., 3]
        assert alpha[0, 0] == 0 and alpha[-1, -1] == 0, f"{n} px: the corners must be transparent"
        assert alpha[n // 2, n // 2] == 255, f"{n} px: the middle must be opaque"
    with Image.open(ICONS_DIR / "sr-desk.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    assert (ICONS_DIR / "sr-desk.icns").read_bytes()[:4] == b"icns"


def test_the_svg_parses_and_the_pngs_are_rendered_from_it(qapp):
    from PySide6.QtSvg import QSvgRenderer

    root = ET.parse(ICONS_DIR / "sr-desk.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox") == "0 0 256 256"
    renderer = QSvgRenderer(str(ICONS_DIR / "sr-desk.svg"))
    assert renderer.isValid()
    # The PNGs must be re-rendered whenever the SVG changes (python resources/icons/render_icons.py).
    spec = importlib.util.spec_from_file_location("render_icons", ICONS_DIR / "render_icons.py")
    render_icons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_icons)
    image = render_icons.render(renderer, 64)
    fresh = np.frombuffer(image.constBits(), np.uint8).reshape(64, image.bytesPerLine())[:, : 64 * 4]
    shipped = np.asarray(Image.open(ICONS_DIR / "sr-desk-64.png").convert("RGBA")).reshape(64, 64 * 4)
    assert np.abs(fresh.astype(int) - shipped.astype(int)).mean() < 2


# -- Linux / freedesktop -----------------------------------------------------


def test_install_writes_the_menu_entry_and_the_icons(data_home):
    written = install_launcher(platform="linux")
    assert set(written) == expected_linux_files(data_home) and len(written) == len(set(written))
    hicolor = data_home / "icons" / "hicolor"
    for n in ICON_SIZES:
        shipped = (ICONS_DIR / f"sr-desk-{n}.png").read_bytes()
        assert (hicolor / f"{n}x{n}" / "apps" / "sr-desk.png").read_bytes() == shipped
    assert (hicolor / "scalable" / "apps" / "sr-desk.svg").read_bytes() == (ICONS_DIR / "sr-desk.svg").read_bytes()

    keys = entry_keys(data_home / "applications" / "sr-desk.desktop")
    assert parse_exec(keys["Exec"]) == [sys.executable, "-m", "sr_desk", "%F"]
    assert keys["TryExec"] == sys.executable
    assert keys["Icon"] == "sr-desk" and keys["Type"] == "Application" and keys["Terminal"] == "false"
    assert keys["Categories"] == "Graphics;2DGraphics;RasterGraphics;"
    assert set(keys["MimeType"].rstrip(";").split(";")) == set(launcher.MIME_TYPES)
    assert "@" not in (data_home / "applications" / "sr-desk.desktop").read_text()


def test_the_entry_runs_this_interpreter(data_home):
    install_launcher(platform="linux")
    argv = parse_exec(entry_keys(data_home / "applications" / "sr-desk.desktop")["Exec"])
    command = [a for a in argv if a != "%F"] + ["--version"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("sr-desk "), result.stderr


def test_xdg_data_home_defaults_to_local_share(data_home, monkeypatch):
    monkeypatch.delenv("XDG_DATA_HOME")
    home = data_home.parent
    assert set(install_launcher(platform="linux", dry_run=True)) == expected_linux_files(home / ".local" / "share")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # invalid by the spec: ignored
    assert set(install_launcher(platform="linux", dry_run=True)) == expected_linux_files(home / ".local" / "share")


@NEEDS_VALIDATE
def test_the_installed_entry_passes_desktop_file_validate(data_home):
    install_launcher(platform="linux")
    result = subprocess.run([VALIDATE, str(data_home / "applications" / "sr-desk.desktop")],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@NEEDS_VALIDATE
@pytest.mark.parametrize("python", ["/opt/my apps/py 3.11/bin/python3", "/srv/odd'name/$HOME/50%/back\\slash/python"])
def test_an_interpreter_path_with_spaces_or_odd_characters_is_quoted(data_home, monkeypatch, python):
    monkeypatch.setattr(sys, "executable", python)
    install_launcher(platform="linux")
    entry = data_home / "applications" / "sr-desk.desktop"
    assert parse_exec(entry_keys(entry)["Exec"]) == [python, "-m", "sr_desk", "%F"]
    result = subprocess.run([VALIDATE, str(entry)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_template_is_valid_once_filled(tmp_path):
    template = (RESOURCES_DIR / "launcher" / "sr-desk.desktop.in").read_text()
    for placeholder in ("@EXEC@ %F", "@TRYEXEC@", "@ICON@"):
        assert placeholder in template
    if VALIDATE:
        filled = tmp_path / "sr-desk.desktop"
        filled.write_text(launcher.desktop_entry())
        result = subprocess.run([VALIDATE, str(filled)], capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_uninstall_removes_exactly_what_install_wrote(data_home):
    # Someone else's files in the same folders stay.
    other = data_home / "applications" / "other.desktop"
    other.parent.mkdir(parents=True)
    other.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")
    (data_home / "icons" / "hicolor" / "48x48" / "apps").mkdir(parents=True)
    (data_home / "icons" / "hicolor" / "48x48" / "apps" / "other.png").write_bytes(b"png")
    before = files_under(data_home)

    written = install_launcher(platform="linux")
    assert set(files_under(data_home)) == set(before) | set(written)
    removed = install_launcher(platform="linux", uninstall=True)
    assert set(removed) == set(written)
    assert files_under(data_home) == before
    # The icon folders it made are gone again; the ones that held other files are not.
    assert not (data_home / "icons" / "hicolor" / "16x16").exists()
    assert (data_home / "icons" / "hicolor" / "48x48" / "apps" / "other.png").exists()
    assert install_launcher(platform="linux", uninstall=True) == []


@pytest.mark.skipif(shutil.which("update-desktop-database") is None,
                    reason="update-desktop-database is not installed (desktop-file-utils)")
def test_an_existing_mime_cache_is_refreshed_and_none_is_created(data_home):
    install_launcher(platform="linux")
    assert not (data_home / "applications" / "mimeinfo.cache").exists()
    install_launcher(platform="linux", uninstall=True)

    cache = data_home / "applications" / "mimeinfo.cache"
    cache.write_text("[MIME Cache]\n")
    install_launcher(platform="linux")
    assert "image/png=sr-desk.desktop;" in cache.read_text()
    install_launcher(platform="linux", uninstall=True)
    assert "sr-desk" not in cache.read_text()


def test_dry_run_touches_nothing(data_home, tmp_path):
    before = files_under(tmp_path)
    assert set(install_launcher(platform="linux", dry_run=True)) == expected_linux_files(data_home)
    assert files_under(tmp_path) == before
    install_launcher(platform="linux")
    assert set(install_launcher(platform="linux", uninstall=True, dry_run=True)) == expected_linux_files(data_home)
    assert all(p.exists() for p in expected_linux_files(data_home))


def test_missing_resources_fail_in_one_line_before_anything_is_written(data_home, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    (empty / "icons").mkdir(parents=True)
    (empty / "launcher").mkdir()
    monkeypatch.setattr(launcher, "_resources", lambda: (empty / "icons", empty / "launcher"))
    with pytest.raises(LauncherError, match="reinstall sr-desk"):
        install_launcher(platform="linux")
    assert not data_home.exists()
    assert main(["install-launcher"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sr-desk: error: ")


# -- the command line ---------------------------------------------------------


def test_cli_install_launcher_installs_and_uninstalls(data_home, capsys):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("the freedesktop launcher is what this machine installs")
    assert main(["install-launcher", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert {line.removeprefix("would write ") for line in out} == {str(p) for p in expected_linux_files(data_home)}
    assert not data_home.exists()

    assert main(["install-launcher"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert {line.removeprefix("wrote ") for line in out} == {str(p) for p in expected_linux_files(data_home)}
    keys = entry_keys(data_home / "applications" / "sr-desk.desktop")
    assert parse_exec(keys["Exec"]) == [sys.executable, "-m", "sr_desk", "%F"]
    if VALIDATE:
        result = subprocess.run([VALIDATE, str(data_home / "applications" / "sr-desk.desktop")],
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout + result.stderr) == (0, "")

    assert main(["install-launcher", "--uninstall"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert {line.removeprefix("removed ") for line in out} == {str(p) for p in expected_linux_files(data_home)}
    assert not any(p.is_file() for p in data_home.rglob("*"))

    assert main(["install-launcher", "--uninstall"]) == 0
    assert capsys.readouterr().out == "nothing to remove: no launcher is installed\n"


# -- macOS ---------------------------------------------------------------------


def test_macos_app_bundle(tmp_path):
    contents = tmp_path / "Applications" / "sr-desk.app" / "Contents"
    written = install_launcher(platform="darwin", home=tmp_path)
    assert set(written) == {contents / "Info.plist", contents / "PkgInfo", contents / "MacOS" / "sr-desk",
                            contents / "Resources" / "sr-desk.icns"}

    info = plistlib.loads((contents / "Info.plist").read_bytes())
    assert info["CFBundleIdentifier"] == "org.sr-desk.app"
    assert info["CFBundleExecutable"] == "sr-desk" and info["CFBundlePackageType"] == "APPL"
    assert info["CFBundleIconFile"] == "sr-desk.icns"
    (doc,) = info["CFBundleDocumentTypes"]
    assert set(doc["LSItemContentTypes"]) == {
        "public.png", "public.jpeg", "org.webmproject.webp", "public.tiff", "com.microsoft.bmp", "com.compuserve.gif"
    }
    assert (contents / "PkgInfo").read_bytes() == b"APPL????"
    assert (contents / "Resources" / "sr-desk.icns").read_bytes() == (ICONS_DIR / "sr-desk.icns").read_bytes()

    script = contents / "MacOS" / "sr-desk"
    assert script.read_text() == f'#!/bin/sh\nexec "{sys.executable}" -m sr_desk "$@"\n'
    assert script.stat().st_mode & 0o111 == 0o111
    if sys.platform != "win32":  # the script really starts sr-desk, passing its arguments on
        result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stdout.startswith("sr-desk "), result.stderr

    assert set(install_launcher(platform="darwin", home=tmp_path, uninstall=True)) == set(written)
    assert not (tmp_path / "Applications" / "sr-desk.app").exists()
    assert (tmp_path / "Applications").is_dir()


def test_macos_script_quotes_the_interpreter(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", '/Users/a b/$x/"q"/python')
    install_launcher(platform="darwin", home=tmp_path)
    script = tmp_path / "Applications" / "sr-desk.app" / "Contents" / "MacOS" / "sr-desk"
    assert script.read_text().splitlines()[1] == 'exec "/Users/a b/\\$x/\\"q\\"/python" -m sr_desk "$@"'


# -- Windows -------------------------------------------------------------------


def test_windows_powershell_script():
    script = windows_shortcut_script(
        r"C:\Users\Ann O'Neil\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\sr-desk.lnk",
        r"C:\Python311\pythonw.exe",
        "-m sr_desk",
        r"C:\site\sr_desk_resources\icons\sr-desk.ico",
        r"C:\Users\Ann O'Neil",
    )
    assert script.startswith("$ErrorActionPreference = 'Stop'; ")
    assert ("$s = (New-Object -ComObject WScript.Shell).CreateShortcut("
            r"'C:\Users\Ann O''Neil\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\sr-desk.lnk')") in script
    assert r"$s.TargetPath = 'C:\Python311\pythonw.exe'" in script
    assert "$s.Arguments = '-m sr_desk'" in script
    assert r"$s.IconLocation = 'C:\site\sr_desk_resources\icons\sr-desk.ico,0'" in script
    assert r"$s.WorkingDirectory = 'C:\Users\Ann O''Neil'" in script
    assert script.endswith("; $s.Save()")
    # PowerShell also ends single-quoted strings at curly quotes: they are doubled too.
    assert "'a\u2019\u2019b'" in windows_shortcut_script("a\u2019b", "t", "", "i", "w")


def test_windows_install_runs_powershell_with_that_script(tmp_path, monkeypatch):
    python_dir = tmp_path / "Python 3.11"
    python_dir.mkdir()
    (python_dir / "python.exe").write_bytes(b"")
    (python_dir / "pythonw.exe").write_bytes(b"")
    monkeypatch.setattr(sys, "executable", str(python_dir / "python.exe"))
    powershell = "C:/Windows/powershell.exe"
    monkeypatch.setattr(launcher.shutil, "which", lambda name: powershell if name == "powershell" else None)
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        link.write_bytes(b"lnk")  # what WScript.Shell would have saved
        return subprocess.CompletedProcess(command, 0, "", "")

    link = tmp_path / "AppData" / "Roaming" / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "sr-desk.lnk"
    monkeypatch.setattr(launcher.subprocess, "run", fake_run)
    assert install_launcher(platform="win32", home=tmp_path, dry_run=True) == [link]
    assert not calls and not link.exists()

    assert install_launcher(platform="win32", home=tmp_path) == [link]
    (command,) = calls
    assert command[:-1] == [powershell, "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    script = base64.b64decode(command[-1]).decode("utf-16-le")
    assert script == windows_shortcut_script(link, python_dir / "pythonw.exe", "-m sr_desk",
                                             ICONS_DIR / "sr-desk.ico", tmp_path)
    assert install_launcher(platform="win32", home=tmp_path, uninstall=True) == [link]
    assert not link.exists()
