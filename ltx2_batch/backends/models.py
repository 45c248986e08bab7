"""Where Lightricks' model files are on disk. Torch-free: runs on the driver.

Owns: discovery in the documented layout (<root>/checkpoints, <root>/upscalers, <root>/text_encoders/gemma3)
with Lightricks' published names (each configured name followed by its earlier published versions, from
`ltx2_batch.core.families`); full precision preferred over fp8 (fp8 dropped where it cannot run); the
missing-weights message (every expected path plus the exact `hf download` command, from the repository that
publishes the file); the check that the checkpoint header's family is the preset's (`with_checkpoint_info`);
where each family's embedded tiny set lives; `file_header_digest`, which hashes a safetensors header (never
the tensor bytes of a 40 GB checkpoint). Which weights a run uses, and their fingerprint, is weights.py's.
Must not: import torch, ltx_core or ltx_pipelines; read tensor data; build anything.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.families import (
    CheckpointKind,
    ModelFamily,
    earlier_versions,
    family_of_file,
    hf_download_command,
    kind_from_name,
    repo_for_file,
    spec,
)
from ltx2_batch.core.jobs import X1_5
from ltx2_batch.errors import ConfigError, MissingWeightsError

ROLES = ("checkpoint", "distilled_lora", "spatial_upsampler", "temporal_upsampler", "gemma_root")
DEFAULT_REQUIRED = ("checkpoint", "gemma_root", "distilled_lora", "spatial_upsampler")
GEMMA_HF_REPO = "google/gemma-3-12b-it-qat-q4_0-unquantized"  # the Gemma-3 build LTX-2's README points to
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB
_LENGTH_BYTES = 8  # a safetensors file opens with its header length, a little-endian u64


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
    family: ModelFamily = ModelFamily.ltx2  # read from the checkpoint's metadata when it has one
    model_version: str = ""  # the checkpoint's `model_version` metadata ("" when absent)
    checkpoint_kind: CheckpointKind | None = None  # from the file name, else model.checkpoint_kind
    spatial_upsampler_x1_5: Path | None = None  # `upscale.spatial: 1.5`; optional, outside ROLES

    def spatial_upsampler_for(self, scale: float) -> Path | None:
        """The x2 or x1.5 spatial upsampler file."""
        return self.spatial_upsampler_x1_5 if scale == X1_5 else self.spatial_upsampler

    @property
    def missing(self) -> tuple[str, ...]:
        """The required roles (ROLES) with no file; optional upsamplers outside ROLES are never listed."""
        return tuple(role for role in ROLES if getattr(self, role) is None)

    def path_of(self, role: str) -> Path:
        """The file (or folder) of `role`, or MissingWeightsError naming every path looked for."""
        found = getattr(self, role)
        if found is None:
            self.require((role,))
            raise MissingWeightsError(f"{role}: no file")  # require() has raised already; for the checker
        return Path(found)

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
        """One `hf download` per (repo, folder), listing every file that goes there."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for role, repo, filename, local_dir in self.fetch_sources:
            if role in roles:
                grouped.setdefault((repo, local_dir), []).extend([filename] if filename else [])
        commands = []
        for (repo, local_dir), files in grouped.items():
            if repo == "tiny":
                commands.append(f"python -m ltx2_batch.backends.tiny {local_dir}")
            elif repo.startswith("tiny:"):  # another embedded set's builder module
                commands.append(f"python -m {repo.removeprefix('tiny:')} {local_dir}")
            else:
                commands.append(hf_download_command(repo, files, local_dir))
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
    return with_checkpoint_info(files, cfg)


def discover_model_files(
    cfg: ModelConfig,
    project_root: Path,
    *,
    allow_fp8: bool,
    root: Path | None = None,
    names: dict[str, list[str]] | None = None,
    source: str | None = None,
) -> ModelFiles:
    """What exists of `cfg`'s files (under `root`, default `model.root`; `names`, default the config's),
    without requiring any of them."""
    return _discover(
        root if root is not None else models_path(cfg.root, project_root),
        names if names is not None else model_names(cfg),
        allow_fp8,
        cfg.hf_repo,
        source or cfg.source.value,
        cfg.family,
    )


def embedded_root(cfg: ModelConfig, project_root: Path) -> Path:
    """Where the embedded set of cfg's family lives: `root` itself when its folder has the set's name
    (tiny, tiny23), else `<root>/<that name>`."""
    root = models_path(cfg.root, project_root)
    name = embedded_builder(cfg.family).TINY_DIR_NAME
    return root if root.name == name else root / name


def embedded_builder(family: ModelFamily) -> Any:
    """The module that builds the family's embedded tiny set (imported lazily: it is torch-free at import,
    but the build itself loads torch)."""
    if family is ModelFamily.ltx23:
        from ltx2_batch.backends import tiny23

        return tiny23
    from ltx2_batch.backends import tiny

    return tiny


def with_checkpoint_info(files: ModelFiles, cfg: ModelConfig) -> ModelFiles:
    """`files` with the family, version and kind read from the checkpoint's header; ConfigError naming the
    file, what it is and the fix when the header names another family than the preset is for."""
    import dataclasses

    if files.checkpoint is None:
        return files
    from ltx2_batch.backends.checkpoint_info import checkpoint_info

    info = checkpoint_info(files.checkpoint, cfg.checkpoint_kind)
    if info.family is not cfg.family:
        version = f"model_version {info.model_version!r}" if info.model_version else "no model_version"
        raise ConfigError(
            f"{files.checkpoint}: its metadata says {spec(info.family).display_name} ({version}), but "
            f"model={cfg.name} is a {spec(cfg.family).display_name} preset "
            f"(model.family={cfg.family.value}); use a {spec(info.family).display_name} preset or set "
            f"model.family={info.family.value}"
        )
    return dataclasses.replace(
        files, family=info.family, model_version=info.model_version, checkpoint_kind=info.kind
    )


def file_header_digest(path: Path) -> str:
    """sha256 of a safetensors header (tensor names, dtypes, shapes, offsets, metadata); of the whole file for
    small non-safetensors files (tokenizer, config)."""
    with path.open("rb") as handle:
        if path.suffix == ".safetensors":
            raw = handle.read(_LENGTH_BYTES)
            (length,) = struct.unpack("<Q", raw) if len(raw) == _LENGTH_BYTES else (0,)
            return hashlib.sha256(raw + handle.read(min(length, _HEADER_LIMIT))).hexdigest()
        return hashlib.sha256(handle.read(_HEADER_LIMIT)).hexdigest()


def models_path(path: str | None, project_root: Path) -> Path:
    """A model root: unset means the models home (not the launch directory); a relative one is taken from
    the launch directory like every other path given on the command line."""
    if path is None:
        from ltx2_batch.core.tool_paths import models_home

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
        **({"spatial_upsampler_x1_5": [cfg.spatial_upsampler_x1_5]} if cfg.spatial_upsampler_x1_5 else {}),
    }


def _is_fp8(name: str) -> bool:
    return Path(name).name.removesuffix(".safetensors").endswith("-fp8")


def checkpoint_candidates(names: list[str], allow_fp8: bool) -> list[str]:
    """Full precision before fp8 (docs/behaviour.md, "Model files"): the configured names in order, each
    followed by its published earlier versions, each fp8 file after every full one; the fp8 twin of a listed
    full-precision name is looked for too (the family's published fp8 name where there is one, else `X-fp8`).
    fp8 is dropped when it cannot run."""
    with_earlier = [m for n in names for m in (n, *_siblings(n, earlier_versions(n)))]
    full = [n for n in with_earlier if not _is_fp8(n)]
    fp8 = [n for n in with_earlier if _is_fp8(n)] + [_fp8_twin(n) for n in full]
    return list(dict.fromkeys(full + (fp8 if allow_fp8 else [])))


def _siblings(rel: str, names: tuple[str, ...]) -> list[str]:
    return [str(Path(rel).with_name(n)) for n in names]


def _fp8_twin(rel: str) -> str:
    """LTX-2 publishes `X-fp8` beside `X`; LTX-2.3's fp8 files drop the version (`...-distilled-fp8`)."""
    name = Path(rel).name
    family, kind = family_of_file(name), kind_from_name(name)
    if family is not None and kind is not None:
        return str(Path(rel).with_name(spec(family).files.fp8_names(kind)[0]))
    return str(Path(rel).with_name(fp8_variant(name)))


def _discover(
    root: Path,
    names: dict[str, list[str]],
    allow_fp8: bool,
    hf_repo: str,
    source: str,
    family: ModelFamily = ModelFamily.ltx2,
) -> ModelFiles:
    candidates = [root / n for n in checkpoint_candidates(names["checkpoint"], allow_fp8)]
    checkpoint = next((c for c in candidates if c.is_file()), None)
    expected: list[tuple[str, Path]] = [("checkpoint", c) for c in candidates]
    singles: dict[str, Path | None] = {}
    optional = ("spatial_upsampler_x1_5",) if names.get("spatial_upsampler_x1_5") else ()
    for role in ("distilled_lora", "spatial_upsampler", "temporal_upsampler", *optional):
        rel = names[role][0]
        looked = [root / r for r in (rel, *_siblings(rel, earlier_versions(rel)))]
        expected += [(role, p) for p in looked]
        singles[role] = next((p for p in looked if p.is_file()), None)
    gemma = root / names["gemma_root"][0]
    expected.append(("gemma_root", gemma))
    gemma_ok = (
        gemma.is_dir() and any(gemma.rglob("model*.safetensors")) and any(gemma.rglob("tokenizer.model"))
    )
    shown = _display(root)

    def source_of(role: str, rel: str) -> tuple[str, str, str, str]:
        """`role`'s origin for the missing-weights message: (role, repo or builder, file name, folder)."""
        if source == "tiny":  # built, not downloaded: the command is the family's builder
            builder = "tiny" if family is ModelFamily.ltx2 else f"tiny:{embedded_builder(family).__name__}"
            return (role, builder, "", str(root))
        if role == "gemma_root":
            return (role, GEMMA_HF_REPO, "", str(Path(shown) / rel))
        published = family_of_file(rel)  # Lightricks' name: its own repository; a user's name: model.hf_repo
        repo = hf_repo if published is None else repo_for_file(published, rel)
        return (role, repo, Path(rel).name, str(Path(shown) / Path(rel).parent))

    sources = [source_of(role, names[role][0]) for role in ("checkpoint", *singles, "gemma_root")]
    return ModelFiles(
        root=root,
        source=source,
        checkpoint=checkpoint,
        is_fp8=checkpoint is not None and _is_fp8(checkpoint.name),
        gemma_root=gemma if gemma_ok else None,
        distilled_lora=singles["distilled_lora"],
        spatial_upsampler=singles["spatial_upsampler"],
        temporal_upsampler=singles["temporal_upsampler"],
        spatial_upsampler_x1_5=singles.get("spatial_upsampler_x1_5"),
        ic_lora=None,
        expected=tuple(expected),
        fetch_sources=tuple(sources),
        family=family,
    )


def _display(root: Path) -> str:
    """The root as the user would type it: relative to the current folder when it lies under it."""
    try:
        return str(root.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(root)
