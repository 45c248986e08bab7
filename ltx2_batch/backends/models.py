"""Where Lightricks' model files are on disk. Torch-free: runs on the driver.

Owns: discovery in the documented layout (<root>/checkpoints, <root>/upscalers, <root>/text_encoders/gemma3)
with Lightricks' published names; full precision preferred over fp8 (fp8 dropped where it cannot run); the
missing-weights message (every expected path plus the exact download command); `file_header_digest`, which
hashes a safetensors header (never the tensor bytes of a 40 GB checkpoint). Which weights a run uses, and
their fingerprint, is weights.py's (this module serves its checkpoint and tiny sources).
Must not: import torch, ltx_core or ltx_pipelines; read tensor data; build anything.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.errors import ConfigError, MissingWeightsError

ROLES = ("checkpoint", "distilled_lora", "spatial_upsampler", "temporal_upsampler", "gemma_root")
DEFAULT_REQUIRED = ("checkpoint", "gemma_root", "distilled_lora", "spatial_upsampler")
GEMMA_HF_REPO = "google/gemma-3-12b-it-qat-q4_0-unquantized"  # the Gemma-3 build LTX-2's README points to
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB


@dataclass(frozen=True)
class ModelFiles:
    """Resolved absolute paths. Optional roles are None when absent; `missing` names every absent role."""

    root: Path
    source: str
    checkpoint: Path | None
    is_fp8: bool
    gemma_root: Path | None
    distilled_lora: Path | None
    spatial_upsampler: Path | None
    temporal_upsampler: Path | None
    ic_lora: Path | None  # only the tiny set ships one (real IC-LoRAs are user files)
    expected: tuple[tuple[str, Path], ...]  # (role, path) looked for, in preference order
    fetch_sources: tuple[tuple[str, str, str, str], ...]  # (role, hf repo or "tiny", file or "", local dir)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(role for role in ROLES if getattr(self, role) is None)

    def require(self, roles: tuple[str, ...] | list[str]) -> None:
        """Raise MissingWeightsError naming every expected path of every absent role in `roles`."""
        absent = [r for r in roles if getattr(self, r) is None]
        if not absent:
            return
        lines = [f"model files missing under {self.root}:"]
        for role in absent:
            paths = [str(p) for r, p in self.expected if r == role]
            lines.append(f"  {role}: looked for " + " | ".join(paths))
        lines.append("fetch them with:")
        lines.extend(f"  {c}" for c in self.fetch_commands(absent))
        raise MissingWeightsError("\n".join(lines))

    def fetch_commands(self, roles: tuple[str, ...] | list[str]) -> list[str]:
        """One `huggingface-cli download` per (repo, folder), listing every file that goes there."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for role, repo, filename, local_dir in self.fetch_sources:
            if role in roles:
                grouped.setdefault((repo, local_dir), []).extend([filename] if filename else [])
        commands = []
        for (repo, local_dir), files in grouped.items():
            if repo == "tiny":
                commands.append(f"python -m ltx2_batch.backends.tiny {local_dir}")
            else:
                commands.append(
                    " ".join(["huggingface-cli download", repo, *files, "--local-dir", local_dir])
                )
        return list(dict.fromkeys(commands))


def fp8_variant(name: str) -> str:
    """Lightricks publishes `X.safetensors` next to `X-fp8.safetensors`."""
    stem = name.removesuffix(".safetensors")
    return name if stem.endswith("-fp8") else f"{stem}-fp8.safetensors"


def model_root(cfg: ModelConfig, project_root: Path) -> Path:
    """The absolute folder `cfg.root` names (the models home when unset)."""
    return models_path(cfg.root, project_root)


def resolve_model_files(
    cfg: ModelConfig,
    project_root: Path,
    *,
    require: tuple[str, ...] = DEFAULT_REQUIRED,
    allow_fp8: bool | None = None,
) -> ModelFiles:
    """Find every model file for `cfg`; raise MissingWeightsError when a role in `require` is absent.

    `allow_fp8` overrides cfg.allow_fp8 (the factory passes False on MPS, where fp8 cannot run).
    """
    if cfg.source is ModelSource.random:
        raise ConfigError("model.source=random has no files to resolve: it builds full-size random weights")
    files = discover_model_files(
        cfg, project_root, allow_fp8=cfg.allow_fp8 if allow_fp8 is None else allow_fp8
    )
    files.require(require)
    return files


def discover_model_files(
    cfg: ModelConfig,
    project_root: Path,
    *,
    allow_fp8: bool,
    root: Path | None = None,
    names: dict[str, list[str]] | None = None,
) -> ModelFiles:
    """What exists of `cfg`'s files (under `root`, default `model.root`; `names`, default the config's),
    without requiring any of them."""
    return _discover(
        root if root is not None else models_path(cfg.root, project_root),
        names if names is not None else model_names(cfg),
        allow_fp8,
        cfg.hf_repo,
        cfg.source.value,
    )


def file_header_digest(path: Path) -> str:
    """sha256 of a safetensors header (tensor names, dtypes, shapes, offsets, metadata); of the whole file for
    small non-safetensors files (tokenizer, config)."""
    with path.open("rb") as handle:
        if path.suffix == ".safetensors":
            raw = handle.read(8)
            (length,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
            return hashlib.sha256(raw + handle.read(min(length, _HEADER_LIMIT))).hexdigest()
        return hashlib.sha256(handle.read(_HEADER_LIMIT)).hexdigest()


def models_path(path: str | None, project_root: Path) -> Path:
    """A model root: unset means the models home (not the launch directory); a relative one is taken from
    the launch directory like every other path given on the command line."""
    if path is None:
        from ltx2_batch.locations import models_home

        return models_home()
    p = Path(path).expanduser()
    return p if p.is_absolute() else (Path(project_root) / p)


def model_names(cfg: ModelConfig) -> dict[str, list[str]]:
    """Role -> paths relative to the root, as the config spells them (e.g. checkpoints/x.safetensors)."""
    return {
        "checkpoint": list(cfg.checkpoints),
        "distilled_lora": [cfg.distilled_lora],
        "spatial_upsampler": [cfg.spatial_upsampler],
        "temporal_upsampler": [cfg.temporal_upsampler],
        "gemma_root": [cfg.gemma_root],
    }


def _is_fp8(name: str) -> bool:
    return Path(name).name.removesuffix(".safetensors").endswith("-fp8")


def checkpoint_candidates(names: list[str], allow_fp8: bool) -> list[str]:
    """Full precision before fp8 (docs/behaviour.md, "Model files"): the configured names in order, each
    fp8 file after every full one; the fp8 twin of a listed full-precision name is looked for too. fp8 is
    dropped when it cannot run."""
    full = [n for n in names if not _is_fp8(n)]
    fp8 = [n for n in names if _is_fp8(n)] + [str(Path(n).with_name(fp8_variant(Path(n).name))) for n in full]
    return list(dict.fromkeys(full + (fp8 if allow_fp8 else [])))


def _discover(
    root: Path, names: dict[str, list[str]], allow_fp8: bool, hf_repo: str, source: str
) -> ModelFiles:
    candidates = [root / n for n in checkpoint_candidates(names["checkpoint"], allow_fp8)]
    checkpoint = next((c for c in candidates if c.is_file()), None)
    expected: list[tuple[str, Path]] = [("checkpoint", c) for c in candidates]
    singles = {
        role: root / names[role][0] for role in ("distilled_lora", "spatial_upsampler", "temporal_upsampler")
    }
    expected += list(singles.items())
    gemma = root / names["gemma_root"][0]
    expected.append(("gemma_root", gemma))
    gemma_ok = (
        gemma.is_dir() and any(gemma.rglob("model*.safetensors")) and any(gemma.rglob("tokenizer.model"))
    )
    shown = _display(root)

    def source_of(role: str, rel: str) -> tuple[str, str, str, str]:
        if source == "tiny":
            return (role, "tiny", "", str(root))
        if role == "gemma_root":
            return (role, GEMMA_HF_REPO, "", str(Path(shown) / rel))
        return (role, hf_repo, Path(rel).name, str(Path(shown) / Path(rel).parent))

    sources = [source_of(role, names[role][0]) for role in ("checkpoint", *singles, "gemma_root")]
    return ModelFiles(
        root=root,
        source=source,
        checkpoint=checkpoint,
        is_fp8=checkpoint is not None and _is_fp8(checkpoint.name),
        gemma_root=gemma if gemma_ok else None,
        **{role: (p if p.is_file() else None) for role, p in singles.items()},
        ic_lora=None,
        expected=tuple(expected),
        fetch_sources=tuple(sources),
    )


def _display(root: Path) -> str:
    """The root as the user would type it: relative to the current folder when it lies under it."""
    try:
        return str(root.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(root)
