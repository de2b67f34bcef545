"""A user's own prior in the diffusers format: a ``UNet2DModel`` folder (config.json and safetensors).

The paper's method works with any pixel-space DDPM (spec 1), so a user can
bring one trained elsewhere. The ``diffusers`` library provides the network
(it is optional: ``pip install diffusers``); the noise schedule comes from the
folder's ``scheduler_config.json`` (beside the model, or in ``scheduler/`` of
a pipeline folder whose model is in ``unet/``), so the sampler follows the
model's own config.

The folder is read strictly, not with diffusers' ``from_pretrained``: that
fills missing weights with random ones, follows a shard index to pickled
``.bin`` files, builds whatever size a config asks for and prints a notice
about ``accelerate`` on every load. Here both configs are checked for bounds
first (:mod:`~sr_desk_plugins.diffsr.diffusers_config`), the network is built
on the meta device (no memory) and its weight count bounded, and sr-desk
reads exactly its weights from the safetensors files itself
(:mod:`~sr_desk_plugins.diffsr.diffusers_weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sr_desk.core.errors import SrDeskError
from sr_desk.diffusion.schedule import NoiseSchedule, from_scheduler_config
from sr_desk.diffusion.weights_file import one_line
from sr_desk_plugins.diffsr.diffusers_config import checked_scheduler_config, checked_unet_config, read_json_object
from sr_desk_plugins.diffsr.diffusers_weights import read_strict_weights, weight_files

__all__ = ["DiffusersPrior", "is_diffusers_folder", "load_diffusers_prior"]

#: The schedule of a folder without a scheduler config: DDPM's (which Diff-SR used, spec 4).
DDPM_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                 "prediction_type": "epsilon"}
#: The most weights a folder's network may have: 2 GB as float32, several times the published pixel-space
#: DDPMs, and what a CPU or one GPU still holds.
MAX_PARAMETERS = 500_000_000


def is_diffusers_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "unet" / "config.json").is_file())


@dataclass
class DiffusersPrior:
    """A loaded ``UNet2DModel`` as a noise predictor over its own schedule."""

    model: torch.nn.Module
    schedule: NoiseSchedule
    prediction_type: str
    size_multiple: int

    def predictor(self) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """``(x_t, i) -> eps`` whatever the model predicts (epsilon, the sample, or v)."""
        abar = self.schedule.alphas_cumprod

        def predict(x: torch.Tensor, i: int) -> torch.Tensor:
            out = self.model(x, i).sample.to(x.dtype)
            if self.prediction_type == "epsilon":
                return out
            if self.prediction_type == "sample":
                return self.schedule.eps_from_x0(x, i, out)
            a, s = float(abar[i]) ** 0.5, float(1 - abar[i]) ** 0.5  # v = a eps - s x0, so eps = a v + s x_t
            return a * out + s * x

        return predict


def _folders(path: Path) -> tuple[Path, Path | None]:
    model = path / "unet" if (path / "unet" / "config.json").is_file() else path
    for candidate in (model / "scheduler_config.json", path / "scheduler" / "scheduler_config.json",
                      path / "scheduler_config.json"):
        if candidate.exists():  # not is_file(): a pipe there is refused when read, not passed over
            return model, candidate
    return model, None


def _scheduler_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return dict(DDPM_DEFAULTS)
    config = {**DDPM_DEFAULTS, **read_json_object(path, "scheduler config")}
    return checked_scheduler_config(config, path)


def _size_multiple(args: dict[str, Any]) -> int:
    """Every level but the last halves the image, so its sides must divide by this."""
    return 2 ** (len(args["block_out_channels"]) - 1)


def _meta_network(args: dict[str, Any], where: Path) -> torch.nn.Module:
    """The network ``args`` describe, built on the meta device: shapes only, no memory, no random numbers.

    A config whose fields are each in bounds may still describe more weights
    than ``MAX_PARAMETERS``, or layers that do not fit together; both are
    refused here, before a weight is allocated (one pass of an empty input
    checks the shapes fit).
    """
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise SrDeskError("reading a diffusers model folder needs the diffusers package: "
                          "pip install diffusers") from None
    try:
        with torch.device("meta"):
            network = UNet2DModel(**args)
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError, ZeroDivisionError) as exc:
        raise SrDeskError(f"{where}: diffusers cannot build this UNet2DModel ({one_line(exc)})") from None
    count = sum(t.numel() for t in network.state_dict().values())
    if count > MAX_PARAMETERS:
        raise SrDeskError(f"{where}: the config describes {count:,} parameters; Diff-SR reads models of at most "
                          f"{MAX_PARAMETERS:,}")
    side = _size_multiple(args)
    try:
        network(torch.empty(1, 3, side, side, device="meta"), 0)
    except (ValueError, TypeError, IndexError, RuntimeError, ZeroDivisionError) as exc:
        raise SrDeskError(f"{where}: this UNet2DModel's layers do not fit together ({one_line(exc)})") from None
    return network


def load_diffusers_prior(path: Path, device: str) -> DiffusersPrior:
    """The ``UNet2DModel`` in ``path`` and its schedule; one clear error for anything it cannot use."""
    model_dir, scheduler_file = _folders(path)
    files = weight_files(model_dir)
    config_file = model_dir / "config.json"
    args = checked_unet_config(read_json_object(config_file, "diffusers config"), config_file)
    scheduler = _scheduler_config(scheduler_file)
    model = _meta_network(args, config_file)
    expected = {key: t.shape for key, t in model.state_dict().items()}
    model.load_state_dict(read_strict_weights(files, expected, "UNet2DModel its config.json describes"),
                          strict=True, assign=True)
    unset = next((n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta), None)
    if unset is not None:
        raise SrDeskError(f"{model_dir}: this UNet2DModel holds {unset}, which its weights files cannot set")
    try:
        schedule = from_scheduler_config(scheduler)
    except (ValueError, TypeError) as exc:
        raise SrDeskError(f"{model_dir}: {exc}") from None
    model.requires_grad_(False)
    return DiffusersPrior(model.to(device).eval(), schedule, scheduler["prediction_type"], _size_multiple(args))
