"""SRDiff networks: shapes, official key names and parameter counts, config inference."""

from __future__ import annotations

import math

import pytest
import torch

from sr_desk.diffusion.imresize import imresize
from sr_desk_plugins.srdiff.config import SRDiffConfig, infer_config, infer_encoder_config, official_4x, official_8x
from sr_desk_plugins.srdiff.network import (
    ConditionalUNet,
    RRDBNet,
    SRDiffModel,
    crop_padding,
    pad_to_multiple,
    timestep_embedding,
    up_sample_lr,
)

SMALL_4X = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=16, dim_mults=(1, 2, 2, 2))
SMALL_8X = SRDiffConfig(scale=8, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=16, dim_mults=(1, 2, 2, 2))


def _meta_model(config: SRDiffConfig) -> SRDiffModel:
    """Shapes and names only: no memory, no init time."""
    with torch.device("meta"):
        return SRDiffModel(config)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# Expected keys, generated from the rules of spec 6.1 (independently of network.py)
# ---------------------------------------------------------------------------


def _spec_keys(config: SRDiffConfig) -> set[str]:
    keys: list[str] = []

    def wb(stem: str) -> None:
        keys.extend((f"{stem}.weight", f"{stem}.bias"))

    r = "rrdb."
    wb(r + "conv_first")
    for k in range(config.rrdb_nb):
        for rdb in (1, 2, 3):
            for conv in range(1, 6):
                wb(f"{r}RRDB_trunk.{k}.RDB{rdb}.conv{conv}")
    wb(r + "trunk_conv")
    for k in range(1, int(math.log2(config.scale)) + 1):
        wb(f"{r}upconv{k}")
    wb(r + "HRconv")
    wb(r + "conv_last")

    u = "denoise_fn."
    wb(u + "cond_proj")
    wb(u + "mlp.0")
    wb(u + "mlp.2")

    def resblock(stem: str, ci: int, co: int) -> None:
        wb(f"{stem}.mlp.1")
        wb(f"{stem}.block1.block.1")
        wb(f"{stem}.block2.block.1")
        if ci != co:
            wb(f"{stem}.res_conv")

    dims = [3] + [config.unet_dim * m for m in config.dim_mults]
    levels = len(dims) - 1
    for lvl in range(levels):
        resblock(f"{u}downs.{lvl}.0", dims[lvl], dims[lvl + 1])
        resblock(f"{u}downs.{lvl}.1", dims[lvl + 1], dims[lvl + 1])
        if lvl < levels - 1:
            wb(f"{u}downs.{lvl}.2.conv.1")
    resblock(u + "mid_block1", dims[-1], dims[-1])
    resblock(u + "mid_block2", dims[-1], dims[-1])
    for i, lvl in enumerate(range(levels - 1, 0, -1)):  # up stage i consumes skip of level lvl
        ci, co = 2 * dims[lvl + 1], dims[lvl]
        resblock(f"{u}ups.{i}.0", ci, co)
        resblock(f"{u}ups.{i}.1", co, co)
        wb(f"{u}ups.{i}.2.conv.0")
    wb(u + "final_conv.0.block.1")
    wb(u + "final_conv.1")
    assert len(keys) == len(set(keys))
    return set(keys)


# ---------------------------------------------------------------------------
# Official configurations: counts and keys
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "rrdb", "unet"),
    [(official_4x(), 1_478_755, 11_755_267), (official_8x(), 1_488_003, 10_545_795)],
    ids=["4x", "8x"],
)
def test_official_parameter_counts(config: SRDiffConfig, rrdb: int, unet: int) -> None:
    model = _meta_model(config)
    assert _count(model.rrdb) == rrdb
    assert _count(model.denoise_fn) == unet
    assert list(model.buffers()) == []  # no schedule buffers in our module


@pytest.mark.parametrize("config", [official_4x(), official_8x()], ids=["4x", "8x"])
def test_official_state_dict_keys(config: SRDiffConfig) -> None:
    sd = _meta_model(config).state_dict()
    assert set(sd) == _spec_keys(config)
    # 396 entries in the official files for nb = 8, minus the 12 schedule buffers.
    assert len(sd) == 396 - 12 == 384
    s = config.scale
    assert sd["denoise_fn.cond_proj.weight"].shape == (96, 64, 2 * s, 2 * s)
    assert sd["denoise_fn.mlp.0.weight"].shape == (256, 64)
    assert sd["denoise_fn.mlp.2.weight"].shape == (64, 256)
    assert sd["denoise_fn.downs.0.2.conv.1.weight"].shape == (64, 64, 3, 3)
    assert sd["denoise_fn.ups.2.2.conv.0.weight"].shape == (64, 64, 4, 4)
    assert sd["denoise_fn.downs.0.0.mlp.1.weight"].shape == (64, 64)
    assert sd["denoise_fn.downs.0.0.res_conv.weight"].shape == (64, 3, 1, 1)
    assert "denoise_fn.downs.0.1.res_conv.weight" not in sd
    assert "denoise_fn.downs.3.2.conv.1.weight" not in sd  # no downsample at the last level
    assert sd["denoise_fn.final_conv.0.block.1.weight"].shape == (64, 64, 3, 3)
    assert sd["denoise_fn.final_conv.1.weight"].shape == (3, 64, 1, 1)
    assert sd["rrdb.RRDB_trunk.7.RDB3.conv5.weight"].shape == (32, 96, 3, 3)
    assert "rrdb.RRDB_trunk.8.RDB1.conv1.weight" not in sd
    assert ("rrdb.upconv3.weight" in sd) == (s == 8)


def test_official_unet_channel_table() -> None:
    sd4 = _meta_model(official_4x()).state_dict()
    # (in, out) of the first ResBlock of each stage, spec 2.4 table, 4x column.
    def first_conv(stem: str) -> tuple[int, int]:
        w = sd4[f"denoise_fn.{stem}.block1.block.1.weight"]
        return int(w.shape[1]), int(w.shape[0])

    assert [first_conv(f"downs.{i}.0") for i in range(4)] == [(3, 64), (64, 128), (128, 192), (192, 256)]
    assert first_conv("mid_block1") == (256, 256)
    assert [first_conv(f"ups.{i}.0") for i in range(3)] == [(512, 192), (384, 128), (256, 64)]
    sd8 = _meta_model(official_8x()).state_dict()
    assert [tuple(sd8[f"denoise_fn.ups.{i}.0.block1.block.1.weight"].shape[1::-1]) for i in range(3)] == [
        (512, 128),
        (256, 128),
        (256, 64),
    ]


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------


def test_config_derived_values_and_presets() -> None:
    c4, c8 = official_4x(), official_8x()
    assert c4.dim_mults == (1, 2, 3, 4) and c8.dim_mults == (1, 2, 2, 4)
    assert (c4.rrdb_nf, c4.rrdb_nb, c4.rrdb_gc, c4.unet_dim, c4.timesteps, c4.beta_s) == (32, 8, 16, 64, 100, 0.008)
    assert c4.cond_channels == 96 and c4.cond_indices == (2, 5, 8)
    big = SRDiffConfig(rrdb_nf=64, rrdb_nb=17, rrdb_gc=32)  # the DF2K pre-train size (spec 8.8)
    assert big.cond_channels == 384 and big.cond_indices == (2, 5, 8, 11, 14, 17)
    assert SRDiffConfig(rrdb_nb=4).cond_indices == (2,)
    assert c4.size_multiple == 8


@pytest.mark.parametrize("config", [official_4x(), official_8x(), SMALL_4X, SRDiffConfig(beta_s=0.01, timesteps=50)])
def test_config_json_round_trip(config: SRDiffConfig) -> None:
    assert SRDiffConfig.from_json(config.to_json()) == config
    assert SRDiffConfig.from_json(config.to_dict()) == config
    assert hash(SRDiffConfig.from_json(config.to_json())) == hash(config)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="power of two"):
        SRDiffConfig(scale=3)
    with pytest.raises(ValueError, match="unknown"):
        SRDiffConfig.from_json('{"scale": 4, "attention": true}')
    with pytest.raises(ValueError):
        SRDiffConfig.from_json("not json")
    with pytest.raises(ValueError):
        SRDiffConfig(rrdb_nb=1)


@pytest.mark.parametrize(
    "config",
    [
        official_4x(),
        official_8x(),
        SMALL_4X,
        SRDiffConfig(scale=2, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8, dim_mults=(1, 2)),
        SRDiffConfig(scale=8, rrdb_nf=12, rrdb_nb=5, rrdb_gc=6, unet_dim=8, dim_mults=(1, 1, 3)),
        SRDiffConfig(scale=16, rrdb_nf=64, rrdb_nb=17, rrdb_gc=32, unet_dim=32, dim_mults=(2, 2, 4, 4, 8)),
    ],
)
def test_infer_config_round_trip(config: SRDiffConfig) -> None:
    sd = _meta_model(config).state_dict()
    assert infer_config(sd) == config
    encoder = {k: v for k, v in sd.items() if k.startswith("rrdb.")}
    assert infer_encoder_config(encoder).same_encoder(config)
    bare = {k.removeprefix("rrdb."): v for k, v in encoder.items()}
    assert infer_encoder_config(bare, prefix_rrdb="").same_encoder(config)


def test_infer_config_reads_timesteps_from_betas() -> None:
    sd = dict(_meta_model(SMALL_4X).state_dict())
    sd["betas"] = torch.zeros(50)
    assert infer_config(sd).timesteps == 50


def test_infer_config_errors() -> None:
    with pytest.raises(ValueError, match=r"not an SRDiff state dict: missing rrdb\.conv_first\.weight"):
        infer_config({"conv.weight": torch.zeros(1)})
    sd = dict(_meta_model(SMALL_4X).state_dict())
    encoder_only = {k: v for k, v in sd.items() if k.startswith("rrdb.")}
    with pytest.raises(ValueError, match=r"missing denoise_fn\.cond_proj\.weight"):
        infer_config(encoder_only)
    wrong = dict(sd)
    wrong["denoise_fn.cond_proj.weight"] = torch.zeros(12, 16, 8, 8, device="meta")
    with pytest.raises(ValueError, match="cond_proj takes 12 channels"):
        infer_config(wrong)
    mixed = dict(sd)
    mixed["rrdb.upconv3.weight"] = torch.zeros(8, 8, 3, 3, device="meta")
    with pytest.raises(ValueError, match="inconsistent"):
        infer_config(mixed)


# ---------------------------------------------------------------------------
# Forward passes on small models
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "lr_side"), [(SMALL_4X, 8), (SMALL_8X, 4)], ids=["4x", "8x"])
def test_shapes(config: SRDiffConfig, lr_side: int) -> None:
    torch.manual_seed(0)
    model = SRDiffModel(config).eval()
    lr = torch.rand(2, 3, lr_side, lr_side) * 2 - 1
    hr_side = lr_side * config.scale
    with torch.no_grad():
        hr, feats = model.rrdb(lr)
        assert hr.shape == (2, 3, hr_side, hr_side)
        assert float(hr.min()) >= -1 and float(hr.max()) <= 1
        assert len(feats) == config.rrdb_nb + 1
        assert all(f.shape == (2, config.rrdb_nf, lr_side, lr_side) for f in feats)
        cond = model.rrdb.encode(lr)
        assert cond.shape == (2, config.cond_channels, lr_side, lr_side)
        torch.testing.assert_close(cond, torch.cat([feats[i] for i in config.cond_indices], 1), rtol=0, atol=0)
        torch.testing.assert_close(model.rrdb.upscale(lr), hr, rtol=0, atol=0)
        projected = model.denoise_fn.project_condition(cond)
        assert projected.shape == (2, config.unet_dim, hr_side, hr_side)
        torch.testing.assert_close(model.condition(lr), projected, rtol=0, atol=0)
        x = torch.randn(2, 3, hr_side, hr_side)
        eps = model(x, torch.tensor([0, 99]), projected)
        assert eps.shape == (2, 3, hr_side, hr_side)


def test_encode_stops_early_when_later_features_are_unused() -> None:
    config = SRDiffConfig(scale=4, rrdb_nf=4, rrdb_nb=4, rrdb_gc=2, unet_dim=8, dim_mults=(1, 2))
    torch.manual_seed(0)
    net = RRDBNet(config).eval()
    lr = torch.rand(1, 3, 4, 4) * 2 - 1
    with torch.no_grad():
        _, feats = net(lr)
        torch.testing.assert_close(net.encode(lr), feats[2], rtol=0, atol=0)


def test_forward_is_deterministic_and_uses_the_step() -> None:
    torch.manual_seed(1)
    unet = ConditionalUNet(SMALL_4X).eval()
    x = torch.randn(1, 3, 16, 24)
    cond = unet.project_condition(torch.randn(1, SMALL_4X.cond_channels, 4, 6))
    with torch.no_grad():
        a = unet(x, 5, cond)
        b = unet(x, torch.tensor([5]), cond)
        c = unet(x, 6, cond)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    with torch.no_grad():  # a python int broadcasts over the batch
        batch = unet(x.expand(3, -1, -1, -1), 5, cond.expand(3, -1, -1, -1))
    torch.testing.assert_close(batch, a.expand(3, -1, -1, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(12, 16), (16, 8)])
def test_forward_rejects_bad_sides(shape: tuple[int, int]) -> None:
    unet = ConditionalUNet(SMALL_4X)
    with pytest.raises(ValueError, match="multiples of 8 and at least 16"):
        unet(torch.zeros(1, 3, *shape), 0, torch.zeros(1, 16, *shape))


def test_pad_to_multiple_with_min_size_makes_tiny_regions_usable() -> None:
    unet = ConditionalUNet(SMALL_4X).eval()
    x = torch.randn(1, 3, 5, 11)
    padded, pad = pad_to_multiple(x, 8, min_size=SMALL_4X.min_side)
    assert padded.shape[-2:] == (16, 16)
    with torch.no_grad():
        eps = unet(padded, 0, torch.zeros(1, 16, 16, 16))
    assert crop_padding(eps, pad).shape == x.shape
    assert pad_to_multiple(torch.zeros(1, 1, 24, 40), 8, min_size=16)[0].shape[-2:] == (24, 40)


def test_condition_is_added_once_after_the_level_zero_resblocks() -> None:
    torch.manual_seed(2)
    unet = ConditionalUNet(SMALL_4X).eval()
    x = torch.randn(1, 3, 16, 16)
    cond = torch.randn(1, 16, 16, 16)
    seen: dict[str, torch.Tensor] = {}
    unet.downs[0][1].register_forward_hook(lambda m, i, o: seen.__setitem__("res", o))
    unet.downs[0][2].register_forward_hook(lambda m, i, o: seen.__setitem__("down_in", i[0]))
    unet.downs[1][0].register_forward_hook(lambda m, i, o: seen.__setitem__("level1_in", i[0]))
    with torch.no_grad():
        unet(x, 3, cond)
    torch.testing.assert_close(seen["down_in"], seen["res"] + cond, rtol=0, atol=0)
    assert seen["level1_in"].shape == (1, 16, 8, 8)


def test_time_embedding_of_index_zero() -> None:
    emb = timestep_embedding(torch.tensor([0, 1]), 64)
    torch.testing.assert_close(emb[0], torch.cat((torch.zeros(32), torch.ones(32))), rtol=0, atol=0)
    k = torch.arange(32, dtype=torch.float64)
    freqs = torch.exp(-k * math.log(10000) / 31)
    torch.testing.assert_close(emb[1].double(), torch.cat((freqs.sin(), freqs.cos())), rtol=0, atol=1e-6)
    assert math.isclose(float(freqs[31]), 1e-4, rel_tol=1e-12)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 13, 21), (3, 16, 16), (2, 3, 2, 3), (5, 9)])
def test_pad_to_multiple_round_trip(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    padded, pad = pad_to_multiple(x, 8)
    assert padded.shape[:-2] == x.shape[:-2]
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert padded.shape[-2] - x.shape[-2] < 8 and padded.shape[-1] - x.shape[-1] < 8
    torch.testing.assert_close(crop_padding(padded, pad), x, rtol=0, atol=0)
    if pad == (0, 0, 0, 0):
        assert padded is x


def test_pad_is_a_reflection_and_scales_for_outputs() -> None:
    x = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 1, 5, 5)
    padded, pad = pad_to_multiple(x, 8)
    assert pad == (0, 3, 0, 3)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1]
    big = torch.zeros(1, 1, 32, 32)
    assert crop_padding(big, pad, scale=4).shape == (1, 1, 20, 20)


def test_up_sample_lr_quirk() -> None:
    white = torch.ones(1, 3, 4, 4)
    assert torch.allclose(up_sample_lr(white, 4, official_quirk=True), torch.full((1, 3, 16, 16), 2 * 255 / 256 - 1))
    assert torch.allclose(up_sample_lr(white, 4, official_quirk=False), torch.ones(1, 3, 16, 16))
    lr = torch.rand(1, 3, 5, 6)
    torch.testing.assert_close(up_sample_lr(lr, 8), 2 * imresize(lr * 255 / 256, scale=8) - 1)


def test_the_time_shift_folded_into_the_bias_is_the_shift_added_before_the_conv():
    """Issue 28: at inference the per-channel time shift rides in block2's bias instead of an add over every pixel."""
    from sr_desk_plugins.srdiff.network import ResnetBlock

    torch.manual_seed(0)
    block = ResnetBlock(4, 6, 8).eval()
    x, temb = torch.randn(1, 4, 9, 7, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)
    block = block.double()
    with torch.no_grad():
        folded = block(x, temb)
    with torch.enable_grad():
        added = block(x, temb)  # recorded for autograd: the plain addition
    torch.testing.assert_close(folded, added.detach(), rtol=1e-10, atol=1e-12)
