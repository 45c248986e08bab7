"""Pipeline auto-selection, render-mode arithmetic and the value rules tied to them: pure functions only.

Owns the rules that turn a job's conditioning (images, LoRA kinds) and length into a concrete
`PipelineKind` and `RenderMode` (docs/behaviour.md, "Pipeline auto-selection"), the chunk count of a
chained job, and the size, frame and per-pipeline requirements (with the nearest valid values to
suggest). Must not touch files, configs or models: the loader passes plain values in, so every rule is
testable on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ltx2_batch.chaining.plan import latent_alignment, plan_chunks
from ltx2_batch.core.families import CheckpointKind, ModelFamily, auto_recipe, runs_distilled
from ltx2_batch.core.jobs import DISTILLED_SCHEDULE, X1_5, X2, LoraKind, PipelineKind, RenderMode, UpscaleSpec

# Pixel frames per latent frame after the first: fixed by the LTX-2 video VAE (the tiny model shares it).
# Planning uses it before any model loads; workers re-plan with the loaded VAE's value, and an integration
# test checks the two agree.
LTX2_TEMPORAL_SCALE = 8
# Only these pipelines can be chained: the others need all their conditioning inside one window.
CHAINABLE = frozenset({PipelineKind.TI2VID, PipelineKind.DISTILLED})
# The concrete kinds (`auto` resolves to one of them).
KINDS = tuple(kind for kind in PipelineKind if kind is not PipelineKind.AUTO)
# The recipes with guidance and a negative prompt (the distilled schedule has neither: core.jobs leaves
# those fields out of its job ids). retake and keyframe are guided on a dev checkpoint only: on a distilled
# one they run the distilled sigmas and accept and ignore these fields (their ids still hold them).
GUIDED = frozenset(KINDS) - DISTILLED_SCHEDULE
# The job fields only some kinds use; every other field is used by every kind. The rules below refuse a
# field on a kind outside its set where setting it there is a mistake (`video_conditioning`,
# `audio_conditioning`, `retake`, the chunk fields through the render mode); the guidance fields are
# accepted and ignored by the distilled schedule (two jobs differing only there are one render, which
# the loader refuses naming the field). docs/manifest.md's "used by" column is generated from this.
USED_BY: dict[str, frozenset[PipelineKind]] = {
    "negative_prompt": GUIDED,
    "num_inference_steps": GUIDED,
    "video_guider_params": GUIDED,
    "audio_guider_params": GUIDED - {PipelineKind.A2VID},  # a2vid_two_stage.py: its audio is frozen
    "images": frozenset(KINDS) - {PipelineKind.RETAKE},  # retake.py starts from the source's frames
    "video_conditioning": frozenset({PipelineKind.IC_LORA}),
    "audio_conditioning": frozenset({PipelineKind.A2VID}),
    "retake": frozenset({PipelineKind.RETAKE}),
    "upscale": frozenset(KINDS) - {PipelineKind.RETAKE},  # one stage at its source's size
    "chunk_prompts": CHAINABLE,
    "chunk_images": CHAINABLE,
}


def used_by(field: str) -> frozenset[PipelineKind]:
    """The kinds that use the job field `field` (a dotted key: its head's)."""
    return USED_BY.get(field.partition(".")[0], frozenset(KINDS))


# The fields only a guided recipe reads (the distilled schedule's job ids leave them out: core/jobs.py).
GUIDANCE_FIELDS = frozenset(
    {"negative_prompt", "num_inference_steps", "video_guider_params", "audio_guider_params"}
)


def has_effect(field: str, pipeline: PipelineKind, checkpoint: CheckpointKind) -> bool:
    """`field` changes what `pipeline` renders on a checkpoint of kind `checkpoint`: used by the kind, and
    not a guidance field of a kind that runs the distilled recipe there (keyframe, retake)."""
    if runs_distilled(pipeline, checkpoint) and field.partition(".")[0] in GUIDANCE_FIELDS:
        return False
    return pipeline in used_by(field)


# Spatial upsampler scales with a published file (ltx-core's rational resampler also knows 0.75 and 4).
SPATIAL_SCALES = (2.0, 1.5)
_X2 = UpscaleSpec()
# The rules below return (field, message) pairs instead of raising, so the caller can collect every
# problem of a manifest into one error. They are value rules: the caller has already checked the types.
Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class WeightsOffer:
    """What the model's files can serve, known on the driver without loading them: the checkpoint's kind
    (which recipe `auto` picks) and whether the distilled LoRA that guided stage 2 needs is present.
    `model` and `distilled_lora_path` only name things in refusals. `lora_check` says why a LoRA file
    would not change this model's transformer (None: it can; the check itself None where the driver
    cannot know: run/planning.py `weights_offer`)."""

    kind: CheckpointKind = CheckpointKind.dev
    distilled_lora: bool = True
    family: ModelFamily = ModelFamily.ltx2
    model: str = ""
    distilled_lora_path: str = ""
    spatial_x1_5: bool = True  # the x1.5 spatial upsampler file is present
    lora_check: Callable[[str], str | None] | None = field(default=None, compare=False)
    models_root: str = ""  # where LoRA paths are also looked for (model.root); "" the models home


# Every file present on a dev checkpoint: what a caller that does not say gets (auto: guided ti2vid).
ANY_WEIGHTS = WeightsOffer()
# Pipelines whose stage 2 runs the distilled LoRA on the stage-1 transformer (ti2vid_two_stages.py,
# keyframe_interpolation.py): without that file they cannot run as the official recipe does. keyframe only
# on a dev checkpoint: on a distilled one it runs the distilled recipe (families.runs_distilled).
NEEDS_DISTILLED_LORA = frozenset(
    {PipelineKind.TI2VID, PipelineKind.KEYFRAME, PipelineKind.HQ, PipelineKind.A2VID}
)


def needs_distilled_lora(pipeline: PipelineKind, kind: CheckpointKind) -> bool:
    """`pipeline` runs the distilled LoRA on a checkpoint of `kind`."""
    return pipeline in NEEDS_DISTILLED_LORA and not runs_distilled(pipeline, kind)


KEYFRAME_IMAGES = 2  # conditioning images at this many distinct frames make a keyframe interpolation


def select_pipeline(
    requested: PipelineKind,
    image_frames: Iterable[int],
    lora_kinds: Iterable[LoraKind],
    weights: WeightsOffer = ANY_WEIGHTS,
) -> PipelineKind:
    """Resolve `auto`; an explicit request is returned unchanged (the validator judges it).

    docs/behaviour.md, "Pipeline auto-selection": 2+ conditioning images at *different* frames mean
    keyframe interpolation (with the checkpoint's recipe: distilled sigmas on a distilled checkpoint, guided
    on a dev one); otherwise any IC-LoRA means the IC-LoRA pipeline; otherwise text/image-to-video with the
    recipe the checkpoint is made for: `distilled` (8 fixed sigmas, no guidance) on a distilled checkpoint,
    guided two-stage `ti2vid` on a dev one.
    """
    if requested is not PipelineKind.AUTO:
        return requested
    keyframes = len(set(image_frames)) >= KEYFRAME_IMAGES
    if not keyframes and any(kind is LoraKind.IC_LORA for kind in lora_kinds):
        return PipelineKind.IC_LORA
    return auto_recipe(weights.family, weights.kind, keyframes=keyframes).pipeline


def weights_problems(
    requested: PipelineKind,
    pipeline: PipelineKind,
    weights: WeightsOffer,
    upscale: UpscaleSpec = _X2,
) -> Problems:
    """What the model's files cannot serve of the concrete pipeline (refused before any model work)."""
    out: Problems = []
    if upscale.spatial and upscale.spatial_scale == X1_5 and not weights.spatial_x1_5:
        model = f"model={weights.model}" if weights.model else "the model"
        out.append(
            (
                "upscale.spatial",
                f"1.5 needs the x1.5 spatial upsampler, which {model} does not have (only LTX-2.3 publishes "
                "one: ltx-2.3-spatial-upscaler-x1.5-1.0); set model.spatial_upsampler_x1_5 or use "
                "upscale.spatial: true (x2)",
            )
        )
    return out + _lora_problems(requested, pipeline, weights)


def _lora_problems(requested: PipelineKind, pipeline: PipelineKind, weights: WeightsOffer) -> Problems:
    how = f"pipeline {pipeline.value}" + (" (auto-selected)" if requested is PipelineKind.AUTO else "")
    if needs_distilled_lora(pipeline, weights.kind) and not weights.distilled_lora:
        model = f"model={weights.model}" if weights.model else "the model"
        fix = "use pipeline: distilled" if weights.kind is CheckpointKind.distilled else "download it"
        if pipeline is PipelineKind.HQ:
            fix = "download it (hq has no recipe without it)"
        elif pipeline is PipelineKind.KEYFRAME:  # a dev checkpoint here: a distilled one needs no LoRA
            fix = "download it (keyframe on a dev checkpoint has no recipe without it)"
        where = f" ({weights.distilled_lora_path})" if weights.distilled_lora_path else ""
        stages = "both stages" if pipeline is PipelineKind.HQ else "stage 2"
        return [
            (
                "pipeline",
                f"{how} runs the distilled LoRA in {stages}, but {model} ({weights.kind.value} checkpoint) "
                f"has no distilled LoRA file{where}; {fix}, or set model.distilled_lora to the file",
            )
        ]
    return []


def select_mode(pipeline: PipelineKind, num_frames: int, chunk_frames: int) -> RenderMode:
    """Chained when a chainable pipeline asks for more than one window; one frame is a still image."""
    if pipeline in CHAINABLE and num_frames > chunk_frames:
        return RenderMode.CHAINED
    if num_frames == 1:
        return RenderMode.IMAGE
    return RenderMode.VIDEO


def chunk_count(
    num_frames: int, chunk_frames: int, overlap_frames: int, temporal_scale: int = LTX2_TEMPORAL_SCALE
) -> int:
    """Chunks the executor will render for `num_frames`: the chaining planner's own count.

    It equals the textbook `1 + ceil((n - chunk) / (chunk - overlap))` whenever the overlap lies on the latent
    grid (8m + 1); otherwise the planner trims the overlap rounded up to that grid and may need one chunk
    more (218 frames, overlap 24: 3, not 2). Counting with the planner keeps `chunk_prompts` validation
    and execution in agreement. Raises ConfigError for an impossible chaining config.
    """
    return plan_chunks(max(num_frames, 1), chunk_frames, overlap_frames, temporal_scale).chunk_count


def chunk_estimate(
    num_frames: int, chunk_frames: int, overlap_frames: int, temporal_scale: int = LTX2_TEMPORAL_SCALE
) -> int:
    """The planner's chunk count, in O(1), or one less: 1 + ceil((n - chunk) / (chunk - trimmed overlap)).

    The planner may need one chunk more (a last chunk rounded up to 8k+1 frames); that slack of one is fine
    for a limit, and saves planning a clip of 10^9 frames just to learn it is too long. Assumes a valid
    chaining config (the loader checks that first).
    """
    effective = latent_alignment(overlap_frames, temporal_scale).effective_overlap
    step = max(chunk_frames - effective, 1)
    return 1 + max(0, -(-(num_frames - chunk_frames) // step))


def nearest_multiples(value: int, multiple: int) -> tuple[int, ...]:
    """The valid sizes around `value` (one when `value` is below the first multiple)."""
    low = (value // multiple) * multiple
    return tuple(v for v in (low, low + multiple) if v > 0)


def nearest_frame_counts(num_frames: int) -> tuple[int, ...]:
    """The two 8k+1 counts around `num_frames` (one when it is below 9)."""
    low = ((max(num_frames, 1) - 1) // 8) * 8 + 1
    return tuple(v for v in (low, low + 8) if v >= 1 and v != num_frames)


def size_problems(width: int | None, height: int | None, spatial: bool, scale: float = 2.0) -> Problems:
    """Two-stage renders (spatial upscale) need multiples of 64, one-stage renders multiples of 32; x1.5
    multiples of 96: stage 1 runs at 2/3 of the size, on the 64-pixel grid (an even latent, which the
    rational resampler's 3/2 step maps onto a whole one)."""
    multiple, why = (
        (64, "two-stage (upscale.spatial: true)") if spatial else (32, "one-stage (upscale.spatial: false)")
    )
    if spatial and scale == X1_5:
        multiple, why = 96, "x1.5 two-stage (upscale.spatial: 1.5)"
    out: Problems = []
    for key, value in (("width", width), ("height", height)):
        if value is None:
            continue
        if value <= 0:
            out.append((key, f"must be positive, got {value}"))
        elif value % multiple:
            near = " or ".join(str(v) for v in nearest_multiples(value, multiple))
            out.append(
                (key, f"must be a multiple of {multiple} for {why} renders, got {value}; nearest: {near}")
            )
    return out


def upsampler_problems(
    width: object, height: object, num_frames: object, spatial: bool, scale: float = 2.0
) -> Problems:
    """The spatial upsampler normalises over each channel of the stage-1 latent (GroupNorm), which needs more
    than one value: a one-frame two-stage render at 64x64 is a single latent cell (half size, /32)."""
    if not spatial or not all(isinstance(v, int) and v > 0 for v in (width, height, num_frames)):
        return []
    side = int(32 * scale)  # pixels of the target per stage-1 latent cell
    cells = (1 + (num_frames - 1) // 8) * (width // side) * (height // side)  # type: ignore[operator]
    if cells > 1:
        return []
    return [
        (
            "width",
            f"a {width}x{height} two-stage render of {num_frames} frame gives the spatial upsampler a single "
            "latent cell, which it cannot normalise; use width or height 128, or upscale.spatial: false "
            "(one-stage renders take 32x32)",
        )
    ]


def frame_problems(num_frames: int | None, frame_rate: float | None, chained: bool = False) -> Problems:
    """One window renders 8k+1 frames (the causal VAE: 1 frame, then 8 per latent frame).

    A chained job may ask for any length: the chunk planner renders 8k+1-frame windows and trims the
    stitched result to exactly `num_frames`.
    """
    out: Problems = []
    if num_frames is not None:
        if num_frames < 1:
            out.append(("num_frames", f"must be >= 1, got {num_frames}"))
        elif (num_frames - 1) % 8 and not chained:
            near = " or ".join(str(v) for v in nearest_frame_counts(num_frames))
            out.append(
                ("num_frames", f"must be 8k+1 (1, 9, 17, ... 121, ...), got {num_frames}; nearest: {near}")
            )
    if frame_rate is not None and frame_rate <= 0:
        out.append(("frame_rate", f"must be > 0, got {frame_rate}"))
    return out


def pipeline_problems(
    requested: PipelineKind,
    pipeline: PipelineKind,
    num_frames: int,
    image_frames: tuple[int, ...],
    lora_kinds: tuple[LoraKind, ...],
    has_video_conditioning: bool,
    chunk_frames: int,
) -> Problems:
    """What the concrete pipeline requires of the job's conditioning and length."""
    how = f"pipeline {pipeline.value}" + (" (auto-selected)" if requested is PipelineKind.AUTO else "")
    has_ic = LoraKind.IC_LORA in lora_kinds
    out: Problems = []
    if pipeline is PipelineKind.KEYFRAME and len(set(image_frames)) < KEYFRAME_IMAGES:
        out.append(
            (
                "images",
                f"{how} needs >= 2 images at different frame_idx values, got "
                f"{len(image_frames)} at frames {sorted(set(image_frames))}",
            )
        )
    if pipeline is PipelineKind.IC_LORA and not has_ic:
        out.append(("loras", f"{how} needs a LoRA with `type: ic_lora`"))
    if pipeline is not PipelineKind.IC_LORA and has_ic:
        out.append(
            (
                "loras",
                f"an ic_lora-typed LoRA needs pipeline ic_lora, but this job uses {how}; "
                "set `pipeline` explicitly or change the LoRA's type",
            )
        )
    if pipeline is PipelineKind.IC_LORA and not has_video_conditioning:
        out.append(("video_conditioning", f"{how} needs at least one reference video: [{{path, strength}}]"))
    if pipeline not in USED_BY["video_conditioning"] and has_video_conditioning:
        out.append(("video_conditioning", f"is only used by pipeline ic_lora, but this job uses {how}"))
    if pipeline not in CHAINABLE and num_frames > chunk_frames:
        out.append(
            (
                "num_frames",
                f"{how} renders at most {chunk_frames} frames, got {num_frames}; only "
                "ti2vid/distilled chain longer clips",
            )
        )
    return out


def hq_problems(pipeline: PipelineKind, upscale: UpscaleSpec) -> Problems:
    """The HQ recipe is two-stage at x2 by construction (ti2vid_two_stages_hq.py)."""
    if pipeline is PipelineKind.HQ and (not upscale.spatial or upscale.spatial_scale != X2):
        return [("upscale.spatial", "pipeline hq is two-stage with the x2 upsampler: set it to true")]
    return []


def a2vid_problems(
    pipeline: PipelineKind, has_audio_input: bool, upscale: UpscaleSpec, audio: bool
) -> Problems:
    """a2vid (a2vid_two_stage.py) needs its driving audio, is two-stage x2, and writes that audio back."""
    if pipeline not in USED_BY["audio_conditioning"]:
        if has_audio_input:
            return [
                ("audio_conditioning", f"is only used by pipeline a2vid, but this job uses {pipeline.value}")
            ]
        return []
    out: Problems = []
    if not has_audio_input:
        out.append(
            (
                "audio_conditioning",
                "pipeline a2vid needs the audio that drives it: {path, start, max_duration}",
            )
        )
    if not upscale.spatial or upscale.spatial_scale != X2:
        out.append(("upscale.spatial", "pipeline a2vid is two-stage with the x2 upsampler: set it to true"))
    if not audio:
        out.append(("audio", "pipeline a2vid writes its driving audio into the clip: set it to true"))
    return out


def retake_problems(pipeline: PipelineKind, has_retake: bool, upscale: UpscaleSpec) -> Problems:
    """retake (retake.py) needs its source and window, and is one stage at the source's size."""
    if pipeline not in USED_BY["retake"]:
        return (
            [("retake", f"is only used by pipeline retake, but this job uses {pipeline.value}")]
            if has_retake
            else []
        )
    out: Problems = []
    if not has_retake:
        out.append(
            ("retake", "pipeline retake needs {path, start, end}: the source video and the window (s)")
        )
    if upscale.spatial or upscale.temporal:
        out.append(
            (
                "upscale",
                "pipeline retake is one stage at the source's size: set {spatial: false, temporal: false}",
            )
        )
    return out


def mode_problems(mode: RenderMode, upscale: UpscaleSpec) -> Problems:
    """The temporal upsampler doubles frames and frame rate after the last stage: chunk seams and a
    one-frame still cannot take it (the chunk plan and the PNG path count frames at the job's rate)."""
    if upscale.temporal and mode is RenderMode.CHAINED:
        return [
            (
                "upscale.temporal",
                "is not supported for chained (longer than one window) jobs; "
                "render at the target frame rate instead, or keep num_frames within one window",
            )
        ]
    if upscale.temporal and mode is RenderMode.IMAGE:
        return [("upscale.temporal", "has no effect on a one-frame job: set it to false")]
    return []
