"""Training SRDiff on the shared trainer: the LR encoder first (L1 to HR), then the noise predictor.

    sr-desk train srdiff --data ../shared/data/train --out runs/srdiff --stage encoder --steps 20000
    sr-desk train srdiff --data ../shared/data/train --out runs/srdiff --stage diffusion --steps 100000
    sr-desk train srdiff --out runs/srdiff --export resources/weights/srdiff-x4.safetensors
    sr-desk train srdiff --convert model_ckpt_steps_400000.ckpt --export srdiff-div2k.safetensors

From a plain checkout (a GPU machine without the project installed):
``python -m sr_desk.training srdiff ...``. ``--init FILE.safetensors`` starts
from shipped weights instead of random ones; ``--resume`` continues
``OUT/<stage>.pt``. The loop, the data on the device, the EMA, the schedule
and the logs are ``sr_desk.training``'s; this module supplies the model, the
two losses and the export. The paper's recipe (spec section 4): Adam 2e-4,
L1 losses, frozen encoder in stage 2, eps-prediction, T = 100 cosine schedule.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from sr_desk.diffusion.consistency import residual_consistency
from sr_desk.diffusion.noise import SeededNoise
from sr_desk.diffusion.samplers import make_sampler
from sr_desk.diffusion.schedule import cosine_schedule
from sr_desk.training.cli import add_export_arguments, add_training_arguments, run_trainer
from sr_desk.training.export import describe_training_data
from sr_desk.training.metrics import forward_flops
from sr_desk.training.texture import texture_loss
from sr_desk_plugins.srdiff.checkpoints import (
    convert_official,
    load_encoder,
    load_model,
    read_metadata,
    save_safetensors,
)
from sr_desk_plugins.srdiff.config import RESIDUAL_BASES, SRDiffConfig
from sr_desk_plugins.srdiff.network import ConditionalUNet, RRDBNet, up_sample_lr

PRESETS = {
    # The paper's released 4x configuration (DF2K): 1.48 M + 11.76 M parameters.
    "official-4x": dict(rrdb_nf=32, rrdb_nb=8, rrdb_gc=16, unet_dim=64, dim_mults=(1, 2, 3, 4)),
    # A compact model that trains on a laptop CPU in hours rather than days.
    "compact-4x": dict(rrdb_nf=32, rrdb_nb=8, rrdb_gc=16, unet_dim=32, dim_mults=(1, 2, 2, 4)),
    # For tests.
    "tiny-4x": dict(rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2, 2, 2)),
}

FROZEN_ENCODER = "frozen-encoder.safetensors"
VALIDATION_STEPS = 10  # DDIM eta 1 with LR consistency, as the app samples, but half the steps


# -- the two stages ------------------------------------------------------------------


class EncoderTask:
    """Stage 1: the RRDB encoder with its HR tail, L1 against HR (the paper's pre-training)."""

    stage = "encoder"

    def __init__(self, config: SRDiffConfig, encoder: RRDBNet):
        self.config, self.module, self.scale = config, encoder, config.scale

    def config_json(self) -> str:
        return self.config.to_json()

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out, _ = module(lr * 2 - 1)
        return (out.float() - (hr * 2 - 1)).abs().mean()

    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        return (module.upscale(lr * 2 - 1).float() + 1) / 2

    def flops_per_sample(self, patch: int) -> float | None:
        lr = torch.zeros(1, 3, patch // self.scale, patch // self.scale)
        return forward_flops(lambda: self.module.upscale(lr))


class DiffusionTask:
    """Stage 2: the conditional U-Net, L1 on the noise, with the encoder frozen (spec 4)."""

    stage = "diffusion"

    def __init__(
        self, config: SRDiffConfig, encoder: RRDBNet, unet: ConditionalUNet, validation_steps: int, texture: float = 0.0
    ):
        self.config, self.module, self.scale = config, unet, config.scale
        self.texture = texture  # weight of the texture loss on the implied image (sr_desk/training/texture.py)
        self.encoder = encoder.eval().requires_grad_(False)
        self.schedule = cosine_schedule(config.timesteps, config.beta_s)
        self.validation_steps = validation_steps
        self._abar: torch.Tensor | None = None
        self._encoder_device: torch.device | None = None

    def config_json(self) -> str:
        return self.config.to_json()

    @torch.no_grad()
    def base_and_condition(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The image the residual is measured from, and the encoder's condition, for LR in ``[0, 1]``."""
        if self._encoder_device != lr.device:  # once: the loop moves only the trained module
            self.encoder.to(lr.device, memory_format=torch.channels_last)
            self._encoder_device = lr.device
        cond, upscaled = self.encoder.encode_and_upscale(lr * 2 - 1)
        if self.config.residual_base == "encoder":
            return upscaled.float(), cond
        return up_sample_lr(lr, self.scale, official_quirk=False), cond

    def loss(self, module: nn.Module, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        base, cond = self.base_and_condition(lr)
        x0 = ((hr * 2 - 1 - base) * 2).clamp(-1, 1)
        if self._abar is None or self._abar.device != lr.device:
            self._abar = self.schedule.alphas_cumprod.to(lr.device, torch.float32)
        index = torch.randint(0, self.config.timesteps, (lr.shape[0],), device=lr.device, generator=generator)
        noise = torch.randn(x0.shape, device=lr.device, generator=generator)
        abar = self._abar[index].view(-1, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        predicted = module(x_t, index, module.project_condition(cond)).float()
        loss = (predicted - noise).abs().mean()
        if not self.texture:
            return loss
        # The image the prediction implies; weighted by abar, the share of signal its step keeps.
        implied = (x_t - (1 - abar).sqrt() * predicted) / abar.sqrt().clamp_min(1e-3)
        image = base + implied.clamp(-1, 1) / 2
        return loss + self.texture * texture_loss(image, hr * 2 - 1, abar.reshape(-1))

    @torch.no_grad()
    def predict(self, module: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """DDIM (eta 1) with LR consistency, as the app samples; a fixed seed, so scores are comparable."""
        base, cond = self.base_and_condition(lr)
        projected = module.project_condition(cond)
        sampler = make_sampler("ddim", self.schedule, self.validation_steps, eta=1.0)
        noise = SeededNoise(0)
        x = noise(base.shape, device=base.device, dtype=torch.float32)
        residual = sampler.sample(lambda x_t, i: module(x_t, i, projected).float(), x, generator=noise,
                                  correct_x0=residual_consistency(base, lr * 2 - 1, self.scale))
        return (residual.clamp(-1, 1) / 2 + base + 1) / 2

    def flops_per_sample(self, patch: int) -> float | None:
        h = patch // self.scale
        cond = torch.zeros(1, self.config.cond_channels, h, h)
        projected = self.module.project_condition(cond)
        return forward_flops(lambda: self.module(torch.zeros(1, 3, patch, patch), 0, projected))


# -- building the model ----------------------------------------------------------------


def run_config(args: argparse.Namespace) -> SRDiffConfig:
    """The run's architecture: the preset's, or the ``--init`` file's when no preset is named."""
    if args.preset is None and args.init is not None:
        base = _file_config(args.init)
    else:
        base = SRDiffConfig(scale=args.scale, **PRESETS[args.preset or "compact-4x"])
    residual_base = args.residual_base or (base.residual_base if args.init is not None else "bicubic")
    return dataclasses.replace(base, encoder_skip=args.encoder_skip, residual_base=residual_base)


def _file_config(path: Path) -> SRDiffConfig:
    if read_metadata(path).get("architecture") == "srdiff-encoder":
        return load_encoder(path)[1]
    return load_model(path)[1]


def _init_encoder(encoder: RRDBNet, path: Path) -> None:
    """Copy the encoder weights of ``path``; a file without the global skip starts the skip as zero."""
    source, source_config, _ = load_encoder(path)
    encoder.load_state_dict(source.state_dict())
    if encoder.config.encoder_skip and not source_config.encoder_skip:
        # The old tail predicted the image; with the skip it must predict the residual over bicubic.
        # Zero its last conv: the run starts exactly at bicubic, the trunk's features kept.
        _zero_skip_tail(encoder)
        print(f"--init {path.name}: encoder trunk loaded; conv_last zeroed for the global skip", file=sys.stderr)
    else:
        print(f"--init {path.name}: encoder loaded", file=sys.stderr)


def _zero_skip_tail(encoder: RRDBNet) -> None:
    nn.init.zeros_(encoder.conv_last.weight)
    nn.init.zeros_(encoder.conv_last.bias)


def _encoder_state(out: Path) -> tuple[dict[str, torch.Tensor], SRDiffConfig, str | None, int] | None:
    """Stage 1's EMA weights in ``out``, their config, the photo folder and its step count; None before stage 1."""
    path = out / "encoder.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["ema"], SRDiffConfig.from_json(state["config"]), state.get("data"), state["step"]


def _frozen_encoder(args: argparse.Namespace, config: SRDiffConfig) -> RRDBNet:
    """Stage 2's encoder: ``OUT/encoder.pt`` (EMA) when stage 1 ran here, else the ``--init`` file's."""
    encoder = RRDBNet(config)
    trained = _encoder_state(args.out)
    if trained is not None:
        state, enc_config, _, _ = trained
        if not enc_config.same_encoder(config) or enc_config.encoder_skip != config.encoder_skip:
            raise SystemExit(f"{args.out / 'encoder.pt'} has another encoder configuration: {enc_config.to_json()}")
        encoder.load_state_dict(state)
        return encoder
    if args.init is None:
        raise SystemExit(f"stage 'diffusion' needs a trained encoder: run --stage encoder into {args.out} or give --init")
    source, source_config, _ = load_encoder(args.init)
    if source_config.encoder_skip != config.encoder_skip:
        raise SystemExit(f"{args.init.name} has encoder_skip={source_config.encoder_skip}; pass the same switch")
    encoder.load_state_dict(source.state_dict())
    save_safetensors(encoder, config, args.out / FROZEN_ENCODER, architecture="srdiff-encoder",
                     metadata={"trained_by": f"copied from {args.init.name}"})
    return encoder


def build_task(args: argparse.Namespace) -> EncoderTask | DiffusionTask:
    config = run_config(args)
    if args.stage == "encoder":
        encoder = RRDBNet(config)
        if args.init is not None and not args.resume:
            _init_encoder(encoder, args.init)
        elif config.encoder_skip:
            _zero_skip_tail(encoder)  # a fresh model with the skip starts exactly at bicubic
        return EncoderTask(config, encoder)
    encoder = _frozen_encoder(args, config)
    unet = ConditionalUNet(config)
    if args.init is not None and not args.resume and read_metadata(args.init).get("architecture") != "srdiff-encoder":
        model, init_config, _ = load_model(args.init)
        if not init_config.same_architecture(config):
            raise SystemExit(f"{args.init.name} holds another U-Net ({init_config.to_json()})")
        unet.load_state_dict(model.denoise_fn.state_dict())
        print(f"--init {args.init.name}: U-Net loaded", file=sys.stderr)
    return DiffusionTask(config, encoder, unet, args.val_steps, args.texture)


# -- export ---------------------------------------------------------------------------


def export(args: argparse.Namespace) -> int:
    """EMA weights of the run folder into one safetensors file (encoder, plus the U-Net once trained)."""
    encoder_state, config, data, steps = None, None, None, None
    trained = _encoder_state(args.out)
    if trained is not None:
        encoder_state, config, data, steps = trained
    elif (args.out / FROZEN_ENCODER).exists():
        encoder, config, _ = load_encoder(args.out / FROZEN_ENCODER)
        encoder_state = encoder.state_dict()
    unet_path = args.out / "diffusion.pt"
    unet_state = None
    if unet_path.exists():
        state = torch.load(unet_path, map_location="cpu", weights_only=True)
        unet_state, config, data = state["ema"], SRDiffConfig.from_json(state["config"]), state.get("data")
        steps = state["step"]
        print(f"diffusion: step {steps}", file=sys.stderr)
    if encoder_state is None or config is None:
        raise SystemExit(f"nothing to export: no encoder.pt or {FROZEN_ENCODER} in {args.out}")
    state_dict = {f"rrdb.{k}": v for k, v in encoder_state.items()}
    if unet_state is not None:
        state_dict.update({f"denoise_fn.{k}": v for k, v in unet_state.items()})
    meta = {
        "training_data": describe_training_data(data, "bicubic x4 degradation"),
        "trained_by": "sr-desk train srdiff",
        "version": "2",
    }
    if steps is not None:  # the last stage's, as every trainer's export records
        meta["steps"] = str(steps)
    save_safetensors(
        state_dict,
        config,
        args.export,
        metadata=meta,
        dtype=torch.float16 if args.fp16 else torch.float32,
        architecture="srdiff" if unet_state is not None else "srdiff-encoder",
    )
    print(f"wrote {args.export} ({args.export.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


# -- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sr-desk train srdiff", description=__doc__.split("\n\n")[0])
    add_training_arguments(p)
    p.add_argument("--stage", choices=("encoder", "diffusion"), default="encoder")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="architecture (default: the --init file's, else compact-4x)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--encoder-skip", action=argparse.BooleanOptionalAction, default=True,
                   help="the encoder predicts the residual over bicubic (default on; official weights: off)")
    p.add_argument("--residual-base", choices=RESIDUAL_BASES, default=None,
                   help="the diffusion residual is measured from bicubic (the paper) or the encoder's upscale "
                   "(default: the --init file's, else bicubic)")
    p.add_argument("--val-steps", type=int, default=VALIDATION_STEPS, help="diffusion stage: DDIM steps to validate")
    p.add_argument("--texture", type=float, default=0.0,
                   help="diffusion stage: weight of the texture loss (local amount of fine structure, phase-free) on "
                   "the image each noise prediction implies, weighted by its step's signal; 0: the paper's L1 alone")
    add_export_arguments(p, "SRDiff")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_trainer(build_parser().parse_args(argv), build_task=build_task, export=export, convert=_convert)


def _convert(checkpoint: Path, out: Path) -> str:
    config = convert_official(checkpoint, out)
    return f"SRDiff x{config.scale}, {config.to_json()}"

if __name__ == "__main__":
    sys.exit(main())
