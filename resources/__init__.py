"""Files shipped with sr-desk: sample images, icons, launcher files, built-in weights.

Installed as the package ``sr_desk_resources`` so that a wheel, an editable
install and a frozen app all find them the same way.
"""

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = RESOURCES_DIR / "samples"
WEIGHTS_DIR = RESOURCES_DIR / "weights"
ICONS_DIR = RESOURCES_DIR / "icons"
SAMPLE_IMAGE = SAMPLES_DIR / "sample.png"
