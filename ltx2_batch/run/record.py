"""What a run was launched with, kept beside its outputs: `<run dir>/config.yaml` and `overrides.yaml`.

Hydra would put these under a clock-named `.hydra/` folder; our run folders are named by the manifest (so
reruns resume), so the record lives in the run folder itself and describes the latest launch into it.
Must not: compose or interpret config (the CLI passes the composed YAML text), or create the run folder (a
launch that never got as far as making it leaves no record).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml

CONFIG_FILE = "config.yaml"
OVERRIDES_FILE = "overrides.yaml"


def _write(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(target)


def write_run_record(output_dir: Path, config_yaml: str, overrides: Sequence[str]) -> bool:
    """Write both files into `output_dir` when it exists; returns whether it did."""
    if not output_dir.is_dir():
        return False
    _write(output_dir / CONFIG_FILE, config_yaml)
    _write(output_dir / OVERRIDES_FILE, yaml.safe_dump(list(overrides), default_flow_style=False))
    return True
