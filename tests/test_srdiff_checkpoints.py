"""SRDiff checkpoints: official legacy files, safetensors, and every way a file can be refused."""

from __future__ import annotations

import builtins
import math
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from sr_desk.core.errors import SrDeskError
from sr_desk_plugins.srdiff.checkpoints import (
    SCHEDULE_BUFFERS,
    CheckpointError,
    convert_official,
    load_encoder,
    load_model,
    load_state_dict_file,
    read_metadata,
    save_safetensors,
)
from sr_desk_plugins.srdiff.config import SRDiffConfig
from sr_desk_plugins.srdiff.network import SRDiffModel

SMALL = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=16, dim_mults=(1, 2, 2, 2))


def _schedule_buffers(timesteps: int = 100, s: float = 0.008) -> dict[str, torch.Tensor]:
    """The 12 official buffers (spec 3.2, 6.1): float64 math, stored as float32."""
    u = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos(((u / timesteps) + s) / (1 + s) * math.pi / 2) ** 2
    abar_raw = f / f[0]
    betas = torch.clip(1 - abar_raw[1:] / abar_raw[:-1], 0, 0.999)
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat((torch.ones(1, dtype=torch.float64), abar[:-1]))
    var = betas * (1 - abar_prev) / (1 - abar)
    out = {
        "betas": betas,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": abar_prev,
        "sqrt_alphas_cumprod": abar.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - abar).log(),
        "sqrt_recip_alphas_cumprod": (1 / abar).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / abar - 1).sqrt(),
        "posterior_variance": var,
        "posterior_log_variance_clipped": var.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * abar_prev.sqrt() / (1 - abar),
        "posterior_mean_coef2": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
    }
    assert set(out) == set(SCHEDULE_BUFFERS)
    return {k: v.float() for k, v in out.items()}


def _small_model(seed: int = 0) -> SRDiffModel:
    torch.manual_seed(seed)
    return SRDiffModel(SMALL).eval()


def _official_dict(model: SRDiffModel, buffers: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """What the official trainer writes: model + schedule buffers + Adam state of the U-Net."""
    adam = torch.optim.Adam(model.denoise_fn.parameters(), lr=2e-4)
    with torch.no_grad():
        before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = model(torch.randn(1, 3, 16, 16), 3, model.condition(torch.zeros(1, 3, 4, 4))).abs().mean()
    loss.backward()
    adam.step()
    model.load_state_dict(before)  # keep the weights the test compares against
    return {
        "global_step": 1234,
        "optimizer_states": [adam.state_dict()],
        "state_dict": {"model": {**model.state_dict(), **(buffers if buffers is not None else _schedule_buffers())}},
    }


def _write_legacy(path: Path, obj: object) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def _outputs(model: SRDiffModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    lr = torch.rand(1, 3, 4, 6, generator=gen) * 2 - 1
    x = torch.randn(1, 3, 16, 24, generator=gen)
    with torch.no_grad():
        cond = model.condition(lr)
        return model(x, 42, cond), cond, model.rrdb.upscale(lr)


def _assert_one_line(exc: pytest.ExceptionInfo[CheckpointError]) -> None:
    assert "\n" not in str(exc.value)
    assert isinstance(exc.value, SrDeskError)


@pytest.fixture
def legacy_ckpt(tmp_path: Path) -> tuple[Path, SRDiffModel]:
    model = _small_model()
    path = _write_legacy(tmp_path / "model_ckpt_steps_1234.ckpt", _official_dict(model))
    return path, model


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_official_legacy_checkpoint_round_trip(legacy_ckpt: tuple[Path, SRDiffModel]) -> None:
    path, original = legacy_ckpt
    with open(path, "rb") as f:
        assert f.read(2) != b"PK"  # really the legacy (non-zip) format
    model, config, metadata = load_model(path, expect_scale=4)
    assert config == SMALL
    assert metadata["global_step"] == "1234"
    assert not model.training
    for ours, theirs in zip(_outputs(model), _outputs(original), strict=True):
        assert torch.equal(ours, theirs)


def test_load_state_dict_file_drops_schedule_buffers(legacy_ckpt: tuple[Path, SRDiffModel]) -> None:
    path, original = legacy_ckpt
    sd = load_state_dict_file(path)
    assert set(sd) == set(original.state_dict())
    assert not set(SCHEDULE_BUFFERS) & set(sd)


def test_bare_state_dict_loads(tmp_path: Path) -> None:
    original = _small_model(3)
    path = tmp_path / "bare.pt"
    torch.save(original.state_dict(), path)
    model, _, _ = load_model(path)
    assert torch.equal(_outputs(model)[0], _outputs(original)[0])


def test_convert_official_to_safetensors(legacy_ckpt: tuple[Path, SRDiffModel], tmp_path: Path) -> None:
    src, original = legacy_ckpt
    dst = tmp_path / "srdiff-small.safetensors"
    config = convert_official(src, dst, metadata={"training_data": "test pictures"})
    assert config == SMALL
    raw = load_file(str(dst))
    assert set(raw) == set(original.state_dict())
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in raw.values())
    meta = read_metadata(dst)
    assert meta["format"] == "sr-desk" and meta["architecture"] == "srdiff" and meta["scale"] == "4"
    assert SRDiffConfig.from_json(meta["config"]) == SMALL
    assert meta["training_data"] == "test pictures" and meta["global_step"] == "1234" and "version" in meta
    model, config2, meta2 = load_model(dst)
    assert config2 == SMALL and meta2 == meta
    for ours, theirs in zip(_outputs(model), _outputs(original), strict=True):
        assert torch.equal(ours, theirs)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_fp16_file_loads_close(tmp_path: Path) -> None:
    original = _small_model(4)
    path = tmp_path / "half.safetensors"
    save_safetensors(original, SMALL, path, metadata={"training_data": "none"}, dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in load_file(str(path)).values())
    assert read_metadata(path)["dtype"] == "float16"
    model, _, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for ours, theirs in zip(_outputs(model), _outputs(original), strict=True):
        torch.testing.assert_close(ours, theirs, atol=2e-2, rtol=2e-2)


def test_safetensors_detected_by_content_not_name(tmp_path: Path) -> None:
    original = _small_model(5)
    path = tmp_path / "weights.ckpt"
    save_safetensors(original, SMALL, path)
    model, _, meta = load_model(path)
    assert meta["format"] == "sr-desk"
    assert torch.equal(_outputs(model)[0], _outputs(original)[0])


def test_encoder_only_file(tmp_path: Path) -> None:
    original = _small_model(6)
    path = tmp_path / "encoder.safetensors"
    save_safetensors(original.rrdb, SMALL, path, metadata={"training_data": "none"}, architecture="srdiff-encoder")
    meta = read_metadata(path)
    assert meta["architecture"] == "srdiff-encoder"
    assert all(k.startswith("rrdb.") for k in load_file(str(path)))
    encoder, config, _ = load_encoder(path, expect_scale=4)
    assert config.same_encoder(SMALL)
    lr = torch.rand(1, 3, 5, 7) * 2 - 1
    with torch.no_grad():
        assert torch.equal(encoder.upscale(lr), original.rrdb.upscale(lr))
    with pytest.raises(CheckpointError, match="only the SRDiff encoder"):
        load_model(path)
    # A full model also serves the fast method.
    full = tmp_path / "full.safetensors"
    save_safetensors(original, SMALL, full)
    encoder2, _, _ = load_encoder(full)
    with torch.no_grad():
        assert torch.equal(encoder2.upscale(lr), original.rrdb.upscale(lr))


def test_save_refuses_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    other = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=3, rrdb_gc=4, unet_dim=16, dim_mults=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="missing"):
        save_safetensors(_small_model(), other, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(ValueError, match="architecture"):
        save_safetensors(_small_model(), SMALL, tmp_path / "x.safetensors", architecture="srdiff-encoder")


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class _WritesFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [_RunsShell, _WritesFile])
@pytest.mark.parametrize("writer", ["legacy", "zip", "pickle"])
def test_malicious_pickle_is_refused(tmp_path: Path, payload: type, writer: str) -> None:
    marker = tmp_path / "MARKER"
    evil = {"state_dict": {"model": {"rrdb.conv_first.weight": payload(marker)}}}
    path = tmp_path / "evil.ckpt"
    if writer == "legacy":
        torch.save(evil, path, _use_new_zipfile_serialization=False)
    elif writer == "zip":
        torch.save(evil, path)
    else:
        path.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(CheckpointError, match="would run code") as exc:
        load_model(path)
    _assert_one_line(exc)
    assert "evil.ckpt" in str(exc.value)
    assert not marker.exists()


def test_newer_pickle_protocol_is_refused_too(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil4.pkl"
    path.write_bytes(pickle.dumps({"x": _RunsShell(marker)}, protocol=4))
    with pytest.raises(CheckpointError, match="may run code"):
        load_state_dict_file(path)
    assert not marker.exists()


def _bare(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "bad.pt") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    sd = dict(_small_model().state_dict())
    del sd["denoise_fn.ups.1.1.block2.block.1.weight"]
    del sd["rrdb.RRDB_trunk.1.RDB2.conv3.bias"]
    with pytest.raises(CheckpointError, match="2 missing keys") as exc:
        load_model(_bare(tmp_path, sd))
    assert "rrdb.RRDB_trunk.1.RDB2.conv3.bias" in str(exc.value)
    assert "random weights" in str(exc.value)
    _assert_one_line(exc)


def test_missing_key_needed_for_inference(tmp_path: Path) -> None:
    sd = dict(_small_model().state_dict())
    del sd["rrdb.conv_first.weight"]
    with pytest.raises(CheckpointError, match=r"missing rrdb\.conv_first\.weight"):
        load_model(_bare(tmp_path, sd))


def test_unexpected_keys_are_listed(tmp_path: Path) -> None:
    sd = dict(_small_model().state_dict())
    sd["denoise_fn.mid_attn.fn.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \(denoise_fn\.mid_attn\.fn\.weight\)") as exc:
        load_model(_bare(tmp_path, sd))
    _assert_one_line(exc)


def test_wrong_shapes_are_listed(tmp_path: Path) -> None:
    sd = dict(_small_model().state_dict())
    sd["rrdb.RRDB_trunk.0.RDB2.conv4.weight"] = torch.zeros(4, 7, 3, 3)
    with pytest.raises(CheckpointError, match="1 keys with the wrong shape") as exc:
        load_model(_bare(tmp_path, sd))
    assert "rrdb.RRDB_trunk.0.RDB2.conv4.weight (4, 7, 3, 3) vs (4, 20, 3, 3)" in str(exc.value)


def test_schedule_that_does_not_match_is_refused(tmp_path: Path) -> None:
    buffers = _schedule_buffers()
    buffers["betas"] = torch.linspace(1e-4, 0.02, 100)  # a linear schedule
    path = _write_legacy(tmp_path / "linear.ckpt", _official_dict(_small_model(), buffers))
    with pytest.raises(CheckpointError, match="another noise schedule") as exc:
        load_model(path)
    _assert_one_line(exc)


def test_derived_schedule_buffer_that_does_not_match_is_refused(tmp_path: Path) -> None:
    buffers = _schedule_buffers()
    buffers["posterior_mean_coef2"] = buffers["posterior_mean_coef2"] * 1.01
    path = _write_legacy(tmp_path / "odd.ckpt", _official_dict(_small_model(), buffers))
    with pytest.raises(CheckpointError, match="posterior_mean_coef2"):
        load_state_dict_file(path)


def test_other_timesteps_follow_the_stored_schedule(tmp_path: Path) -> None:
    path = _write_legacy(tmp_path / "t50.ckpt", _official_dict(_small_model(), _schedule_buffers(50)))
    _, config, _ = load_model(path)
    assert config.timesteps == 50


@pytest.mark.parametrize("content", [b"hello world\n", b"", b"\x00" * 64, b"PK\x03\x04garbage"])
def test_file_that_is_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    _assert_one_line(exc)
    assert "notes.ckpt" in str(exc.value)


def test_damaged_safetensors_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="broken.safetensors") as exc:
        load_model(path)
    _assert_one_line(exc)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nowhere.ckpt")


def test_non_tensor_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"state_dict": {"model": {"rrdb.conv_first.weight": [1, 2, 3]}}}, path)
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        load_model(path)


def test_metadata_config_must_match_the_tensors(tmp_path: Path) -> None:
    sd = {k: v.contiguous() for k, v in _small_model().state_dict().items()}
    lying = SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=16, dim_mults=(1, 2, 2, 4))
    path = tmp_path / "lying.safetensors"
    save_file(sd, str(path), metadata={"format": "sr-desk", "architecture": "srdiff", "config": lying.to_json()})
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_model(path)


def test_expect_scale(legacy_ckpt: tuple[Path, SRDiffModel]) -> None:
    path, _ = legacy_ckpt
    with pytest.raises(CheckpointError, match="is a 4x model but 8x was asked for"):
        load_model(path, expect_scale=8)


@pytest.mark.parametrize(("field", "value"), [("timesteps", 10_000_000), ("timesteps", 4e9), ("rrdb_nb", 1000)])
def test_config_values_in_the_metadata_are_checked_against_sane_bounds(tmp_path: Path, field, value) -> None:
    """Issue 18: a timesteps of 1e7 in the header changed the result; 4e9 tried to allocate many GB."""
    import json

    sd = {k: v.contiguous() for k, v in _small_model().state_dict().items()}
    config = json.loads(SRDiffConfig(scale=4, rrdb_nf=8, rrdb_nb=2, rrdb_gc=4, unet_dim=8,
                                     dim_mults=(1, 2, 2, 2)).to_json()) | {field: value}
    path = tmp_path / "hostile.safetensors"
    save_file(sd, str(path), metadata={"format": "sr-desk", "architecture": "srdiff", "config": json.dumps(config)})
    with pytest.raises(CheckpointError, match=f"unreadable config.*{field}"):
        load_model(path)
