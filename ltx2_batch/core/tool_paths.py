"""Where the tool finds its own files, wherever it is installed and wherever it is launched from.

Owns: the bundled Hydra configs and example manifests (package data, so a wheel carries them), the list of
folders a manifest name is looked up in (the launch directory first, then the bundled examples), and the
models home, the one place weights are looked up and the tiny set is built when `model.root` is not set,
and the state home (the record of a local Ray started for warm pools).
Must not: read config files, import Hydra, torch or Ray, or create folders (callers decide when to write).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ltx2_batch/, this module lives in ltx2_batch/core/
CONF_DIR = PACKAGE_DIR / "conf"
BUNDLED_MANIFESTS = PACKAGE_DIR / "manifests"
MODELS_ENV = "LTX2_BATCH_MODELS"


def manifest_dirs(launch_dir: Path) -> tuple[Path, ...]:
    """Folders a bare manifest name (`manifest=demo`) is looked up in, in order: a user's own `demo.yaml`
    (in the launch directory or its `manifests/`) wins over the bundled example of the same name."""
    launch = Path(launch_dir)
    return (launch, launch / "manifests", BUNDLED_MANIFESTS)


def source_checkout() -> Path | None:
    """The repository root when the package runs from a source checkout (an editable install or
    PYTHONPATH), recognised by the checkout's `models/` folder next to its `pyproject.toml`; None when
    installed from a wheel."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir():
        return root
    return None


def models_home(environ: dict[str, str] | None = None) -> Path:
    """The default models root: `$LTX2_BATCH_MODELS`; else a checkout's own `models/` (so `make demo`
    and the tests keep one tiny set in the repository); else the per-user cache
    (`$XDG_CACHE_HOME/ltx2_batch/models`, by default `~/.cache/ltx2_batch/models`). Never the launch
    directory: the same command finds the same weights from anywhere."""
    env = os.environ if environ is None else environ
    if env.get(MODELS_ENV):
        return Path(env[MODELS_ENV]).expanduser().absolute()
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "models"
    cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return (cache / "ltx2_batch" / "models").absolute()


STATE_ENV = "LTX2_BATCH_STATE"


def state_home(environ: dict[str, str] | None = None) -> Path:
    """Where the tool keeps state between launches on this machine (the record of the local Ray it started
    for warm pools): `$LTX2_BATCH_STATE`, else `$XDG_STATE_HOME/ltx2_batch`, else
    `~/.local/state/ltx2_batch`."""
    env = os.environ if environ is None else environ
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV]).expanduser().absolute()
    base = (
        Path(env["XDG_STATE_HOME"]).expanduser()
        if env.get("XDG_STATE_HOME")
        else Path.home() / ".local/state"
    )
    return (base / "ltx2_batch").absolute()
