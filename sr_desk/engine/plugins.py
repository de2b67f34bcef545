"""Plugin discovery and isolation.

Every plugin, built-in or third-party, is found through the entry-point group
``sr_desk.plugins``. Discovery never raises: each entry point yields one
``PluginRecord``, and a plugin that fails to import, targets another API
version, declares a bad method or raises inside its hook is recorded as
broken with its reason while every other plugin keeps working.

``SR_DESK_SAFE_MODE=1`` loads only the plugins shipped with sr-desk, for the
day a third-party plugin takes the app down at import.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pluggy

from sr_desk.api import API_VERSION, ENTRY_POINT_GROUP, PROJECT_NAME, DeclarationError, Method, Task, Trainer
from sr_desk.api import hookspecs
from sr_desk.core.errors import SrDeskError
from sr_desk.core.live_marks import left_by_the_dead, live_mark
from sr_desk.core.paths import app_paths
from sr_desk.core.settings import Settings

log = logging.getLogger(__name__)

BUILTIN_DISTRIBUTION = "sr-desk"
SAFE_MODE_ENV = "SR_DESK_SAFE_MODE"


#: The upscaler a user starts with, in the editor and on the command line: the first of these that is
#: installed. srdiff-encoder is faithful and the fastest model method (README, Quality, has its scores);
#: Lanczos needs no weights.
PREFERRED_UPSCALERS = ("srdiff-encoder", "lanczos", "bicubic")


def default_upscaler(methods: Iterable[Method]) -> Method | None:
    """The installed method a new user starts on: the first of ``PREFERRED_UPSCALERS``, else the first upscaler."""
    upscalers = [m for m in methods if m.task is Task.UPSCALE]
    by_id = {m.id: m for m in upscalers}
    return next((by_id[i] for i in PREFERRED_UPSCALERS if i in by_id), upscalers[0] if upscalers else None)


class UnknownMethodError(SrDeskError):
    """No enabled, working plugin offers the method asked for."""


@dataclass(frozen=True)
class PluginRecord:
    """What discovery learnt about one plugin."""

    name: str
    source: str
    distribution: str | None = None
    version: str | None = None
    author: str | None = None
    methods: tuple[Method, ...] = ()
    trainers: tuple[Trainer, ...] = ()
    error: str | None = None
    enabled: bool = True
    #: Why sr-desk switched it off (it ended the process, hung, was stopped with Ctrl-C); None when the user did.
    disabled_reason: str | None = None

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    @property
    def ok(self) -> bool:
        return self.enabled and self.error is None

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        return "broken" if self.error else "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "distribution": self.distribution,
            "version": self.version,
            "author": self.author,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "disabled_reason": self.disabled_reason,
            "methods": [m.id for m in self.methods],
        }


def api_compatibility_error(declared: object) -> str | None:
    """Why a plugin built for API ``declared`` cannot load here, or None if it can."""
    if declared is None:
        return (
            "does not say which sr-desk plugin API it was built for "
            f"(set SR_DESK_API_VERSION = {API_VERSION!r} in the plugin module)"
        )
    try:
        major, minor = (int(part) for part in str(declared).split(".")[:2])
    except ValueError:
        return f"declares an unreadable plugin API version {declared!r}"
    host_major, host_minor = (int(part) for part in API_VERSION.split("."))
    if major != host_major or minor > host_minor:
        advice = "update sr-desk" if (major, minor) > (host_major, host_minor) else "update the plugin"
        return f"was built for sr-desk plugin API {major}.{minor}; this sr-desk provides API {API_VERSION} ({advice})"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, SrDeskError) else text


#: A plugin import slower than this gets a hint on stderr: a plugin that hangs at import stops every command.
SLOW_IMPORT_S = 10.0


def _slow_import_hint(name: str) -> None:
    print(
        f"sr-desk: plugin {name!r} is taking long to load; if it hangs, start with {SAFE_MODE_ENV}=1 "
        f"(built-in plugins only) and switch it off in the editor's Plugins dialog or Preferences",
        file=sys.stderr,
        flush=True,
    )


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.metadata["Name"] == BUILTIN_DISTRIBUTION


def _author(dist: metadata.Distribution | None) -> str | None:
    if dist is None:
        return None
    meta = dist.metadata
    author = meta.get("Author")
    if author:
        return author
    email = meta.get("Author-email") or ""
    return email.split("<")[0].strip().strip('"') or None


@dataclass
class PluginHost:
    """Discovers plugins and answers "which methods are there?".

    ``disabled``: entry-point names the user switched off (they are not even imported).
    ``extra_paths``: folders searched for installed plugins besides ``sys.path``
    (the user plugin folder of the frozen app).
    ``disabled_reasons``: why sr-desk switched some of ``disabled`` off, shown with them.
    ``loading_marks``: a folder where a live mark (:mod:`sr_desk.core.live_marks`)
    names each third-party plugin while it is imported and declares its
    methods; a load that ends the process leaves its mark for
    :func:`discover_plugins` to find at the next start, while the marks of
    other sr-desk processes loading the same plugin right now are alive.
    ``switched_off``: filled by :meth:`discover`: plugins to switch off for
    good, with the reason (one hung while declaring its methods, or the user
    stopped its import with Ctrl-C).
    """

    disabled: Sequence[str] = ()
    extra_paths: Sequence[Path] = ()
    safe_mode: bool | None = None
    disabled_reasons: Mapping[str, str] = field(default_factory=dict)
    loading_marks: Path | None = None
    records: list[PluginRecord] = field(default_factory=list, init=False)
    switched_off: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.safe_mode is None:
            self.safe_mode = os.environ.get(SAFE_MODE_ENV, "") not in ("", "0")
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)

    # discovery -------------------------------------------------------------

    def discover(self) -> list[PluginRecord]:
        """Load every entry point of the group; never raises."""
        for folder in self.extra_paths:
            if str(folder) not in sys.path and Path(folder).is_dir():
                sys.path.append(str(folder))
        seen: set[tuple[str, str]] = set()
        # Built-in plugins first: a method id they declare is theirs, and a third-party plugin that
        # declares it too is the one reported broken (it cannot hijack `--method bicubic`).
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (not _is_builtin(e), e.name)):
            if (ep.name, ep.value) in seen:
                continue  # the same distribution found twice on sys.path
            seen.add((ep.name, ep.value))
            if any(r.name == ep.name for r in self.records):
                continue  # already loaded by an earlier discover()
            self.records.append(self._load_entry_point(ep))
        return self.records

    def _load_entry_point(self, ep: metadata.EntryPoint) -> PluginRecord:
        dist = ep.dist
        record = PluginRecord(
            name=ep.name,
            source=ep.value,
            distribution=dist.metadata["Name"] if dist else None,
            version=dist.version if dist else None,
            author=_author(dist),
        )
        if ep.name in self.disabled:
            return replace(record, enabled=False, disabled_reason=self.disabled_reasons.get(ep.name))
        if self.safe_mode and not record.builtin:
            return replace(record, enabled=False, error="not loaded: safe mode is on")
        if record.builtin:
            return self._load(ep, record)
        with live_mark(self.loading_marks, ep.name), _user_interrupts() as user:
            try:
                return self._load(ep, record)
            except KeyboardInterrupt:
                if not user.interrupted:  # the plugin raised it itself: broken, like any other exception
                    return replace(record, error="failed to import: KeyboardInterrupt")
                self.switched_off[ep.name] = interrupted_reason(ep.name)
                raise

    def _load(self, ep: metadata.EntryPoint, record: PluginRecord) -> PluginRecord:
        hint = threading.Timer(SLOW_IMPORT_S, _slow_import_hint, (ep.name,))
        hint.daemon = True
        hint.start()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # a plugin's print() must not corrupt `--json` output
                plugin = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
            log.debug("plugin %s failed to import:\n%s", ep.name, traceback.format_exc())
            return replace(record, error=f"failed to import: {_one_line(exc)}")
        finally:
            hint.cancel()
        return self._register(plugin, record)

    def register(self, plugin: object, name: str, *, version: str | None = None) -> PluginRecord:
        """Register an in-process plugin object (tests, scripts); same checks as discovery."""
        record = self._register(plugin, PluginRecord(name=name, source=repr(plugin), version=version))
        self.records.append(record)
        return record

    def _register(self, plugin: object, record: PluginRecord) -> PluginRecord:
        problem = api_compatibility_error(getattr(plugin, "SR_DESK_API_VERSION", None))
        if problem:
            return replace(record, error=problem)
        try:
            self._pm.register(plugin, name=record.name)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            return replace(record, error=f"cannot be registered: {_one_line(exc)}")
        methods: list[Method] = []
        trainers: list[Trainer] = []
        try:
            with contextlib.redirect_stdout(sys.stderr):
                for impl in self._pm.hook.sr_desk_methods.get_hookimpls():
                    if impl.plugin is plugin:
                        methods.extend(self._validated(_within_time_limit(impl.function), Method, "sr_desk_methods"))
                for impl in self._pm.hook.sr_desk_trainers.get_hookimpls():
                    if impl.plugin is plugin:
                        trainers.extend(self._validated(_within_time_limit(impl.function), Trainer, "sr_desk_trainers"))
        except BaseException as exc:  # noqa: BLE001
            self._pm.unregister(plugin)
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, HookTimeout):
                reason = f"{exc}; enable it again with `sr-desk plugins --enable {record.name}` or in Preferences to retry"
                self.switched_off[record.name] = reason
                return replace(record, enabled=False, disabled_reason=reason)
            if isinstance(exc, DeclarationError):
                return replace(record, error=f"declares an invalid method: {' '.join(str(exc).split())}")
            return replace(record, error=f"raised while declaring its methods: {_one_line(exc)}")
        taken = {m.id: r.name for r in self.records if r.ok for m in r.methods}
        clashes = [m.id for m in methods if m.id in taken]
        if clashes:
            self._pm.unregister(plugin)
            return replace(
                record, error=f"method id {clashes[0]!r} is already provided by plugin {taken[clashes[0]]!r}"
            )
        ids = [m.id for m in methods]
        if len(set(ids)) != len(ids):
            self._pm.unregister(plugin)
            return replace(record, error="declares the same method id twice")
        return replace(record, methods=tuple(methods), trainers=tuple(trainers))

    @staticmethod
    def _validated(result: object, kind: type, hook: str) -> Iterable[Any]:
        if result is None:
            return []
        if isinstance(result, kind):
            return [result]
        if not isinstance(result, (list, tuple)):
            raise TypeError(f"{hook} must return a list of {kind.__name__}, not {type(result).__name__}")
        for item in result:
            if not isinstance(item, kind):
                raise TypeError(f"{hook} returned {type(item).__name__}, not a {kind.__name__}")
        return list(result)

    # queries ---------------------------------------------------------------

    def methods(self, task: str | None = None) -> list[Method]:
        """Methods of every working, enabled plugin, in discovery order."""
        return [m for r in self.records if r.ok for m in r.methods if task is None or m.task.value == task]

    def method(self, method_id: str) -> Method:
        for m in self.methods():
            if m.id == method_id:
                return m
        known = ", ".join(m.id for m in self.methods()) or "none"
        for r in self.records:
            if not r.ok and any(m.id == method_id for m in r.methods):
                raise UnknownMethodError(f"method {method_id!r} belongs to plugin {r.name!r}, which is {r.status}")
        raise UnknownMethodError(f"unknown method {method_id!r} (available: {known})")

    def trainer(self, name: str) -> Trainer:
        trainers = [t for r in self.records if r.ok for t in r.trainers]
        for t in trainers:
            if t.name == name:
                return t
        known = ", ".join(t.name for t in trainers) or "none"
        raise UnknownMethodError(f"unknown trainer {name!r} (available: {known})")

    def plugin_of(self, method_id: str) -> PluginRecord | None:
        return next((r for r in self.records if any(m.id == method_id for m in r.methods)), None)

    def broken(self) -> list[PluginRecord]:
        return [r for r in self.records if r.error]


def discover_plugins(settings: Settings) -> PluginHost:
    """The plugins the app and the CLI use: the user's disabled list, plus the user plugin folder.

    A plugin whose loading ended an sr-desk process (``os._exit``, a crash in
    its native code: its mark was left by a dead process), hung while
    declaring its methods, or was stopped with Ctrl-C while it loaded, is
    switched off in the settings with the reason: the app starts, and the
    user can enable it again to retry.
    """
    paths = app_paths()
    settings_before = settings.disabled_reasons.copy(), list(settings.disabled_plugins)
    for name in left_by_the_dead(paths.plugin_loading_marks):
        settings.disable_plugin(name, ended_reason(name))
    host = PluginHost(
        disabled=list(settings.disabled_plugins),
        disabled_reasons=dict(settings.disabled_reasons),
        extra_paths=[paths.plugins_dir],
        loading_marks=paths.plugin_loading_marks,
    )
    try:
        host.discover()
    except KeyboardInterrupt:
        for name in host.switched_off:
            print(f"sr-desk: stopped while loading plugin {name!r}, so it is switched off; "
                  f"enable it again with `sr-desk plugins --enable {name}`", file=sys.stderr)
        raise
    finally:
        for name, reason in host.switched_off.items():
            settings.disable_plugin(name, reason)
        if (settings.disabled_reasons, settings.disabled_plugins) != settings_before:
            _save(settings)
    return host


def _save(settings: Settings) -> None:
    try:
        settings.save()
    except OSError as exc:
        log.warning("could not save the settings: %s", exc)


def ended_reason(name: str) -> str:
    return (f"loading it ended sr-desk (the plugin exited or crashed the process); "
            f"enable it again with `sr-desk plugins --enable {name}` or in Preferences to retry")


def interrupted_reason(name: str) -> str:
    return (f"its loading was stopped with Ctrl-C; "
            f"enable it again with `sr-desk plugins --enable {name}` or in Preferences to retry")


#: A plugin's hook that declares its methods must answer within this many seconds; one that hangs would
#: stop every command and the editor's start.
HOOK_TIME_LIMIT_S = 60.0


class HookTimeout(SrDeskError):
    """A plugin's hook did not return within :data:`HOOK_TIME_LIMIT_S`."""


class _RaisedInHook(SrDeskError):
    """A KeyboardInterrupt the plugin's hook raised itself (not the user's Ctrl-C): an ordinary failure."""


def _within_time_limit(hook: Callable[[], Any]) -> Any:
    """``hook()`` on a daemon thread: its result, its exception, or :class:`HookTimeout` (the thread is abandoned)."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = hook()
        except KeyboardInterrupt:
            outcome["error"] = _RaisedInHook("KeyboardInterrupt")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
            outcome["error"] = exc

    thread = threading.Thread(target=call, name="sr-desk plugin hook", daemon=True)
    thread.start()
    thread.join(HOOK_TIME_LIMIT_S)
    if thread.is_alive():
        raise HookTimeout(f"it did not declare its methods within {HOOK_TIME_LIMIT_S:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


@dataclass
class _Interrupts:
    interrupted: bool = False


@contextlib.contextmanager
def _user_interrupts() -> Iterator[_Interrupts]:
    """Tells a Ctrl-C of the user's (SIGINT) from a KeyboardInterrupt a plugin raises itself."""
    seen = _Interrupts()

    def on_sigint(_signum: int, _frame: object) -> None:
        seen.interrupted = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except (ValueError, OSError):  # not the main thread, where no signal arrives: a plugin raised it
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
