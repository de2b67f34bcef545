"""Put sr-desk in the desktop's application menu: ``sr-desk install-launcher``.

The launcher runs the interpreter sr-desk is installed in (``python -m
sr_desk``), so it keeps working from a virtual environment that is not on
``PATH``. Everything goes into the user's own folders; nothing needs
administrator rights.

- Linux and other freedesktop systems: ``$XDG_DATA_HOME/applications/sr-desk.desktop``
  and the icon in every size under ``$XDG_DATA_HOME/icons/hicolor``.
- Windows: a Start-menu shortcut, made by PowerShell through the
  ``WScript.Shell`` COM object.
- macOS: a small app bundle, ``~/Applications/sr-desk.app``.

``uninstall=True`` removes exactly the files an install writes (and the
folders of the macOS bundle once they are empty).
"""

from __future__ import annotations

import base64
import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from sr_desk import __version__
from sr_desk.core.atomic import atomic_write_bytes
from sr_desk.core.errors import SrDeskError

__all__ = [
    "APP_ID",
    "BUNDLE_ID",
    "ICON_SIZES",
    "MIME_TYPES",
    "LauncherError",
    "desktop_entry",
    "install_launcher",
    "launch_command",
    "macos_info_plist",
    "macos_launch_script",
    "windows_shortcut_script",
]

APP_ID = "sr-desk"
BUNDLE_ID = "org.sr-desk.app"
#: The PNG sizes shipped in ``sr_desk_resources/icons`` and installed into hicolor.
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)
#: The image types sr-desk opens (see ``sr_desk.core.imageio.IMAGE_EXTENSIONS``).
MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff", "image/bmp", "image/gif")
#: The same types as macOS uniform type identifiers.
MACOS_TYPES = (
    "public.png", "public.jpeg", "org.webmproject.webp", "public.tiff", "com.microsoft.bmp", "com.compuserve.gif",
)  # fmt: skip
DESCRIPTION = "Super-resolution image editor"
_TIMEOUT_S = 60


class LauncherError(SrDeskError):
    """The launcher could not be installed or removed."""


# -- what the launcher runs --------------------------------------------------


def launch_command() -> tuple[str, list[str]]:
    """The program and arguments that start sr-desk from this installation."""
    if not sys.executable:
        raise LauncherError("cannot tell which Python runs sr-desk (sys.executable is empty)")
    if getattr(sys, "frozen", False):  # a bundled app is its own executable
        return sys.executable, []
    return sys.executable, ["-m", "sr_desk"]


def _resources() -> tuple[Path, Path]:
    """(icons folder, launcher template folder) of the installed resources."""
    from sr_desk_resources import RESOURCES_DIR

    return RESOURCES_DIR / "icons", RESOURCES_DIR / "launcher"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        problem = exc.strerror or exc
        raise LauncherError(f"{path} is missing from the sr-desk installation ({problem}); reinstall sr-desk") from None


# -- freedesktop (Linux, BSD) ------------------------------------------------

# Characters that force an Exec argument into double quotes (Desktop Entry spec, "The Exec key").
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


def _escape_string(value: str) -> str:
    """A value of type string as the spec writes it (backslash escapes)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _exec_argument(arg: str) -> str:
    """One Exec argument: quoted where needed, then escaped as a string value."""
    if not arg or any(c in _EXEC_RESERVED for c in arg):
        arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return _escape_string(arg.replace("%", "%%"))


def desktop_entry(icon: str = APP_ID) -> str:
    """The ``.desktop`` file: the template with this installation's command filled in."""
    program, args = launch_command()
    _, launcher_dir = _resources()
    template = _read(launcher_dir / "sr-desk.desktop.in").decode("utf-8")
    # The template's own comments describe the template; the installed file says where it came from.
    body = "".join(line for line in template.splitlines(keepends=True) if not line.startswith("#"))
    template = "# Written by `sr-desk install-launcher`; `sr-desk install-launcher --uninstall` removes it.\n" + body
    values = {
        "@EXEC@": " ".join(_exec_argument(a) for a in (program, *args)),
        "@TRYEXEC@": _escape_string(program),
        "@ICON@": _escape_string(icon),
    }
    return re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)], template)


def _xdg_data_home(home: Path | None) -> Path:
    if home is None:
        value = os.environ.get("XDG_DATA_HOME", "")
        # The spec: relative paths in these variables are invalid and ignored.
        if value and os.path.isabs(value):
            return Path(value)
    return (home if home is not None else Path.home()) / ".local" / "share"


def _freedesktop_files(home: Path | None) -> tuple[Path, dict[Path, Callable[[], bytes]], Path]:
    """(data folder, {target: contents}, hicolor folder) of a freedesktop install."""
    data = _xdg_data_home(home)
    icons_dir, _ = _resources()
    hicolor = data / "icons" / "hicolor"
    files: dict[Path, Callable[[], bytes]] = {
        data / "applications" / f"{APP_ID}.desktop": lambda: desktop_entry().encode("utf-8"),
    }
    for n in ICON_SIZES:
        source = icons_dir / f"sr-desk-{n}.png"
        files[hicolor / f"{n}x{n}" / "apps" / f"{APP_ID}.png"] = lambda s=source: _read(s)
    svg = icons_dir / "sr-desk.svg"
    files[hicolor / "scalable" / "apps" / f"{APP_ID}.svg"] = lambda: _read(svg)
    return data, files, hicolor


def _refresh_freedesktop(data: Path, hicolor: Path) -> None:
    """Bring the user's menu and icon caches up to date; best effort, failures are ignored.

    Only caches that already exist are refreshed: desktops read the folders
    themselves, and a cache made here would be a file the uninstall leaves
    behind (or, for icons, one that hides icons other programs add later).
    """
    applications = data / "applications"
    if (applications / "mimeinfo.cache").exists():
        _run_quietly(["update-desktop-database", "-q", str(applications)])
    if (hicolor / "icon-theme.cache").exists():
        _run_quietly(["gtk-update-icon-cache", "-q", "-f", "-t", str(hicolor)])


def _run_quietly(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        return
    try:
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def _freedesktop(home: Path | None, uninstall: bool, dry_run: bool) -> list[Path]:
    data, files, hicolor = _freedesktop_files(home)
    if uninstall:
        removed = _remove(files, dry_run)
        if not dry_run:
            _prune([p.parent for p in files if hicolor in p.parents], stop=hicolor)
            if removed:
                _refresh_freedesktop(data, hicolor)
        return removed
    if dry_run:
        return list(files)
    written = _write(files)
    _refresh_freedesktop(data, hicolor)
    return written


# -- Windows -----------------------------------------------------------------


def _ps_quote(text: str) -> str:
    """A PowerShell single-quoted string literal (it also treats the curly quotes as quotes)."""
    return "'" + re.sub("(['\u2018\u2019\u201a\u201b])", r"\1\1", text) + "'"


def windows_shortcut_script(link: Path | str, target: Path | str, arguments: str, icon: Path | str,
                            working_dir: Path | str) -> str:
    """The PowerShell that writes the Start-menu shortcut ``link``."""
    return "; ".join([
        "$ErrorActionPreference = 'Stop'",
        f"$s = (New-Object -ComObject WScript.Shell).CreateShortcut({_ps_quote(str(link))})",
        f"$s.TargetPath = {_ps_quote(str(target))}",
        f"$s.Arguments = {_ps_quote(arguments)}",
        f"$s.WorkingDirectory = {_ps_quote(str(working_dir))}",
        f"$s.IconLocation = {_ps_quote(f'{icon},0')}",
        f"$s.Description = {_ps_quote(DESCRIPTION)}",
        "$s.Save()",
    ])  # fmt: skip


def _windows_target() -> tuple[str, str]:
    """(program, arguments) for the shortcut: pythonw.exe, so that no console window opens."""
    program, args = launch_command()
    pythonw = Path(program).with_name("pythonw.exe")
    if args and pythonw.is_file():
        program = str(pythonw)
    return program, subprocess.list2cmdline(args)


def _start_menu(home: Path | None) -> Path:
    appdata = os.environ.get("APPDATA", "") if home is None else ""
    base = Path(appdata) if appdata else (home if home is not None else Path.home()) / "AppData" / "Roaming"
    return base / "Microsoft" / "Windows" / "Start Menu" / "Programs"


def _windows(home: Path | None, uninstall: bool, dry_run: bool) -> list[Path]:
    link = _start_menu(home) / f"{APP_ID}.lnk"
    if uninstall:
        return _remove([link], dry_run)
    if dry_run:
        return [link]
    icons_dir, _ = _resources()
    icon = icons_dir / "sr-desk.ico"
    _read(icon)
    program, arguments = _windows_target()
    script = windows_shortcut_script(link, program, arguments, icon, home if home is not None else Path.home())
    shell = shutil.which("powershell") or shutil.which("pwsh")
    if shell is None:
        raise LauncherError("PowerShell is needed to make the Start-menu shortcut and was not found")
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        # -EncodedCommand (UTF-16LE, base64) carries any path through the command line unharmed.
        encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
        result = subprocess.run([shell, "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LauncherError(f"could not run PowerShell to make {link}: {exc}") from None
    if result.returncode != 0 or not link.exists():
        detail = next((line.strip() for line in (result.stderr or "").splitlines() if line.strip()), "no message")
        raise LauncherError(f"PowerShell could not make {link}: {detail}")
    return [link]


# -- macOS -------------------------------------------------------------------


def macos_info_plist(with_icon: bool) -> bytes:
    """The bundle's ``Contents/Info.plist``."""
    info: dict[str, object] = {
        "CFBundleName": APP_ID,
        "CFBundleDisplayName": APP_ID,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleExecutable": APP_ID,
        "CFBundlePackageType": "APPL",
        "CFBundleInfoDictionaryVersion": "6.0",
        "CFBundleShortVersionString": __version__,
        "CFBundleVersion": __version__,
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": "Image",
                "CFBundleTypeRole": "Editor",
                "LSHandlerRank": "Alternate",
                "LSItemContentTypes": list(MACOS_TYPES),
            }
        ],
        "LSApplicationCategoryType": "public.app-category.graphics-design",
        "NSHighResolutionCapable": True,
    }
    if with_icon:
        info["CFBundleIconFile"] = f"{APP_ID}.icns"
    return plistlib.dumps(info, sort_keys=True)


def _sh_double_quote(text: str) -> str:
    return '"' + re.sub(r'(["`$\\])', r"\\\1", text) + '"'


def macos_launch_script() -> bytes:
    """``Contents/MacOS/sr-desk``: hands the documents it is given to sr-desk."""
    program, args = launch_command()
    command = " ".join([_sh_double_quote(program), *args])
    return f'#!/bin/sh\nexec {command} "$@"\n'.encode()


def _macos(home: Path | None, uninstall: bool, dry_run: bool) -> list[Path]:
    bundle = (home if home is not None else Path.home()) / "Applications" / f"{APP_ID}.app"
    contents = bundle / "Contents"
    icons_dir, _ = _resources()
    icns = icons_dir / "sr-desk.icns"
    script = contents / "MacOS" / APP_ID
    icon_target = contents / "Resources" / f"{APP_ID}.icns"
    if uninstall:
        removed = _remove([contents / "Info.plist", contents / "PkgInfo", script, icon_target], dry_run)
        if not dry_run:
            _prune([script.parent, icon_target.parent, contents, bundle], stop=bundle.parent)
        return removed
    with_icon = icns.is_file()  # an install without the icon still gets a working bundle
    files: dict[Path, Callable[[], bytes]] = {
        contents / "Info.plist": lambda: macos_info_plist(with_icon),
        contents / "PkgInfo": lambda: b"APPL????",
        script: macos_launch_script,
    }
    if with_icon:
        files[icon_target] = lambda: _read(icns)
    if dry_run:
        return list(files)
    written = _write(files)
    try:
        script.chmod(0o755)
    except OSError as exc:
        raise LauncherError(f"cannot make {script} executable: {exc.strerror}") from None
    return written


# -- shared ------------------------------------------------------------------


def _write(files: dict[Path, Callable[[], bytes]]) -> list[Path]:
    contents = {path: make() for path, make in files.items()}  # read everything before writing anything
    for path, data in contents.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise LauncherError(f"cannot write {path}: {exc.strerror or exc}") from None
    return list(contents)


def _remove(paths: Iterable[Path], dry_run: bool) -> list[Path]:
    removed = []
    for path in paths:
        if not (path.is_file() or path.is_symlink()):
            continue
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                raise LauncherError(f"cannot remove {path}: {exc.strerror or exc}") from None
        removed.append(path)
    return removed


def _prune(folders: Iterable[Path], stop: Path) -> None:
    """Remove the given folders and their parents below ``stop`` while they are empty."""
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                break
            folder = folder.parent


def install_launcher(
    *, uninstall: bool = False, dry_run: bool = False, home: Path | None = None, platform: str | None = None
) -> list[Path]:
    """Install (or with ``uninstall``, remove) the desktop launcher; returns the files written or removed.

    ``dry_run`` returns the same list without touching anything. ``home``
    stands in for the user's home folder, and then ``XDG_DATA_HOME`` and
    ``APPDATA`` are not consulted. ``platform`` defaults to ``sys.platform``.
    """
    platform = platform or sys.platform
    if platform.startswith("win"):
        return _windows(home, uninstall, dry_run)
    if platform == "darwin":
        return _macos(home, uninstall, dry_run)
    return _freedesktop(home, uninstall, dry_run)
