"""Discovery and isolation: one broken plugin never takes the others down."""

import pytest

from sr_desk.engine.plugins import PluginHost, UnknownMethodError, api_compatibility_error
from tests.conftest import install_fake_plugin

GOOD = """
import numpy as np
from sr_desk.api import Capabilities, IntParam, Method, Task, hookimpl
SR_DESK_API_VERSION = "1.0"

def run(request, context):
    return np.repeat(np.repeat(request.image, 2, 0), 2, 1)

@hookimpl
def sr_desk_methods():
    return [Method(id="good-double", name="Good", task=Task.UPSCALE, run=run,
                   params=[IntParam(name="n", default=1, minimum=0, maximum=3)],
                   capabilities=Capabilities(scales=(2,)))]
"""


def discover(**kwargs) -> PluginHost:
    host = PluginHost(**kwargs)
    host.discover()
    return host


def record(host, name):
    return next(r for r in host.records if r.name == name)


def test_builtin_plugin_is_found_through_its_entry_point():
    host = discover()
    classic = record(host, "classic")
    assert classic.ok and classic.builtin
    assert classic.distribution == "sr-desk" and classic.version
    assert {"bicubic", "lanczos"} <= {m.id for m in host.methods("upscale")}
    assert host.plugin_of("bicubic") is classic


def test_good_third_party_plugin_loads_with_version_and_author(site_dir):
    install_fake_plugin(site_dir, "good", GOOD, version="2.3.4")
    host = discover()
    good = record(host, "good")
    assert good.ok and not good.builtin
    assert good.version == "2.3.4" and good.author == "Test Author"
    assert host.method("good-double").name == "Good"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise RuntimeError('boom at import')", "failed to import: RuntimeError: boom at import"),
        ("import sys; sys.exit(3)", "failed to import: SystemExit"),
        ("import not_a_module_anywhere", "failed to import: ModuleNotFoundError"),
        ("x = 1", "does not say which sr-desk plugin API"),
        ("SR_DESK_API_VERSION = '2.0'", "built for sr-desk plugin API 2.0; this sr-desk provides API 1.6 (update sr-desk)"),
        ("SR_DESK_API_VERSION = '0.9'", "update the plugin"),
        (
            """
            from sr_desk.api import IntParam, Method, hookimpl
            SR_DESK_API_VERSION = "1.0"
            @hookimpl
            def sr_desk_methods():
                return [Method(id="bad", name="Bad", task="upscale", run=print,
                               params=[IntParam(name="steps", default=500, minimum=1, maximum=100)])]
            """,
            "declares an invalid method: default of 'steps' is invalid: parameter 'steps' must be between 1 and 100",
        ),
        (
            """
            from sr_desk.api import hookimpl
            SR_DESK_API_VERSION = "1.0"
            @hookimpl
            def sr_desk_methods():
                raise ValueError("no GPU, no methods")
            """,
            "raised while declaring its methods: ValueError: no GPU, no methods",
        ),
        (
            """
            from sr_desk.api import hookimpl
            SR_DESK_API_VERSION = "1.0"
            @hookimpl
            def sr_desk_methods():
                return ["not a method"]
            """,
            "returned str, not a Method",
        ),
        (
            """
            from sr_desk.api import hookimpl
            SR_DESK_API_VERSION = "1.0"
            @hookimpl
            def sr_desk_methods(unexpected_argument):
                return []
            """,
            "cannot be registered",
        ),
    ],
)
def test_a_broken_plugin_is_reported_and_the_others_keep_working(site_dir, source, reason):
    import textwrap

    install_fake_plugin(site_dir, "good", GOOD)
    install_fake_plugin(site_dir, "broken", textwrap.dedent(source))
    host = discover()
    broken = record(host, "broken")
    assert not broken.ok and broken.status == "broken"
    assert reason in broken.error
    assert "\n" not in broken.error
    assert record(host, "good").ok and record(host, "classic").ok
    assert host.method("good-double") and host.method("bicubic")


def test_duplicate_method_ids_are_refused(site_dir):
    install_fake_plugin(site_dir, "zz_copycat", GOOD.replace("good-double", "bicubic"))
    host = discover()
    copycat = record(host, "zz_copycat")
    assert "method id 'bicubic' is already provided by plugin 'classic'" in copycat.error
    assert host.plugin_of("bicubic").name == "classic"


def test_a_plugin_sorting_first_cannot_hijack_a_built_in_method(site_dir, capsys):
    """Issue 18: "aa_hijack" declaring id "bicubic" replaced the built-in and broke the classic plugin."""
    install_fake_plugin(site_dir, "aa_hijack", GOOD.replace("good-double", "bicubic"))
    host = discover()
    assert "method id 'bicubic' is already provided by plugin 'classic'" in record(host, "aa_hijack").error
    assert record(host, "classic").ok and host.plugin_of("bicubic").name == "classic"
    assert {"bicubic", "lanczos"} <= {m.id for m in host.methods()}


def test_a_plugin_printing_at_import_does_not_corrupt_json_output(site_dir, capsys):
    import json
    import sys

    from sr_desk.cli import main

    install_fake_plugin(site_dir, "chatty", "print('hello from a plugin')\n" + GOOD)
    for command in (["methods", "--json"], ["plugins", "--json"]):
        sys.modules.pop("fake_plugin_chatty", None)  # imported afresh: it prints again
        assert main(command) == 0
        out = capsys.readouterr()
        json.loads(out.out)  # stdout is the JSON alone
        assert "hello from a plugin" in out.err


def test_disabled_plugins_are_not_even_imported(site_dir):
    install_fake_plugin(site_dir, "explosive", "raise RuntimeError('should not be imported')")
    host = discover(disabled=["explosive"])
    explosive = record(host, "explosive")
    assert explosive.status == "disabled" and explosive.error is None


def test_safe_mode_loads_only_builtin_plugins(site_dir, monkeypatch):
    install_fake_plugin(site_dir, "good", GOOD)
    monkeypatch.setenv("SR_DESK_SAFE_MODE", "1")
    host = discover()
    assert record(host, "good").status == "disabled"
    assert record(host, "classic").ok


def test_extra_paths_are_searched(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "user-plugins"
    folder.mkdir()
    install_fake_plugin(folder, "good", GOOD)
    assert "good" not in {r.name for r in discover().records}
    assert record(discover(extra_paths=[folder]), "good").ok


def test_unknown_method_message_lists_the_available_ones():
    host = discover()
    with pytest.raises(UnknownMethodError, match="unknown method 'nope' \\(available: .*bicubic"):
        host.method("nope")


def test_in_process_registration_uses_the_same_checks():
    class Incompatible:
        SR_DESK_API_VERSION = "7.1"

    host = PluginHost()
    assert "API 7.1" in host.register(Incompatible(), "incompatible").error
    assert api_compatibility_error("1.0") is None
    assert "unreadable" in api_compatibility_error("one")


TRAINER = GOOD + """
from sr_desk.api import Trainer

def train_main(argv):
    print("training with", list(argv))
    return 3

@hookimpl
def sr_desk_trainers():
    return [Trainer(name="double", description="Trains nothing", main=train_main)]
"""


def test_trainers_are_discovered_and_run_by_the_cli(site_dir, capsys):
    from sr_desk.cli import main

    install_fake_plugin(site_dir, "good", TRAINER)
    host = discover()
    assert host.trainer("double").description == "Trains nothing"
    assert main(["train"]) == 0
    assert "double  [plugin good]  Trains nothing" in capsys.readouterr().out
    assert main(["train", "double", "--steps", "5"]) == 3
    assert "training with ['--steps', '5']" in capsys.readouterr().out
    assert main(["train", "nope"]) == 2
    assert "unknown trainer 'nope'" in capsys.readouterr().err


def test_a_plugin_slow_to_import_gets_a_safe_mode_hint(site_dir, capsys, monkeypatch):
    """Issue 18: a plugin that hangs at import stopped every command and nothing said what to do."""
    import sr_desk.engine.plugins as plugins

    monkeypatch.setattr(plugins, "SLOW_IMPORT_S", 0.05)
    install_fake_plugin(site_dir, "sluggish", "import time\ntime.sleep(0.5)\n" + GOOD)
    host = discover()
    assert record(host, "sluggish").ok
    assert "plugin 'sluggish' is taking long to load; if it hangs, start with SR_DESK_SAFE_MODE=1" in capsys.readouterr().err


def test_a_plugin_printing_while_it_runs_writes_to_stderr_not_stdout(site_dir, capsys, tmp_path):
    """Issue 18: plugin output was passed through to stdout, where piped CLI output goes."""
    from PIL import Image

    from sr_desk.cli import main

    install_fake_plugin(site_dir, "talker", GOOD.replace("def run(request, context):\n",
                                                         "def run(request, context):\n    print('working hard')\n"))
    source = tmp_path / "in.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(source)
    assert main(["upscale", str(source), "-o", str(tmp_path / "out.png"), "--method", "good-double"]) == 0
    out = capsys.readouterr()
    assert "working hard" not in out.out and "working hard" in out.err


@pytest.mark.slow
def test_a_plugin_whose_import_ends_the_process_is_disabled_at_the_next_start(site_dir, private_home):
    """Issue 18: os._exit at import stopped every command; now only the first, and the reason is shown."""
    import json
    import os
    import subprocess
    import sys

    install_fake_plugin(site_dir, "exiter", "import os\nos._exit(3)\n" + GOOD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site_dir), *sys.path]), "SR_DESK_HOME": str(private_home)}

    def sr_desk(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sr_desk", *args], capture_output=True, text=True, env=env,
                              timeout=120)

    assert sr_desk("methods").returncode == 3  # the plugin's exit takes the process; nothing can stop that
    again = sr_desk("plugins", "--json")
    assert again.returncode == 0, again.stderr
    exiter = next(p for p in json.loads(again.stdout) if p["name"] == "exiter")
    assert exiter["status"] == "disabled" and "ended sr-desk" in exiter["disabled_reason"]
    assert "bicubic" in sr_desk("methods").stdout
    settings = json.loads((private_home / "config" / "settings.json").read_text())
    assert "exiter" in settings["disabled_plugins"]
