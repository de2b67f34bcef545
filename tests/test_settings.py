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


def test_disabled_reasons_are_kept_for_disabled_plugins_only(tmp_path):
    settings = Settings()
    settings.disable_plugin("b", "it hung")
    settings.disable_plugin("a")
    assert settings.disabled_plugins == ["a", "b"] and settings.disabled_reasons == {"b": "it hung"}
    settings.save(tmp_path / "s.json")
    assert Settings.load(tmp_path / "s.json").disabled_reasons == {"b": "it hung"}
    settings.set_disabled_plugins(["a"])
    assert settings.disabled_reasons == {}
    settings.disable_plugin("b", "it hung")
    assert settings.enable_plugin("b") and not settings.enable_plugin("b")
    assert settings.disabled_reasons == {}


def test_unreadable_disabled_reasons_are_dropped(tmp_path):
    (tmp_path / "s.json").write_text('{"disabled_plugins": ["x"], "disabled_reasons": ["not", "a", "map"]}')
    loaded = Settings.load(tmp_path / "s.json")
    assert loaded.disabled_plugins == ["x"] and loaded.disabled_reasons == {}
