"""Where envbuilder's data, environments and caches live.

- built-in data (recipes/, extensions/, patches/): inside the installed package
  (envbuilder/data/), or the repository root when running from a checkout;
- environments: $ENVBUILDER_HOME/envs/<recipe> (ENVBUILDER_HOME defaults to
  $XDG_DATA_HOME/envbuilder, i.e. ~/.local/share/envbuilder); `--prefix` overrides;
- caches (git mirrors, built wheels, toolkits): $ENVBUILDER_CACHE, default
  $XDG_CACHE_HOME/envbuilder (~/.cache/envbuilder).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_data_root() -> Path:
    installed = PACKAGE_DIR / "data"
    if (installed / "recipes").is_dir():
        return installed
    return PACKAGE_DIR.parent  # a checkout: recipes/ sits beside envbuilder/


def home() -> Path:
    if os.environ.get("ENVBUILDER_HOME"):
        return Path(os.environ["ENVBUILDER_HOME"]).expanduser().absolute()  # a relative one means here
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "envbuilder"


def cache_dir() -> Path:
    if os.environ.get("ENVBUILDER_CACHE"):
        return Path(os.environ["ENVBUILDER_CACHE"]).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "envbuilder"


def default_prefix(recipe: str) -> Path:
    return home() / "envs" / recipe


def probes_dir() -> Path:
    return PACKAGE_DIR / "probes"


def probe_script(name: str) -> Path:
    """The kernel probe `name`. Files are called probe_<name>.py because Python puts a script's
    folder first on sys.path: a probes/simple_knn.py would import itself as `simple_knn`."""
    return probes_dir() / f"probe_{name}.py"


def known_probes() -> list[str]:
    return sorted(p.stem.removeprefix("probe_") for p in probes_dir().glob("probe_*.py"))
