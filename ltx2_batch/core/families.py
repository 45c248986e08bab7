"""Model families (LTX-2 19B, LTX-2.3 22B): what each is, which files Lightricks publishes for it, its
default parameters, the longest window it renders, and the recipe `pipeline: auto` should run on it.

Owns: the `ModelFamily` / `CheckpointKind` / `RecipeKind` enums, one frozen `FamilySpec` per family, the
mapping from a checkpoint's `model_version` metadata to its family, the published file names (newest version
first) with the Hugging Face repository each lives in and the `hf download` command that fetches it, and
`auto_recipe`. Pure data and pure functions: no torch, no file I/O (reading a header is
`backends/checkpoint_info.py`'s job), no Hydra.

Where the facts come from (each was read, not guessed):
- Default parameters: ltx-pipelines 1.0.0, `ltx_pipelines.utils.constants`: `LTX_2_PARAMS` (40 steps, video
  CFG 3 / STG 1 on block 29, audio CFG 7), `LTX_2_3_PARAMS` (the same with 30 steps and STG on block 28),
  `LTX_2_3_HQ_PARAMS` (15 steps, stage 1 at 544x960, STG off), the distilled sigma schedules, and
  `detect_params`, which calls a checkpoint LTX-2.3 when its `model_version` metadata starts with "2.3"
  and LTX-2 otherwise (an LTX-2 checkpoint may carry no version at all). A test compares these numbers
  with the installed package.
- File names and repositories: Lightricks' LTX-2 README and the Lightricks/LTX-2 and Lightricks/LTX-2.3
  model cards (LTX-2.3: `ltx-2.3-22b-dev`, `ltx-2.3-22b-distilled-1.1` (1.0: `ltx-2.3-22b-distilled`),
  `ltx-2.3-22b-distilled-lora-384-1.1` (1.0 without the suffix), `ltx-2.3-spatial-upscaler-x2-1.1` (and
  `-1.0`), `ltx-2.3-spatial-upscaler-x1.5-1.0`, `ltx-2.3-temporal-upscaler-x2-1.0`; the fp8 checkpoints in
  Lightricks/LTX-2.3-fp8, where the README's quick start names `ltx-2.3-22b-distilled-fp8`; the dev twin
  follows the same `-fp8` rule). The download tool is `hf download` (`huggingface-cli` is its old name).
- Recipes: the official pipelines' intent (LTX-2 README): DistilledPipeline takes the distilled checkpoint
  with 8 predefined sigmas and no guidance ("8 steps, CFG=1" on the model card) and needs no distilled
  LoRA; TI2VidTwoStagesPipeline takes the dev checkpoint, guided stage 1, the distilled LoRA in stage 2.
  KeyframeInterpolationPipeline is the dev recipe; on a distilled checkpoint keyframe interpolation runs
  the distilled recipe with the images as guiding latents (ours: ltx-pipelines has no class for it).
- Window length: LTX-2's 121 frames is the product's original requirement and the official default
  `num_frames`. LTX-2.3 is released for single generations of up to 20 seconds (Lightricks' release
  material; the 1.0.0 package itself states no maximum and keeps 121 as its default). That agrees with the
  model: ltx-core bounds a token's temporal position by `positional_embedding_max_pos[0]` = 20 *seconds* (it
  divides pixel-frame positions by the fps before normalising), so at the default 24 fps the longest 8k+1
  window is 481 frames. Memory, not the model, is what makes integrators cap it lower.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import PurePath

from ltx2_batch.core.jobs import PipelineKind

TEMPORAL_SCALE = 8  # pixel frames per latent frame after the first: both families' video VAE
HF_DOWNLOAD = "hf download"


class ModelFamily(str, enum.Enum):
    """Member names are lower case because OmegaConf matches enum values in YAML by member name."""

    ltx2 = "ltx2"
    ltx23 = "ltx23"


class CheckpointKind(str, enum.Enum):
    """Which training a checkpoint had: it decides the recipe `pipeline: auto` runs on it."""

    distilled = "distilled"  # trained for the fixed 8-sigma schedule without guidance
    dev = "dev"  # the full model: guided, many steps


class RecipeKind(str, enum.Enum):
    """The two recipes a checkpoint kind can run: distilled, or guided with a refinement stage."""

    distilled = "distilled"  # 8 fixed sigmas, no CFG/STG, no extra LoRA (stage 2: the 3 last sigmas)
    guided_two_stage = "guided_two_stage"  # CFG+STG stage 1, distilled LoRA + distilled sigmas in stage 2


@dataclass(frozen=True)
class GuidanceDefaults:
    """Mirrors ltx_core's MultiModalGuiderParams."""

    cfg_scale: float
    stg_scale: float
    rescale_scale: float
    modality_scale: float
    skip_step: int
    stg_blocks: tuple[int, ...]


@dataclass(frozen=True)
class FamilyParams:
    """A family's official pipeline defaults (ltx_pipelines.utils.constants.PipelineParams)."""

    num_inference_steps: int
    stage_1_height: int
    stage_1_width: int
    num_frames: int
    frame_rate: float
    video_guidance: GuidanceDefaults
    audio_guidance: GuidanceDefaults


@dataclass(frozen=True)
class PublishedFiles:
    """File names in the family's Hugging Face repositories, each tuple newest version first."""

    repo: str
    fp8_repo: str
    checkpoints: tuple[tuple[CheckpointKind, tuple[str, ...]], ...]
    fp8_checkpoints: tuple[tuple[CheckpointKind, tuple[str, ...]], ...]
    distilled_lora: tuple[str, ...]
    spatial_upsampler_x2: tuple[str, ...]
    spatial_upsampler_x1_5: tuple[str, ...]
    temporal_upsampler_x2: tuple[str, ...]

    def fp8_names(self, kind: CheckpointKind) -> tuple[str, ...]:
        """The fp8 checkpoint names of `kind`, newest first."""
        return dict(self.fp8_checkpoints)[kind]

    def all_names(self) -> tuple[str, ...]:
        """Every file name the family publishes, all versions: what tells a Lightricks file from a user's."""
        groups = [names for _, names in self.checkpoints + self.fp8_checkpoints]
        groups += [self.distilled_lora, self.spatial_upsampler_x2, self.spatial_upsampler_x1_5]
        groups.append(self.temporal_upsampler_x2)
        return tuple(name for group in groups for name in group)


@dataclass(frozen=True)
class FamilySpec:
    """What the tool knows about one family: its window, audio rate, official defaults and published files."""

    family: ModelFamily
    display_name: str
    size: str  # as Lightricks names it
    version_prefix: str  # `model_version` metadata of its checkpoints starts with this ("" = no version)
    window_frames: int  # the most frames one pipeline call renders (8k+1)
    audio_sample_rate: int  # of the vocoder's output
    params: FamilyParams
    hq_params: FamilyParams | None  # ti2vid_two_stages_hq defaults, where the family has them
    files: PublishedFiles


@dataclass(frozen=True)
class Recipe:
    """What a pipeline call runs: the schedule, whether guidance is on, and the stage-2 LoRA."""

    kind: RecipeKind
    pipeline: PipelineKind
    stage_1_steps: int
    guidance: bool
    stage_2_distilled_lora: bool


# The distilled sigma schedule of ltx_pipelines.utils.constants (DISTILLED_SIGMA_VALUES): its step count is
# what the driver records for distilled recipes without importing the package.
DISTILLED_SIGMAS = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
DISTILLED_STEPS = len(DISTILLED_SIGMAS) - 1

_LTX2_VIDEO = GuidanceDefaults(3.0, 1.0, 0.7, 3.0, 0, (29,))
_LTX2_AUDIO = GuidanceDefaults(7.0, 1.0, 0.7, 3.0, 0, (29,))
LTX2_PARAMS = FamilyParams(40, 512, 768, 121, 24.0, _LTX2_VIDEO, _LTX2_AUDIO)
LTX23_PARAMS = FamilyParams(
    30,
    512,
    768,
    121,
    24.0,
    GuidanceDefaults(3.0, 1.0, 0.7, 3.0, 0, (28,)),
    GuidanceDefaults(7.0, 1.0, 0.7, 3.0, 0, (28,)),
)
LTX23_HQ_PARAMS = FamilyParams(
    15,
    1088 // 2,
    1920 // 2,
    121,
    24.0,
    GuidanceDefaults(3.0, 0.0, 0.45, 3.0, 0, ()),
    GuidanceDefaults(7.0, 0.0, 1.0, 3.0, 0, ()),
)

_D, _DEV = CheckpointKind.distilled, CheckpointKind.dev
FAMILIES: dict[ModelFamily, FamilySpec] = {
    ModelFamily.ltx2: FamilySpec(
        family=ModelFamily.ltx2,
        display_name="LTX-2",
        size="19B",
        version_prefix="",
        window_frames=121,
        audio_sample_rate=24_000,
        params=LTX2_PARAMS,
        hq_params=None,
        files=PublishedFiles(
            repo="Lightricks/LTX-2",
            fp8_repo="Lightricks/LTX-2",
            checkpoints=((_D, ("ltx-2-19b-distilled.safetensors",)), (_DEV, ("ltx-2-19b-dev.safetensors",))),
            fp8_checkpoints=(
                (_D, ("ltx-2-19b-distilled-fp8.safetensors",)),
                (_DEV, ("ltx-2-19b-dev-fp8.safetensors",)),
            ),
            distilled_lora=("ltx-2-19b-distilled-lora-384.safetensors",),
            spatial_upsampler_x2=("ltx-2-spatial-upscaler-x2-1.0.safetensors",),
            spatial_upsampler_x1_5=(),
            temporal_upsampler_x2=("ltx-2-temporal-upscaler-x2-1.0.safetensors",),
        ),
    ),
    ModelFamily.ltx23: FamilySpec(
        family=ModelFamily.ltx23,
        display_name="LTX-2.3",
        size="22B",
        version_prefix="2.3",
        window_frames=481,
        audio_sample_rate=48_000,
        params=LTX23_PARAMS,
        hq_params=LTX23_HQ_PARAMS,
        files=PublishedFiles(
            repo="Lightricks/LTX-2.3",
            fp8_repo="Lightricks/LTX-2.3-fp8",
            checkpoints=(
                (_D, ("ltx-2.3-22b-distilled-1.1.safetensors", "ltx-2.3-22b-distilled.safetensors")),
                (_DEV, ("ltx-2.3-22b-dev.safetensors",)),
            ),
            fp8_checkpoints=(
                (_D, ("ltx-2.3-22b-distilled-fp8.safetensors",)),
                (_DEV, ("ltx-2.3-22b-dev-fp8.safetensors",)),
            ),
            distilled_lora=(
                "ltx-2.3-22b-distilled-lora-384-1.1.safetensors",
                "ltx-2.3-22b-distilled-lora-384.safetensors",
            ),
            spatial_upsampler_x2=(
                "ltx-2.3-spatial-upscaler-x2-1.1.safetensors",
                "ltx-2.3-spatial-upscaler-x2-1.0.safetensors",
            ),
            spatial_upsampler_x1_5=("ltx-2.3-spatial-upscaler-x1.5-1.0.safetensors",),
            temporal_upsampler_x2=("ltx-2.3-temporal-upscaler-x2-1.0.safetensors",),
        ),
    ),
}


def spec(family: ModelFamily) -> FamilySpec:
    """The FamilySpec of `family`."""
    return FAMILIES[family]


def family_for_version(model_version: str) -> ModelFamily:
    """The family a checkpoint's `model_version` metadata names; as ltx-pipelines' `detect_params`
    decides it: "2.3..." is LTX-2.3, anything else (including no version) is LTX-2."""
    return ModelFamily.ltx23 if model_version.strip().startswith("2.3") else ModelFamily.ltx2


def kind_from_name(filename: str) -> CheckpointKind | None:
    """Distilled or dev, from a file name in Lightricks' naming (`...-distilled[-1.1][-fp8]`, `...-dev`);
    None when the name says neither (a user's own file): the caller then uses the preset's kind."""
    stem = PurePath(filename).name.removesuffix(".safetensors")
    parts = stem.replace("_", "-").split("-")
    if "lora" in parts:
        return None
    if "distilled" in parts:
        return CheckpointKind.distilled
    if "dev" in parts:
        return CheckpointKind.dev
    return None


# Kinds whose recipe follows the checkpoint: the distilled recipe (8 fixed sigmas, no guidance, no distilled
# LoRA) on a distilled checkpoint, the guided one on a dev checkpoint. keyframe has a recipe for each
# (backends/ltx2/recipes.py: keyframe.py, keyframe_distilled.py); retake follows it through its spec's
# `guided`, and needs no distilled LoRA either way.
FOLLOWS_CHECKPOINT = frozenset({PipelineKind.KEYFRAME, PipelineKind.RETAKE})


def runs_distilled(pipeline: PipelineKind, kind: CheckpointKind) -> bool:
    """`pipeline` runs the distilled recipe on a checkpoint of `kind` (no guidance, no distilled LoRA)."""
    return pipeline in FOLLOWS_CHECKPOINT and kind is CheckpointKind.distilled


def auto_recipe(family: ModelFamily, kind: CheckpointKind, *, keyframes: bool = False) -> Recipe:
    """What `pipeline: auto` runs on a checkpoint of this family and kind: text/image-to-video, or keyframe
    interpolation (`keyframes`: images at two or more frames), each with the checkpoint's own recipe."""
    pipeline = PipelineKind.KEYFRAME if keyframes else None
    if kind is CheckpointKind.distilled:
        return Recipe(RecipeKind.distilled, pipeline or PipelineKind.DISTILLED, DISTILLED_STEPS, False, False)
    steps = spec(family).params.num_inference_steps
    return Recipe(RecipeKind.guided_two_stage, pipeline or PipelineKind.TI2VID, steps, True, True)


def earlier_versions(filename: str) -> tuple[str, ...]:
    """The published older versions of `filename` (newest first), for discovery to fall back on; () for a
    name that is not a newest published one."""
    name = PurePath(filename).name
    for family_spec in FAMILIES.values():
        files = family_spec.files
        for group in (
            *(names for _, names in files.checkpoints + files.fp8_checkpoints),
            files.distilled_lora,
            files.spatial_upsampler_x2,
            files.spatial_upsampler_x1_5,
            files.temporal_upsampler_x2,
        ):
            if name in group:
                return group[group.index(name) + 1 :]
    return ()


def family_of_file(filename: str) -> ModelFamily | None:
    """The family whose published files include `filename` (by name only); None for other names."""
    name = PurePath(filename).name
    return next((f for f, s in FAMILIES.items() if name in s.files.all_names()), None)


def is_fp8_name(filename: str) -> bool:
    """The file name follows Lightricks' fp8 naming (`...-fp8.safetensors`)."""
    return PurePath(filename).name.removesuffix(".safetensors").endswith("-fp8")


def repo_for_file(family: ModelFamily, filename: str) -> str:
    """The Hugging Face repository that publishes `filename` (LTX-2.3's fp8 files have their own)."""
    files = spec(family).files
    return files.fp8_repo if is_fp8_name(filename) else files.repo


def hf_download_command(repo: str, filenames: tuple[str, ...] | list[str], local_dir: str) -> str:
    """`hf download REPO [FILE ...] --local-dir DIR`: Hugging Face's CLI puts each file at DIR/FILE."""
    return " ".join([HF_DOWNLOAD, repo, *filenames, "--local-dir", local_dir])


def check_chunk_frames(family: ModelFamily, chunk_frames: int) -> str | None:
    """None when `chunk_frames` is a valid window for the family, else what is wrong and the fix."""
    family_spec = spec(family)
    window = family_spec.window_frames
    if chunk_frames > window:
        return (
            f"{chunk_frames} frames exceed the {family_spec.display_name} window of {window} frames; "
            f"set chaining.chunk_frames to at most {window}"
        )
    if chunk_frames < 1 or (chunk_frames - 1) % TEMPORAL_SCALE:
        low = max(1, (chunk_frames - 1) // TEMPORAL_SCALE * TEMPORAL_SCALE + 1)
        return f"{chunk_frames} is not 8k+1 frames; use {low} or {low + TEMPORAL_SCALE}"
    return None
