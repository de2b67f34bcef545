"""A plugin's heavy code imported on first use: ``lazy("package.module:function")``.

Discovery imports every plugin at each start; a plugin that imports torch
and its network there makes every start pay for it. Declaring ``run`` (or a
trainer's ``main``) as ``lazy("my_plugin.methods:upscale")`` keeps the
module that declares the methods light: the named module is imported when
the function is first called.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from sr_desk.api.params import DeclarationError

__all__ = ["lazy"]

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def lazy(target: str) -> Callable[..., Any]:
    """A function that imports ``module`` of ``"module:function"`` at its first call, then calls ``function``.

    A malformed target is a :class:`DeclarationError` at once; a module or a
    function that does not exist is the error of the first call.
    """
    if not isinstance(target, str) or not _TARGET.match(target):
        raise DeclarationError(f"a lazy target is 'package.module:function', not {target!r}")
    module_name, function_name = target.split(":")
    resolved: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not resolved:
            resolved.append(getattr(importlib.import_module(module_name), function_name))
        return resolved[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = function_name
    call.__doc__ = f"{target}, imported on first use."
    return call
