import json

from sr_desk.core.paths import app_paths
from sr_desk.core.settings import Settings


def test_settings_round_trip_under_sr_desk_home(private_home):
    assert app_paths().settings_file.is_relative_to(private_home)
    settings = Settings.load()
    assert settings.device == "auto" and settings.disabled_plugins == []
    settings.device = "cpu"
    settings.disabled_plugins.append("nearest")
    settings.save()
    again = Settings.load()
    assert again.device == "cpu" and again.disabled_plugins == ["nearest"]
    assert again.resolved_models_dir() == private_home / "data" / "models"


def test_unknown_keys_survive_and_corrupt_files_fall_back_to_defaults(private_home):
    path = app_paths().settings_file
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"device": "cpu", "from_a_newer_version": [1, 2]}))
    settings = Settings.load()
    settings.save()
    assert json.loads(path.read_text())["from_a_newer_version"] == [1, 2]
    path.write_text("{not json")
    assert Settings.load().device == "auto"
    path.write_text(json.dumps({"device": "quantum", "tile_size": 256}))
    loaded = Settings.load()
    assert loaded.device == "auto" and loaded.tile_size == 256
