"""The sr-desk plugin API: everything a method plugin imports.

Stable names only; see docs/plugins.md for a complete minimal plugin.

API versions follow ``MAJOR.MINOR``: a plugin built for ``1.x`` runs on any
host ``1.y`` with ``y >= x``; a different major is refused with a message
that names both versions.

1.1 added ``ImageParam(placeable=True)``, ``ImageInput.placement`` and ``Request.draft``.
1.2 added ``Capabilities.memory_per_output_pixel``.
1.3 added ``lazy("module:function")``.
1.4 added ``detail_param`` (the shared "Detail" control), ``DETAIL`` and ``detail_of``.
1.5 added ``lr_consistency_param`` (the shared "LR consistency" switch) and ``LR_CONSISTENCY``.
1.6 added ``ImageInput.fitted``.
"""

from sr_desk.api.consistency import LR_CONSISTENCY, lr_consistency_param
from sr_desk.api.detail import DETAIL, detail_of, detail_param
from sr_desk.api.hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl
from sr_desk.api.lazy import lazy
from sr_desk.api.method import Capabilities, Method, Task, WeightFile
from sr_desk.api.params import (
    BoolParam,
    ChoiceParam,
    DeclarationError,
    FloatParam,
    ImageParam,
    IntParam,
    Param,
    ParamError,
    ParamSet,
    SeedParam,
    SizeParam,
)
from sr_desk.api.request import Cancelled, Context, ImageInput, Request, WeightsStore
from sr_desk.api.training import Trainer

API_VERSION = "1.6"

__all__ = [
    "API_VERSION",
    "DETAIL",
    "ENTRY_POINT_GROUP",
    "LR_CONSISTENCY",
    "PROJECT_NAME",
    "BoolParam",
    "Cancelled",
    "Capabilities",
    "ChoiceParam",
    "Context",
    "DeclarationError",
    "FloatParam",
    "ImageInput",
    "ImageParam",
    "IntParam",
    "Method",
    "Param",
    "ParamError",
    "ParamSet",
    "Request",
    "SeedParam",
    "SizeParam",
    "Task",
    "Trainer",
    "WeightFile",
    "WeightsStore",
    "detail_of",
    "detail_param",
    "hookimpl",
    "lazy",
    "lr_consistency_param",
]
