"""Choosing the device and its precision (sr_desk.engine.devices)."""

import pytest

from sr_desk.engine import devices
from sr_desk.engine.devices import DeviceError, resolve_device


@pytest.mark.parametrize("native, precision, expected", [
    (True, "auto", "bfloat16"),  # fast bf16 instructions: the quality bench showed bf16 holds
    (False, "auto", "float32"),  # emulated bf16 would be slower, not faster
    (True, "float32", "float32"),
    (False, "bfloat16", "bfloat16"),  # asked for: given, even where slow
])
def test_auto_precision_on_the_cpu_follows_native_bf16(monkeypatch, native, precision, expected):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    device = resolve_device("cpu", precision)
    assert device.kind == "cpu" and device.dtype == expected
    assert ("bf16" in device.name) == (expected == "bfloat16")


def test_unknown_choices_are_refused():
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_device("cpu", "float8")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
