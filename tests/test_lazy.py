"""lazy("module:function"): a plugin's heavy module is imported at the first call, not at discovery."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sr_desk.api import DeclarationError, lazy
from tests.conftest import install_fake_plugin


def test_the_module_is_imported_at_the_first_call_only(site_dir):
    install_fake_plugin(site_dir, "heavy", "import sys\nsys.modules[__name__].calls = 0\n"
                                           "def upscale(x):\n    global calls\n    calls += 1\n    return x * 2\n")
    run = lazy("fake_plugin_heavy:upscale")
    assert "fake_plugin_heavy" not in sys.modules and run.__name__ == "upscale"
    assert run(21) == 42 and run(1) == 2
    assert sys.modules["fake_plugin_heavy"].calls == 2


@pytest.mark.parametrize("target", ["no_colon", "a.b:", ":f", "a:b:c", "a b:c", 3])
def test_a_malformed_target_is_refused_where_it_is_declared(target):
    with pytest.raises(DeclarationError, match="package.module:function"):
        lazy(target)


def test_a_missing_function_is_the_error_of_the_first_call():
    run = lazy("json:no_such_function")
    with pytest.raises(AttributeError):
        run()


def test_discovering_the_built_in_plugins_imports_none_of_their_networks():
    code = ("import sys; from sr_desk.engine.plugins import PluginHost; PluginHost().discover(); "
            "print(sorted(m for m in sys.modules if m.endswith(('.methods', '.network', '.train'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
