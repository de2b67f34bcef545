"""Diff-SR reads a diffusers folder strictly: every weight and no other, never a pickle, bounded configs, quietly."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from sr_desk.cli import main
from sr_desk.core.errors import SrDeskError
from tests.test_diffsr import write_diffusers_folder

diffusers = pytest.importorskip("diffusers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from sr_desk_plugins.diffsr.diffusers_prior import load_diffusers_prior  # noqa: E402

WEIGHTS = "diffusion_pytorch_model.safetensors"
INDEX = WEIGHTS + ".index.json"


@pytest.fixture
def folder(tmp_path):
    return write_diffusers_folder(tmp_path / "prior")


def change_weights(folder: pathlib.Path, change) -> None:
    tensors = safetensors_torch.load_file(folder / WEIGHTS)
    change(tensors)
    safetensors_torch.save_file(tensors, folder / WEIGHTS)


def change_json(path: pathlib.Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def refusal(folder: pathlib.Path) -> str:
    """The one line ``load_diffusers_prior`` refuses ``folder`` with (the message itself, before any joining)."""
    with pytest.raises(SrDeskError) as info:
        load_diffusers_prior(folder, "cpu")
    message = info.value.args[0]
    assert "\n" not in message
    return message


def shard(folder: pathlib.Path) -> dict[str, str]:
    """Write the folder's weights again as two shards and an index; the weight map."""
    model = diffusers.UNet2DModel.from_config(json.loads((folder / "config.json").read_text()))
    model.load_state_dict(safetensors_torch.load_file(folder / WEIGHTS))
    (folder / WEIGHTS).unlink()
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="100KB")
    weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
    assert len(set(weight_map.values())) == 2
    return weight_map


def write_index(folder: pathlib.Path, weight_map: dict[str, str]) -> None:
    (folder / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


# -- every weight and no other ----------------------------------------------------------------------------------


def test_a_missing_weight_is_refused_by_name(folder):
    change_weights(folder, lambda t: t.pop("conv_out.bias"))
    message = refusal(folder)
    assert "missing" in message and "conv_out.bias" in message


def test_an_unexpected_weight_is_refused_by_name(folder):
    change_weights(folder, lambda t: t.update({"conv_extra.weight": torch.zeros(3)}))
    message = refusal(folder)
    assert "unexpected" in message and "conv_extra.weight" in message


def test_a_weight_of_the_wrong_shape_is_refused_by_name(folder):
    change_weights(folder, lambda t: t.update({"conv_out.bias": torch.zeros(4)}))
    message = refusal(folder)
    assert "conv_out.bias" in message and "shape" in message


def test_a_non_float_weight_is_refused(folder):
    change_weights(folder, lambda t: t.update({"conv_out.bias": torch.zeros(3, dtype=torch.int64)}))
    assert "conv_out.bias" in refusal(folder)


def test_the_loaded_weights_are_the_file_s_and_half_precision_reads_as_float32(folder, tmp_path):
    reference = diffusers.UNet2DModel.from_config(json.loads((folder / "config.json").read_text()))
    reference.load_state_dict(safetensors_torch.load_file(folder / WEIGHTS))
    prior = load_diffusers_prior(folder, "cpu")
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(prior.model(x, 300).sample, reference(x, 300).sample)
    assert not any(p.requires_grad for p in prior.model.parameters())

    change_weights(folder, lambda t: t.update({k: v.half() for k, v in t.items()}))
    half = load_diffusers_prior(folder, "cpu")
    assert {p.dtype for p in half.model.parameters()} == {torch.float32}
    assert torch.allclose(half.model(x, 300).sample, reference(x, 300).sample, atol=1e-2)


# -- shards and pickles ---------------------------------------------------------------------------------------


def test_sharded_weights_load_in_a_pipeline_layout(tmp_path):
    pipeline = tmp_path / "pipeline"
    write_diffusers_folder(pipeline / "unet", prediction_type="v_prediction")
    (pipeline / "scheduler").mkdir()
    (pipeline / "unet" / "scheduler_config.json").rename(pipeline / "scheduler" / "scheduler_config.json")
    whole = load_diffusers_prior(pipeline, "cpu")
    shard(pipeline / "unet")
    sharded = load_diffusers_prior(pipeline, "cpu")
    x = torch.randn(1, 3, 16, 16)
    assert sharded.prediction_type == "v_prediction"
    assert torch.equal(sharded.model(x, 10).sample, whole.model(x, 10).sample)


def test_a_shard_missing_from_the_index_leaves_weights_missing(folder):
    weight_map = shard(folder)
    second = sorted(set(weight_map.values()))[1]
    write_index(folder, {k: v for k, v in weight_map.items() if v != second})
    assert "missing" in refusal(folder)


def test_an_index_that_puts_a_weight_in_the_wrong_shard_is_refused(folder):
    weight_map = shard(folder)
    first, second = sorted(set(weight_map.values()))
    moved = next(k for k, v in weight_map.items() if v == first)
    write_index(folder, {**weight_map, moved: second})
    assert moved in refusal(folder)


@pytest.mark.parametrize("where", ["../outside.safetensors", "ABSOLUTE", "sub/inner.safetensors", "absent.safetensors",
                                   "weights.bin", "..", ""])
def test_an_index_may_name_only_safetensors_files_inside_the_folder(folder, where):
    weight_map = shard(folder)
    first = sorted(set(weight_map.values()))[0]
    outside = folder.parent / "outside.safetensors"
    target = str(outside) if where == "ABSOLUTE" else where
    (folder / "sub").mkdir()
    for copy in (outside, folder / "sub" / "inner.safetensors"):  # the same tensors, so only the place is wrong
        copy.write_bytes((folder / first).read_bytes())
    torch.save(safetensors_torch.load_file(folder / first), folder / "weights.bin")  # loads with weights_only too
    write_index(folder, {k: (target if v == first else v) for k, v in weight_map.items()})
    message = refusal(folder)
    assert "index" in message


@pytest.mark.parametrize("text", ["not json", "[]", '{"weight_map": []}', '{"weight_map": {"conv_in.bias": 3}}'])
def test_an_unreadable_index_is_refused(folder, text):
    shard(folder)
    (folder / INDEX).write_text(text)
    assert "index" in refusal(folder)


class WritesMarker:
    """Unpickled, this touches ``marker``: a pickle that runs code."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_the_marker_pickle_runs_code_when_unpickled(tmp_path):
    """The check below can fail: unpickling the test's pickle does write its marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps({"conv_in.weight": WritesMarker(marker)}))
    assert marker.exists()


@pytest.mark.parametrize("with_safetensors", [False, True])
def test_a_pickle_named_in_an_index_is_refused_and_never_unpickled(folder, with_safetensors):
    marker = folder.parent / "pickle-ran"
    weight_map = shard(folder)
    if not with_safetensors:
        for name in set(weight_map.values()):
            (folder / name).unlink()
    (folder / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({k: WritesMarker(marker) for k in weight_map}))
    write_index(folder, {k: "diffusion_pytorch_model.bin" for k in weight_map})
    message = refusal(folder)
    assert ".bin" in message
    assert not marker.exists()


def test_a_pickle_beside_safetensors_is_never_read(folder):
    marker = folder.parent / "pickle-ran"
    (folder / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({"conv_in.weight": WritesMarker(marker)}))
    load_diffusers_prior(folder, "cpu")
    assert not marker.exists()


# -- bounded configs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("layers_per_block", 9), ("layers_per_block", 0), ("layers_per_block", True), ("layers_per_block", "1"),
    ("block_out_channels", [8] * 9), ("block_out_channels", [8, 4096]), ("block_out_channels", [8, 0]),
    ("block_out_channels", [8, 18]), ("block_out_channels", "816"), ("block_out_channels", [8, 16.0]),
    ("norm_num_groups", 0), ("norm_num_groups", 3), ("attn_norm_num_groups", 5),
    ("down_block_types", ["DownBlock2D", "CrossAttnDownBlock2D"]), ("up_block_types", ["UpBlock2D"]),
    ("down_block_types", "DownBlock2D"), ("mid_block_type", "UNetMidBlock2DCrossAttn"),
    ("in_channels", 4), ("out_channels", 1), ("sample_size", 10**9), ("sample_size", [16, 16, 16]),
    ("attention_head_dim", 0), ("attention_head_dim", 64), ("time_embedding_type", "sinusoid"),
    ("time_embedding_dim", 10**6), ("freq_shift", 10**6), ("flip_sin_to_cos", "yes"),
    ("norm_eps", float("nan")), ("norm_eps", 0), ("dropout", 2.0), ("act_fn", "exec"),
    ("mid_block_scale_factor", float("inf")), ("downsample_padding", 7), ("downsample_type", "pool"),
    ("upsample_type", "pixelshuffle"), ("resnet_time_scale_shift", "other"), ("add_attention", 1),
    ("num_train_timesteps", 10**9), ("center_input_sample", None), ("_class_name", "UNet2DConditionModel"),
])
def test_a_config_value_out_of_bounds_is_refused_by_name(folder, field, value):
    change_json(folder / "config.json", **{field: value})
    assert field in refusal(folder)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "HUGE"])
def test_an_unreadable_config_is_refused(folder, text):
    (folder / "config.json").write_text('{"padding": "' + "x" * 2**21 + '"}' if text == "HUGE" else text)
    assert "config.json" in refusal(folder)


def test_a_class_conditional_model_is_still_refused(folder):
    change_json(folder / "config.json", class_embed_type="timestep")
    assert "class-conditional" in refusal(folder)


def test_a_network_too_large_is_refused_before_it_is_built(folder):
    """Every field is in bounds, together they are billions of weights: refused from the config, nothing allocated."""
    change_json(folder / "config.json", block_out_channels=[2048] * 6, layers_per_block=8, norm_num_groups=32,
                down_block_types=["AttnDownBlock2D"] * 6, up_block_types=["AttnUpBlock2D"] * 6)
    assert "parameters" in refusal(folder)


@pytest.mark.parametrize("field, value", [
    ("num_train_timesteps", 200_000), ("num_train_timesteps", 0), ("num_train_timesteps", "1000"),
    ("num_train_timesteps", 1000.5), ("beta_start", float("nan")), ("beta_end", 1.5), ("beta_start", -0.1),
    ("beta_end", "0.02"), ("trained_betas", ["a"]), ("trained_betas", [0.5] * 200_000), ("trained_betas", [1.5]),
    ("trained_betas", "0.1"), ("beta_schedule", "exotic"), ("prediction_type", "x"),
])
def test_a_scheduler_value_out_of_bounds_is_refused_by_name(folder, field, value):
    change_json(folder / "scheduler_config.json", **{field: value})
    assert field in refusal(folder)


def test_an_unreadable_scheduler_config_is_refused(folder):
    (folder / "scheduler_config.json").write_text("[]")
    assert "scheduler config" in refusal(folder)


# -- pipes ------------------------------------------------------------------------------------------------------


def refusal_without_opening(folder: pathlib.Path, fifo: pathlib.Path) -> tuple[str, bool]:
    """``refusal(folder)``, and whether the loader opened ``fifo`` on the way.

    Opening a pipe to read waits for a writer; a shell opens the write end
    after a pause, so a loader that waits on the pipe comes back (and the
    shell has finished) where it would otherwise hang the test for ever. It
    runs apart from Python, so a loader that blocks holding the GIL is
    released too.
    """
    writer = subprocess.Popen(["sh", "-c", 'sleep 10; : > "$1"', "sh", str(fifo)])
    try:
        message = refusal(folder)
        return message, writer.poll() is not None
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("name", ["config.json", WEIGHTS, "scheduler_config.json", INDEX])
def test_a_pipe_in_the_folder_is_refused_not_waited_on(folder, name):
    if name == INDEX:
        shard(folder)
    (folder / name).unlink()
    os.mkfifo(folder / name)
    message, opened = refusal_without_opening(folder, folder / name)
    assert not opened, f"the loader opened the pipe {name}"
    assert name in message and "plain file" in message


# -- quiet ------------------------------------------------------------------------------------------------------


def test_loading_prints_nothing(folder, capfd):
    load_diffusers_prior(folder, "cpu")
    change_weights(folder, lambda t: t.pop("conv_out.bias"))
    refusal(folder)
    assert capfd.readouterr().err == ""


def test_the_cli_upscales_quietly_and_refuses_a_missing_weight_in_one_line(folder, tmp_path, capfd):
    image = tmp_path / "in.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    out = tmp_path / "out.png"
    command = ["upscale", str(image), "-o", str(out), "-m", "diffsr", "--weights", str(folder), "--scale", "2",
               "--param", "steps=2", "--seed", "1", "--precision", "float32"]
    assert main(command) == 0 and out.is_file()
    err = capfd.readouterr().err
    assert "accelerate" not in err and "diffusers" not in err
    out.unlink()
    change_weights(folder, lambda t: t.pop("conv_out.bias"))
    assert main(command) != 0 and not out.exists()
    err = capfd.readouterr().err.strip()
    assert "conv_out.bias" in err and len(err.splitlines()) == 1
