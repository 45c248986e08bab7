"""What to download for each real-weights preset: the exact `hf download` commands, one block per preset.

Owns `download_commands` (every file a preset needs, in its preferred full-precision version, grouped into
one command per repository and folder, into a models root written as the user will type it) and
`weights_section` (the README block listing them for every preset in `conf/model/`; a test regenerates it
and compares, so README and the presets cannot drift). The commands are the ones a missing-weights error
prints (models.py `fetch_commands`), computed over an empty root, so every role counts as missing.
Must not: download anything, read tensor data, import torch.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

from ltx2_batch.backends.models import discover_model_files
from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.families import ModelFamily
from ltx2_batch.core.tool_paths import CONF_DIR

ROOT_TEXT = "$LTX2_BATCH_MODELS"  # how the commands name the models root (README: "Where files live")
_ROLES = ("checkpoint", "distilled_lora", "spatial_upsampler", "temporal_upsampler", "gemma_root")


def preset(name: str) -> ModelConfig:
    """A model preset of `conf/model/` as its typed config (the keys a preset sets; enums by value)."""
    fields = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text()) or {}
    source, family = ModelSource(fields.pop("source", "tiny")), ModelFamily(fields.pop("family", "ltx2"))
    return ModelConfig(**fields, source=source, family=family)


def download_commands(cfg: ModelConfig, root_text: str = ROOT_TEXT) -> list[str]:
    """The `hf download` commands that put every file `cfg` needs under `root_text` (full precision first:
    the first name of each list; an fp8-only preset downloads its fp8 checkpoint)."""
    with tempfile.TemporaryDirectory() as empty:
        files = discover_model_files(cfg, Path(empty), allow_fp8=True, root=Path(empty))
        roles = [*_ROLES, *(("spatial_upsampler_x1_5",) if cfg.spatial_upsampler_x1_5 else ())]
        return [c.replace(str(Path(empty)), root_text) for c in files.fetch_commands(roles)]


def real_presets() -> list[str]:
    """The presets that read published weights (source: checkpoint), in file order."""
    names = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    return [n for n in names if preset(n).source is ModelSource.checkpoint]


def weights_section() -> str:
    """README's download block: every real-weights preset with its commands."""
    lines = ["```bash"]
    for name in real_presets():
        lines.append(f"# model={name}")
        lines.extend(download_commands(preset(name)))
    lines.append("```")
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m ltx2_batch.backends.downloads`: the block README holds
    sys.stdout.write(weights_section() + "\n")
