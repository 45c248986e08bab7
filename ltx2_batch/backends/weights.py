"""Where a backend's weights come from: three sources behind one small interface. Torch-free at import.

Owns the seam between "which weights" and "how they are run":
- `TinyWeights`: the embedded tiny set, built locally on first use (tiny.py), read from its files.
- `CheckpointWeights`: Lightricks' published files, discovered under the models root (models.py).
- `RandomWeights`: the full-size official configurations as header-only files, with every tensor generated
  on the device by a seeded loader (random_weights.py) instead of read.
Each source gives the cheap identity of its weights (`fingerprint`, torch-free, on the driver: it feeds job
ids), the files to build from (`resolve`, which may build the tiny set), the official builders wrapped so they
yield its weights (`loading`: files load unchanged, random weights are swapped in), and the sizes the memory
policy plans with (`sizes`: file sizes, or parameter counts for weights that exist only as configs).
Must not: import ltx_pipelines, build models, choose devices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ltx2_batch.backends.fake import fake_fingerprint
from ltx2_batch.backends.models import (
    ROLES,
    ModelFiles,
    discover_model_files,
    embedded_builder,
    embedded_root,
    file_header_digest,
    model_names,
    models_path,
    resolve_model_files,
    with_checkpoint_info,
)
from ltx2_batch.config import ModelConfig, ModelSource, Quantization
from ltx2_batch.core.families import CheckpointKind, ModelFamily
from ltx2_batch.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class WeightSizes:
    """Bytes per memory-policy group for one backend's resident set (memory.ModelFootprint's inputs)."""

    transformer: int  # every transformer the pipeline kind needs, as stored
    text_encoder: int
    other: int  # VAEs, vocoder, upsamplers
    transformer_fp8: int | None  # the transformers stored in fp8, None where fp8 cannot run


class WeightsSource(Protocol):
    """One kind of weights. `kind` is what sidecars record as `backend.weights`."""

    @property
    def kind(self) -> str:
        """What sidecars record as `backend.weights` (tiny, checkpoint, random)."""
        ...

    def fingerprint(self) -> str:
        """A short stable id of the weights, cheap and torch-free (never builds or reads tensor data)."""
        ...

    def resolve(self, allow_fp8: bool) -> ModelFiles:
        """The files the official builders read (building the tiny set first if needed)."""
        ...

    def loading(self, builder: T, dtype: object) -> T:
        """An official ModelLedger or model builder, made to yield this source's weights in `dtype`."""
        ...

    def sizes(
        self, files: ModelFiles, n_transformers: int, elem: int, quantized: bool, fp8_ok: bool
    ) -> WeightSizes:
        """What the resident set weighs in `elem`-byte floats (`quantized`: transformer stored in fp8)."""
        ...


def weights_source(cfg: ModelConfig, project_root: Path) -> WeightsSource:
    """The source `model.source` names."""
    if cfg.source is ModelSource.tiny:
        return TinyWeights(cfg, Path(project_root))
    if cfg.source is ModelSource.random:
        return RandomWeights(cfg, Path(project_root))
    return CheckpointWeights(cfg, Path(project_root))


def model_fingerprint(cfg: ModelConfig, project_root: Path) -> str:
    """The fingerprint of `cfg`'s weights (what job ids are computed with)."""
    if cfg.source is ModelSource.fake:
        return fake_fingerprint(cfg)
    return weights_source(cfg, project_root).fingerprint()


def _refuse_truncated(files: ModelFiles) -> None:
    """ConfigError naming every model file shorter than its own safetensors header says."""
    from ltx2_batch.backends.checkpoint_info import truncation_problem

    problems = []
    for role in ROLES:
        path = getattr(files, role, None)
        if path is None:
            continue
        for item in sorted(path.rglob("*.safetensors")) if path.is_dir() else [path]:
            if item.suffix == ".safetensors":
                problem = truncation_problem(item)
                if problem:
                    problems.append(problem)
    if problems:
        raise ConfigError("model file(s) cannot be loaded:\n  " + "\n  ".join(problems))


def _digest(payload: dict[str, object], *, sort_keys: bool = False) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=sort_keys).encode()).hexdigest()[:16]


def _file_sizes(files: ModelFiles, n_transformers: int, fp8_ok: bool) -> WeightSizes:
    """Sizes of real files. The checkpoint also holds the VAEs, vocoder and connectors: counting all of it as
    transformer, once per transformer, errs on the safe side."""
    ckpt = files.checkpoint.stat().st_size if files.checkpoint else 0
    gemma = sum(p.stat().st_size for p in files.gemma_root.rglob("*.safetensors")) if files.gemma_root else 0
    other = sum(
        p.stat().st_size for p in (files.spatial_upsampler, files.temporal_upsampler) if p is not None
    )
    transformer = ckpt * n_transformers
    fp8 = transformer if files.is_fp8 else transformer // 2 + transformer // 10
    return WeightSizes(transformer, gemma, other, fp8 if fp8_ok else None)


class _FileWeights:
    """What the two sources of real files share: the builders read the files as stored, and the memory
    policy sizes them by their bytes."""

    def loading(self, builder: T, dtype: object) -> T:  # noqa: ARG002 - the WeightsSource signature; files load as stored
        """Files load as stored: the builder is returned unchanged."""
        return builder

    def sizes(
        self,
        files: ModelFiles,
        n_transformers: int,
        elem: int,  # noqa: ARG002 - the WeightsSource signature; file sizes are already in bytes
        quantized: bool,  # noqa: ARG002 - the WeightsSource signature; the files say whether they are fp8
        fp8_ok: bool,
    ) -> WeightSizes:
        """The files' bytes (see `_file_sizes`); the fp8 size is an estimate unless the checkpoint is fp8."""
        return _file_sizes(files, n_transformers, fp8_ok)


@dataclass(frozen=True)
class CheckpointWeights(_FileWeights):
    """Lightricks' files under `model.root`. The fingerprint hashes names, sizes and safetensors headers."""

    cfg: ModelConfig
    project_root: Path
    kind: str = "checkpoint"

    def fingerprint(self) -> str:
        """Hash of each role's file names, sizes and safetensors headers. Refuses, on the driver, a missing
        checkpoint or Gemma, a cut download, or a checkpoint of another family."""
        files = discover_model_files(self.cfg, self.project_root, allow_fp8=self.cfg.allow_fp8)
        files.require(("checkpoint", "gemma_root"))
        _refuse_truncated(files)  # a cut download is named here, on the driver, before any job
        with_checkpoint_info(files, self.cfg)  # a checkpoint of another family is refused here, on the driver
        digest = hashlib.sha256()
        # the x1.5 upsampler counts only when present: fingerprints of sets without one stay as they were
        optional = ("spatial_upsampler_x1_5",) if files.spatial_upsampler_x1_5 is not None else ()
        for role in (*ROLES, *optional):
            path = getattr(files, role)
            if path is None:
                digest.update(f"{role}:absent\n".encode())
                continue
            for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if item.is_file():
                    rel = item.relative_to(path) if path.is_dir() else Path(item.name)
                    digest.update(f"{role}:{rel}:{item.stat().st_size}:{file_header_digest(item)}\n".encode())
        return digest.hexdigest()[:16]

    def resolve(self, allow_fp8: bool) -> ModelFiles:
        """The discovered files; MissingWeightsError when the checkpoint or Gemma is absent."""
        return resolve_model_files(
            self.cfg, self.project_root, require=("checkpoint", "gemma_root"), allow_fp8=allow_fp8
        )


@dataclass(frozen=True)
class TinyWeights(_FileWeights):
    """The embedded tiny set of the preset's family (tiny.py for LTX-2, tiny23.py for LTX-2.3). Its recipe
    (version + seed) fully determines its bytes, so the fingerprint needs no build: the driver computes job
    ids without torch."""

    cfg: ModelConfig
    project_root: Path
    kind: str = "tiny"

    @property
    def root(self) -> Path:
        """`model.root` itself when its folder has the set's name (tiny, tiny23), else `<root>/<name>`."""
        return embedded_root(self.cfg, self.project_root)

    def fingerprint(self) -> str:
        """The tiny recipe's version and the seed: the set is rebuilt from them, so they are its identity."""
        return _digest({"tiny": embedded_builder(self.cfg.family).TINY_RECIPE_VERSION, "seed": self.cfg.seed})

    def resolve(self, allow_fp8: bool) -> ModelFiles:
        """The tiny set's files (built first if absent). A role left at its real-weights default name maps to
        the set's own file; the preset's checkpoint kind wins over the file name."""
        builder = embedded_builder(self.cfg.family)
        builder.ensure_tiny_models(self.root, seed=self.cfg.seed)
        names, defaults = model_names(self.cfg), model_names(ModelConfig())
        # a role left at its real-weights default maps to the tiny set's file
        layout = builder.TINY_LAYOUT
        tiny_names = {
            role: [layout[role]] if names[role] == defaults.get(role) else names[role] for role in names
        }
        files = discover_model_files(
            self.cfg, self.project_root, allow_fp8=allow_fp8, root=self.root, names=tiny_names, source="tiny"
        )
        ic_lora = self.root / layout["ic_lora"]
        files = dataclasses.replace(files, ic_lora=ic_lora if ic_lora.is_file() else None)
        x1_5 = self.root / layout.get("spatial_upsampler_x1_5", "-")
        if (
            files.spatial_upsampler_x1_5 is None and x1_5.is_file()
        ):  # the set's own, when the config names none
            files = dataclasses.replace(files, spatial_upsampler_x1_5=x1_5)
        files.require(("checkpoint", "gemma_root"))
        files = with_checkpoint_info(files, self.cfg)
        # The tiny weights play either role: the preset's kind (a dev preset on them) wins over the name.
        kind = self.cfg.checkpoint_kind or files.checkpoint_kind
        return dataclasses.replace(files, checkpoint_kind=kind)


@dataclass(frozen=True)
class RandomWeights:
    """Full-size official configurations, weights generated on the device from `model.seed`."""

    cfg: ModelConfig
    project_root: Path
    kind: str = "random"

    def fingerprint(self) -> str:
        """The configuration's name, the seed and the recipe version (plus the quantization where it changes
        the weights): what decides every generated tensor."""
        from ltx2_batch.backends.random_weights import RANDOM_RECIPE_VERSION  # torch-free constants

        recipe: dict[str, object] = {
            "random": self.cfg.name,
            "seed": self.cfg.seed,
            "fp8": self.cfg.quantization is Quantization.fp8_cast,
            "recipe": RANDOM_RECIPE_VERSION,
        }
        if self.cfg.quantization is Quantization.fp8_scaled:  # other weights; ids of the older two unchanged
            recipe["quantization"] = Quantization.fp8_scaled.value
        return _digest(recipe, sort_keys=True)

    def resolve(self, allow_fp8: bool) -> ModelFiles:  # noqa: ARG002 - the WeightsSource signature; no fp8 set
        """The family's header-only set under `<root>/random` (LTX-2) or `<root>/random23` (LTX-2.3),
        written if absent. Its tokenizer is the LTX-2 tiny set's (built with seed 0 if absent: the tokenizer
        does not depend on the seed). No distilled LoRA ships with it: the distilled recipe only."""
        from ltx2_batch.backends.tiny import GEMMA_ROOT

        module = self._configs()
        base = models_path(self.cfg.root, self.project_root)
        root = base if base.name == module.RANDOM_DIR_NAME else base / module.RANDOM_DIR_NAME
        tiny_cfg = dataclasses.replace(self.cfg, root=str(root.parent), family=ModelFamily.ltx2)
        tiny = TinyWeights(tiny_cfg, self.project_root)
        embedded_builder(ModelFamily.ltx2).ensure_tiny_models(tiny.root, seed=0)
        module.ensure_random_set(root, tokenizer_source=tiny.root / GEMMA_ROOT)
        layout = module.RANDOM_LAYOUT
        return ModelFiles(
            root=root,
            source="random",
            checkpoint=root / layout["checkpoint"],
            is_fp8=False,
            gemma_root=root / layout["gemma_root"],
            distilled_lora=None,
            spatial_upsampler=root / layout["spatial_upsampler"],
            temporal_upsampler=root / layout["temporal_upsampler"],
            ic_lora=None,
            expected=tuple((role, root / rel) for role, rel in layout.items()),
            fetch_sources=(),
            family=self.cfg.family,
            model_version=getattr(module, "MODEL_VERSION", ""),
            checkpoint_kind=self.cfg.checkpoint_kind or CheckpointKind.distilled,
        )

    def _configs(self) -> Any:
        """The module holding the family's full-size configurations (random_weights / random_weights23)."""
        if self.cfg.family is ModelFamily.ltx23:
            from ltx2_batch.backends import random_weights23

            return random_weights23
        from ltx2_batch.backends import random_weights

        return random_weights

    def loading(self, builder: T, dtype: object) -> T:
        """The builder with a seeded random loader swapped in for the placeholder files."""
        from ltx2_batch.backends import random_weights as rw

        loading: T = rw.install_random_loaders(builder, self.cfg.seed, dtype)
        return loading

    def sizes(
        self,
        files: ModelFiles,  # noqa: ARG002 - the WeightsSource signature; sized from the configurations
        n_transformers: int,
        elem: int,
        quantized: bool,
        fp8_ok: bool,
    ) -> WeightSizes:
        """Sizes from the full-size configurations' parameter counts: there are no files to measure."""
        counts = self._configs().footprint_params(n_transformers)
        return WeightSizes(
            transformer=counts["transformer"] * (1 if quantized else elem),
            text_encoder=counts["text_encoder"] * elem,
            other=counts["other"] * elem,
            transformer_fp8=counts["transformer"] if fp8_ok else None,
        )
