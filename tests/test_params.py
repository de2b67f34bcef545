import math

import pytest

from sr_desk.api import (
    BoolParam,
    Capabilities,
    ChoiceParam,
    DeclarationError,
    FloatParam,
    ImageInput,
    ImageParam,
    IntParam,
    Method,
    ParamError,
    ParamSet,
    SeedParam,
    SizeParam,
    Task,
    WeightFile,
)
import numpy as np


def test_int_param_parses_validates_and_reports_range():
    p = IntParam(name="steps", default=20, minimum=1, maximum=100, help="Denoising steps")
    assert p.label == "Steps"
    assert p.parse(" 42 ") == 42
    with pytest.raises(ParamError, match=r"between 1 and 100 \(got 500\)"):
        p.parse("500")
    with pytest.raises(ParamError, match="whole number"):
        p.parse("4.5")
    with pytest.raises(ParamError, match="whole number"):
        p.validate(True)


def test_float_param_rejects_nan_and_out_of_range():
    p = FloatParam(name="strength", default=0.5, minimum=0.0, maximum=1.0)
    assert p.parse("0.25") == 0.25
    for text in ("nan", "inf", "1.5", "x"):
        with pytest.raises(ParamError):
            p.parse(text)


def test_bool_choice_seed_size_params():
    assert BoolParam(name="lock").parse("Yes") is True
    assert BoolParam(name="lock").parse("off") is False
    with pytest.raises(ParamError):
        BoolParam(name="lock").parse("maybe")
    sampler = ChoiceParam(name="sampler", choices=("ddim", "dpm++2m"))
    assert sampler.default == "ddim"
    assert sampler.parse("dpm++2m") == "dpm++2m"
    with pytest.raises(ParamError, match="one of ddim, dpm\\+\\+2m"):
        sampler.parse("euler")
    seed = SeedParam(name="seed_b")
    assert seed.parse("random") is None
    assert seed.parse("7") == 7
    with pytest.raises(ParamError):
        seed.parse("-1")
    size = SizeParam(name="target")
    assert size.parse("1920x1080") == (1920, 1080)
    with pytest.raises(ParamError):
        size.parse("1920 by 1080")
    with pytest.raises(ParamError):
        size.parse("0x10")


def test_image_param_needs_an_image():
    donor = ImageParam(name="donor", help="Face to take content from")
    with pytest.raises(ParamError, match="needs an image"):
        donor.validate(None)
    image = ImageInput(np.zeros((4, 5, 3), np.float32))
    assert donor.validate(image) is image
    assert image.size == (5, 4)
    assert donor.parse(" face.png ") == "face.png"


@pytest.mark.parametrize(
    "make",
    [
        lambda: IntParam(name="steps", default=0, minimum=1, maximum=10),
        lambda: IntParam(name="steps", default=5, minimum=10, maximum=1),
        lambda: FloatParam(name="x", default=0.0, minimum=0.0, maximum=math.inf),
        lambda: ChoiceParam(name="mode", choices=()),
        lambda: ChoiceParam(name="mode", choices=("a", "a")),
        lambda: ChoiceParam(name="mode", choices=("a",), default="b"),
        lambda: IntParam(name="Bad Name"),
        lambda: ParamSet((IntParam(name="a"), IntParam(name="a"))),
    ],
)
def test_bad_declarations_are_refused(make):
    with pytest.raises(DeclarationError):
        make()


def test_param_set_resolves_defaults_and_assignments():
    params = ParamSet((IntParam(name="steps", default=20, minimum=1, maximum=100), BoolParam(name="lock")))
    assert params.resolve({}) == {"steps": 20, "lock": False}
    given = params.parse_assignments(["steps=8", "lock=true"])
    assert params.resolve(given) == {"steps": 8, "lock": True}
    with pytest.raises(ParamError, match="unknown parameter 'stpes'.*steps, lock"):
        params.parse_assignments(["stpes=8"])
    with pytest.raises(ParamError, match="NAME=VALUE"):
        params.parse_assignments(["steps"])
    with pytest.raises(ParamError, match="unknown parameter"):
        params.resolve({"nope": 1})


def _run(request, context):
    return request.image


def test_method_declaration_checks():
    m = Method(id="demo", name="Demo", task="upscale", run=_run, params=[IntParam(name="n", default=1)])
    assert m.task is Task.UPSCALE
    assert isinstance(m.params, ParamSet)
    data = m.to_json()
    assert data["id"] == "demo" and data["task"] == "upscale" and data["params"][0]["name"] == "n"
    assert data["params"][0]["minimum"] == 0
    for bad in (
        dict(id="Demo"),
        dict(id="x"),
        dict(task="paint"),
        dict(name=""),
        dict(run="not callable"),
    ):
        kwargs = dict(id="demo", name="Demo", task="upscale", run=_run) | bad
        with pytest.raises(DeclarationError):
            Method(**kwargs)


def test_capabilities_pick_the_next_native_scale_up():
    caps = Capabilities(scales=(4, 2, 8))
    assert caps.scales == (2, 4, 8)
    assert caps.default_scale == 4.0
    assert caps.native_scale_for(2) == 2
    assert caps.native_scale_for(2.5) == 4
    assert caps.native_scale_for(16) == 8
    assert Capabilities().native_scale_for(2.5) == 2.5
    with pytest.raises(DeclarationError):
        Capabilities(scales=(0,))
    with pytest.raises(DeclarationError):
        WeightFile("../evil.safetensors")
    with pytest.raises(DeclarationError):
        WeightFile("ok.safetensors", sha256="abc")
