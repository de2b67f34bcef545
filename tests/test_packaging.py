"""The installable package holds every module and resource of the source tree."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *relative)))
    assert found == listed


def test_the_bundled_sample_is_a_real_image():
    from sr_desk.core.imageio import load_image
    from sr_desk_resources import SAMPLE_IMAGE

    image = load_image(SAMPLE_IMAGE)
    assert image.size == (256, 192) and image.alpha is None
