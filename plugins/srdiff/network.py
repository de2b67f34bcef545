"""SRDiff networks: the RRDB LR encoder and the conditional noise-predicting U-Net.

Written from the project spec (``shared/spec/srdiff.md`` sections 2 and 6.1).
Module and attribute names are chosen so that ``state_dict()`` keys are
exactly those of the official checkpoints (``rrdb.*`` and ``denoise_fn.*``),
which therefore load with ``strict=True`` after the 12 schedule buffers are
dropped. Layer choices that look arbitrary (reflection vs zero padding, the
unused level-0 skip, nearest-neighbour upsampling in the encoder tail) are the
released model's, kept for bit-faithful outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sr_desk.diffusion.imresize import imresize
from sr_desk.diffusion.mish import mish, mish_add
from sr_desk.diffusion.reflect_conv import reflect_conv3x3

from .config import SRDiffConfig

__all__ = [
    "Block",
    "ConditionalUNet",
    "Downsample",
    "RRDB",
    "RRDBNet",
    "ResidualDenseBlock",
    "ResnetBlock",
    "SRDiffModel",
    "Upsample",
    "crop_padding",
    "pad_to_multiple",
    "timestep_embedding",
    "up_sample_lr",
]


# ---------------------------------------------------------------------------
# LR encoder (spec 2.2)
# ---------------------------------------------------------------------------


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (zero padding); output ``0.2 * conv5 + input``."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs chained, output ``0.2 * chain(x) + x``."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(nf, gc)
        self.RDB2 = ResidualDenseBlock(nf, gc)
        self.RDB3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The LR encoder. Its intermediate features are SRDiff's condition.

    The HR tail (``upconv*``, ``HRconv``, ``conv_last``) was trained with an L1
    loss against HR, so the encoder alone is also a fast deterministic
    upscaler (:meth:`upscale`); sampling never needs the tail (:meth:`encode`).
    """

    def __init__(self, config: SRDiffConfig) -> None:
        super().__init__()
        self.config = config
        nf, gc = config.rrdb_nf, config.rrdb_gc
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*(RRDB(nf, gc) for _ in range(config.rrdb_nb)))
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        # upconv1, upconv2 (and upconv3 for 8x): one nearest-x2 + conv per factor of two.
        for k in range(1, config.num_upconvs + 1):
            setattr(self, f"upconv{k}", nn.Conv2d(nf, nf, 3, 1, 1))
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def _features(self, lr: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """The ``nb + 1`` feature list (block outputs, then ``fea``), optionally only up to index ``upto``."""
        nb = self.config.rrdb_nb
        x = (lr + 1) / 2  # the encoder was trained on [0, 1] inputs
        first = self.conv_first(x.to(self.conv_first.weight.dtype))  # an encoder cast to bf16 takes the LR as it comes
        feats: list[torch.Tensor] = []
        fea = first
        for block in self.RRDB_trunk:
            fea = block(fea)
            feats.append(fea)
            if upto is not None and len(feats) > upto:
                return feats
        feats.append(first + self.trunk_conv(fea))
        assert len(feats) == nb + 1
        return feats

    def _tail(self, fea: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        for k in range(1, self.config.num_upconvs + 1):
            conv = getattr(self, f"upconv{k}")
            fea = self.lrelu(conv(F.interpolate(fea, scale_factor=2, mode="nearest")))
        hidden = self.lrelu(self.HRconv(fea))
        with torch.autocast(hidden.device.type, enabled=False):
            # The image itself (or its residual over bicubic): float32 even under bf16 autocast, whose
            # 8-bit mantissa would cost half a grey level across [-1, 1].
            out = self.conv_last(hidden.to(self.conv_last.weight.dtype))
        if self.config.encoder_skip:
            # Global skip: the trunk only learns what bicubic misses, which it learns far sooner.
            out = out.float() + imresize((lr.float() + 1) / 2, scale=float(self.config.scale))
        return out.clamp(0, 1) * 2 - 1

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(hr, features)``: ``lr`` in [-1, 1], ``hr`` in [-1, 1] at ``scale`` x, features the ``nb + 1`` list."""
        feats = self._features(lr)
        return self._tail(feats[-1], lr), feats

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        """The condition: channel concat of features 2, 5, 8, ... (``cond_channels``, LR size). Skips the tail."""
        idx = self.config.cond_indices
        feats = self._features(lr, upto=idx[-1])
        return torch.cat([feats[i] for i in idx], dim=1)

    def encode_and_upscale(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode` and :meth:`upscale` from one pass through the trunk."""
        feats = self._features(lr)
        return torch.cat([feats[i] for i in self.config.cond_indices], dim=1), self._tail(feats[-1], lr)

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """The tail image alone, in [-1, 1]: the encoder as a deterministic upscaler."""
        return self._tail(self._features(lr)[-1], lr)


# ---------------------------------------------------------------------------
# Conditional U-Net (spec 2.3, 2.4)
# ---------------------------------------------------------------------------


def timestep_embedding(steps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[sin(i f_k)] ++ [cos(i f_k)]``, ``f_k = exp(-k ln(10000) / (dim/2 - 1))``.

    ``steps`` holds 0-based step indices (the code's i = paper t - 1, spec 3.3);
    the embedding of 0 is ``[0, ..., 0, 1, ..., 1]``. Parameter-free.
    """
    half = dim // 2
    k = torch.arange(half, device=steps.device, dtype=torch.float32)
    freqs = torch.exp(k * (-math.log(10000.0) / (half - 1)))
    args = steps.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1)


class Block(nn.Module):
    """ReflectionPad2d(1) -> 3x3 conv -> Mish; the conv is ``block.1`` (no GroupNorm: ``gn_groups 0``).

    The padding and the convolution run as one :func:`reflect_conv3x3`, which
    pads nothing but the border, and Mish as :func:`sr_desk.diffusion.mish.mish`,
    one compiled pass on the CPU (the same numbers, faster).
    """

    def __init__(self, ci: int, co: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ci, co, 3), nn.Mish())

    def forward(
        self, x: torch.Tensor, shift: torch.Tensor | None = None, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``mish(conv(x + shift)) + residual`` for a per-channel ``shift`` (C,), which the conv takes in its
        bias; the residual is added in Mish's own pass."""
        conv: nn.Conv2d = self.block[1]  # type: ignore[assignment]
        bias = None
        if shift is not None:
            # A constant image stays constant under reflection padding, so the 3x3 conv of x + shift is the
            # conv of x plus the weights' sums times shift: one bias instead of an addition over every pixel.
            wide = torch.promote_types(conv.weight.dtype, torch.float32)
            summed = conv.weight.to(wide).sum((2, 3)) @ shift.to(wide)
            bias = (summed + (conv.bias.to(wide) if conv.bias is not None else 0)).to(conv.weight.dtype)
        y = reflect_conv3x3(x, conv, bias)
        return mish(y) if residual is None else mish_add(y, residual)


class ResnetBlock(nn.Module):
    """Two Blocks with the time embedding added in between; 1x1 shortcut only when channels change."""

    def __init__(self, ci: int, co: int, time_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_dim, co))
        self.block1 = Block(ci, co)
        self.block2 = Block(co, co)
        self.res_conv: nn.Module = nn.Conv2d(ci, co, 1) if ci != co else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        shift = self.mlp(temb)
        if shift.shape[0] == 1 and not torch.is_grad_enabled():
            # One image at inference: the shift rides in block2's bias, the residual in its Mish.
            return self.block2(h, shift[0], self.res_conv(x))
        return self.block2(h + shift[:, :, None, None]) + self.res_conv(x)


class Downsample(nn.Module):
    """ReflectionPad2d(1) -> 3x3 stride-2 conv (``conv.1``); halves even sides."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_conv3x3(x, self.conv[1])  # type: ignore[arg-type]


class Upsample(nn.Module):
    """4x4 stride-2 transposed conv (``conv.0``); exactly doubles."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.ConvTranspose2d(c, c, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConditionalUNet(nn.Module):
    """The noise predictor ``eps(x_i, i, cond)`` at HR resolution (spec 2.4).

    The condition enters once, added after the two level-0 ResBlocks, through
    ``cond_proj`` (a transposed conv from LR to HR size). That projection
    depends on the LR image only, so callers run :meth:`project_condition`
    once per image and pass the result to every :meth:`forward` step (the
    official code recomputes it at every one of the 100 steps).
    """

    def __init__(self, config: SRDiffConfig) -> None:
        super().__init__()
        self.config = config
        dim, s = config.unet_dim, config.scale
        dims = [3, *config.unet_widths]
        in_out = list(zip(dims[:-1], dims[1:], strict=True))
        levels = len(in_out)

        self.cond_proj = nn.ConvTranspose2d(config.cond_channels, dim, 2 * s, s, s // 2)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))

        self.downs = nn.ModuleList()
        for i, (ci, co) in enumerate(in_out):
            last = i == levels - 1
            self.downs.append(
                nn.ModuleList(
                    [ResnetBlock(ci, co, dim), ResnetBlock(co, co, dim), nn.Identity() if last else Downsample(co)]
                )
            )
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, dim)
        self.mid_block2 = ResnetBlock(mid, mid, dim)
        # One fewer up stage than levels: the level-0 skip is never concatenated (spec 2.4, 8.7).
        self.ups = nn.ModuleList()
        for ci, co in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([ResnetBlock(co * 2, ci, dim), ResnetBlock(ci, ci, dim), Upsample(ci)]))
        self.final_conv = nn.Sequential(Block(dim, dim), nn.Conv2d(dim, 3, 1))

    def project_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond_proj(cond)``: ``(B, cond_channels, h, w)`` -> ``(B, unet_dim, s*h, s*w)``. Cache it per image."""
        return self.cond_proj(cond)

    def forward(self, x: torch.Tensor, step: torch.Tensor | int, projected_cond: torch.Tensor) -> torch.Tensor:
        """Predicted noise for ``x`` (B, 3, H, W) at 0-based step index ``step`` (an int or a (B,) tensor).

        ``projected_cond`` comes from :meth:`project_condition` and must be
        (B or 1, unet_dim, H, W). H and W must be multiples of ``config.size_multiple``
        (8) and at least ``config.min_side`` (16): the deepest level's reflection
        padding needs two pixels.
        """
        m, smallest = self.config.size_multiple, self.config.min_side
        h, w = x.shape[-2], x.shape[-1]
        if h % m or w % m or h < smallest or w < smallest:
            raise ValueError(
                f"U-Net input sides must be multiples of {m} and at least {smallest}, got {(h, w)}; "
                "use pad_to_multiple"
            )
        if not torch.is_tensor(step):
            step = torch.tensor([step], device=x.device)
        step = step.reshape(-1).to(x.device)
        if step.numel() == 1 and x.shape[0] != 1:
            step = step.expand(x.shape[0])
        temb = self.mlp(timestep_embedding(step, self.config.unet_dim).to(x.dtype))

        skips: list[torch.Tensor] = []
        for i, stage in enumerate(self.downs):
            res1, res2, down = stage[0], stage[1], stage[2]  # type: ignore[index]
            x = res2(res1(x, temb), temb)
            if i == 0:
                x = x + projected_cond
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_block1(x, temb), temb)
        for stage in self.ups:
            res1, res2, up = stage[0], stage[1], stage[2]  # type: ignore[index]
            x = torch.cat((x, skips.pop()), dim=1)
            x = up(res2(res1(x, temb), temb))
        return self.final_conv(x)


# ---------------------------------------------------------------------------
# Whole model
# ---------------------------------------------------------------------------


class SRDiffModel(nn.Module):
    """``rrdb`` (LR encoder) + ``denoise_fn`` (U-Net), with the official state-dict prefixes.

    Holds no schedule buffers: the cosine schedule is recomputed from the
    config, so checkpoints carry weights only.
    """

    def __init__(self, config: SRDiffConfig) -> None:
        super().__init__()
        self.config = config
        self.rrdb = RRDBNet(config)
        self.denoise_fn = ConditionalUNet(config)

    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        """The projected condition of an LR image in [-1, 1]; compute once, reuse for every step."""
        return self.denoise_fn.project_condition(self.rrdb.encode(lr))

    def forward(self, x: torch.Tensor, step: torch.Tensor | int, projected_cond: torch.Tensor) -> torch.Tensor:
        """Predicted noise; see :meth:`ConditionalUNet.forward`."""
        return self.denoise_fn(x, step, projected_cond)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def pad_to_multiple(
    x: torch.Tensor, multiple: int = 8, min_size: int = 0
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflect-pad the bottom/right of ``x`` (..., H, W) so both sides divide by ``multiple``.

    The U-Net's stride-2 stages need HR sides divisible by 8 (and at least 16,
    pass ``min_size=config.min_side``); tiles and selections come in any size.
    Returns the padded tensor and the pad ``(left, right, top, bottom)`` for
    :func:`crop_padding`. Reflection (not zeros) keeps the padded border
    statistically like the image, so the network does not see an artificial
    edge. Pads of a side's length or more (tiny inputs), which reflection
    cannot make, fall back to replicate padding.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    if x.ndim < 2:
        raise ValueError(f"expected (..., H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2], x.shape[-1]
    floor = min_size + (-min_size % multiple)  # min_size rounded up to the multiple
    pad_h = max(h + (-h % multiple), floor) - h
    pad_w = max(w + (-w % multiple), floor) - w
    pad = (0, pad_w, 0, pad_h)
    if pad_h == 0 and pad_w == 0:
        return x, pad
    # F.pad's reflect/replicate modes want (N, C, H, W): fold any leading axes.
    y = x.reshape(-1, 1, h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    y = F.pad(y, pad, mode=mode)
    return y.reshape(*x.shape[:-2], h + pad_h, w + pad_w), pad


def crop_padding(x: torch.Tensor, pad: tuple[int, int, int, int], scale: int = 1) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`; ``scale`` maps a pad measured at LR size to an output ``scale`` x larger."""
    left, right, top, bottom = (p * scale for p in pad)
    h, w = x.shape[-2], x.shape[-1]
    return x[..., top : h - bottom, left : w - right]


def up_sample_lr(lr: torch.Tensor, scale: int, official_quirk: bool = True) -> torch.Tensor:
    """``lr_up`` in [-1, 1]: MATLAB bicubic ``scale`` x of an LR image given in [0, 1] (= u8 / 255).

    With ``official_quirk`` the LR is first multiplied by 255/256, i.e. the
    upsample sees ``u8 / 256``: the official dataset divides by 256 there
    (while HR and the encoder input use /255), so the released weights learned
    a residual against a slightly darker ``lr_up`` (about one grey level at
    white, spec 8.1). Reproduce it for released weights; models trained by
    this project can choose either, as long as training and sampling agree.
    """
    src = lr * (255.0 / 256.0) if official_quirk else lr
    return 2 * imresize(src, scale=float(scale)) - 1
