"""The JSON config base every method's weights header uses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sr_desk.diffusion.json_config import JsonConfig


@dataclass(frozen=True)
class Tiny(JsonConfig):
    METHOD = "Tiny"

    width: int = 8
    mults: tuple[int, ...] = (1, 2)


def test_a_config_round_trips_through_its_json():
    assert Tiny.from_json(Tiny(width=16).to_json()) == Tiny(width=16, mults=[1, 2])
    assert Tiny(width=16).to_json() == '{"mults": [1, 2], "width": 16}'  # key-sorted: equal configs, equal text


@pytest.mark.parametrize(("text", "message"), [
    ('{"width": 8, "depth": 3}', "unknown Tiny config fields: depth"),
    ("[1, 2]", "a Tiny config must be a JSON object"),
])
def test_what_would_build_another_network_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        Tiny.from_json(text)
