"""A user's own prior in the diffusers format: a ``UNet2DModel`` folder (config.json and safetensors).

The paper's method works with any pixel-space DDPM (spec 1), so a user can
bring one trained elsewhere. The ``diffusers`` library reads the format (it
is optional: ``pip install diffusers``); the noise schedule comes from the
folder's ``scheduler_config.json`` (beside the model, or in ``scheduler/`` of
a pipeline folder whose model is in ``unet/``), so the sampler follows the
model's own config. Pickled ``.bin`` weights are refused: loading them can
run code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sr_desk.core.errors import SrDeskError
from sr_desk.diffusion.schedule import NoiseSchedule, from_scheduler_config

__all__ = ["DiffusersPrior", "is_diffusers_folder", "load_diffusers_prior"]

#: The schedule of a folder without a scheduler config: DDPM's (which Diff-SR used, spec 4).
DDPM_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                 "prediction_type": "epsilon"}


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
        if candidate.is_file():
            return model, candidate
    return model, None


def _scheduler_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return dict(DDPM_DEFAULTS)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SrDeskError(f"{path} is not a readable scheduler config ({exc})") from None
    if not isinstance(config, dict):
        raise SrDeskError(f"{path} is not a scheduler config (a JSON object)")
    return {**DDPM_DEFAULTS, **config}


def load_diffusers_prior(path: Path, device: str) -> DiffusersPrior:
    """The ``UNet2DModel`` in ``path`` and its schedule; one clear error for anything it cannot use."""
    model_dir, scheduler_file = _folders(path)
    if not any(model_dir.glob("*.safetensors")):
        raise SrDeskError(f"{model_dir} has no .safetensors weights; sr-desk never loads pickled .bin files "
                          "(convert them with diffusers' save_pretrained(safe_serialization=True))")
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise SrDeskError("reading a diffusers model folder needs the diffusers package: pip install diffusers") from None
    try:
        model = UNet2DModel.from_pretrained(model_dir, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise SrDeskError(f"{model_dir} is not a diffusers UNet2DModel: {' '.join(str(exc).split())[:300]}") from None
    config = model.config
    if config.in_channels != 3 or config.out_channels != 3:
        raise SrDeskError(f"{model_dir}: Diff-SR needs an RGB pixel-space model (3 channels in and out), "
                          f"not {config.in_channels} -> {config.out_channels}")
    if getattr(config, "class_embed_type", None) is not None or getattr(config, "num_class_embeds", None):
        raise SrDeskError(f"{model_dir}: a class-conditional model needs a class label; Diff-SR uses unconditional ones")
    scheduler = _scheduler_config(scheduler_file)
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "sample", "v_prediction"):
        raise SrDeskError(f"{model_dir}: unknown prediction_type {prediction!r}")
    try:
        schedule = from_scheduler_config(scheduler)
    except (ValueError, TypeError) as exc:
        raise SrDeskError(f"{model_dir}: {exc}") from None
    multiple = 2 ** (len(config.block_out_channels) - 1)
    model.requires_grad_(False)
    return DiffusersPrior(model.to(device).eval(), schedule, prediction, multiple)
