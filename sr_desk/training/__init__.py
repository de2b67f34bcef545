"""The training engine shared by every method plugin: photos on the device, batched patches, one loop.

A plugin supplies its model, its loss and its export (a
:class:`~sr_desk.training.loop.TrainingTask`); :func:`~sr_desk.training.loop.fit`
does the rest. ``python -m sr_desk.training NAME ...`` runs a built-in
trainer from a plain checkout (no install, no Qt), as on a GPU machine.
"""

from sr_desk.training.loop import (
    TrainingTask,
    TrainOptions,
    ValidationSet,
    fit,
    pick_device,
)
from sr_desk.training.photos import CropPlan, PhotoBank

__all__ = ["CropPlan", "PhotoBank", "TrainOptions", "TrainingTask", "ValidationSet", "fit", "pick_device"]
