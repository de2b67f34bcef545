"""The pluggy hooks a plugin implements.

A plugin is a module (or object) registered under the entry-point group
``sr_desk.plugins``. It sets ``SR_DESK_API_VERSION`` to the API version it was
built for and implements ``sr_desk_methods``; ``sr_desk_trainers`` is optional.
"""

from __future__ import annotations

import pluggy

from sr_desk.api.method import Method
from sr_desk.api.training import Trainer

PROJECT_NAME = "sr_desk"
ENTRY_POINT_GROUP = "sr_desk.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def sr_desk_methods() -> list[Method]:  # type: ignore[empty-body]
    """Return the methods this plugin offers.

    Called once per discovery, on the main thread. Keep it cheap: build
    ``Method`` descriptions here, load models inside ``Method.run``.
    """


@hookspec
def sr_desk_trainers() -> list[Trainer]:  # type: ignore[empty-body]
    """Optional: training programs run by ``sr-desk train NAME ARGS...``.

    Import the training code lazily inside ``Trainer.main``.
    """
