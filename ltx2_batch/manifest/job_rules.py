"""The per-job rules: one expanded job's fields -> a validated `RenderJob` template, plus its name, prompt
and seed.

Owns `parse_template` (every field but name, prompt and seed: types, limits, sizes, the pipeline that
`auto` resolves to and what that pipeline requires, the render mode, the chunk fields), `job_varying`
(name, prompt and seed, checked once per expanded job) and `read_setting` / `setting_rules` (one plain
field's rules that hold whatever the rest of the job is: what `swept.py` checks each swept value with).
Jobs that differ only in name, prompt and seed share one template, validated once. The rules themselves
are pure functions in `select.py` and `limits.py`, the sections' readers in `sections.py` and
`media_sections.py`, the seed rule in `seeds.py`; this module applies them in one walk and reports every
problem through the `report` callback. Must not read files (input paths go through the context's
resolver) nor expand sweeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import (
    AudioCondition,
    GuiderSpec,
    ImageCondition,
    LoraSpec,
    PipelineKind,
    RenderJob,
    RenderMode,
    RetakeSpec,
    UpscaleSpec,
    VideoCondition,
)
from ltx2_batch.manifest import media_sections, sections
from ltx2_batch.manifest.chunks import ChunkImages, chunk_rules
from ltx2_batch.manifest.limits import chunk_problems, limit_problem, text_problem
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import FieldReader, JobContext, Report, report_all
from ltx2_batch.manifest.seeds import MAX_SEED, job_seed, read_seed
from ltx2_batch.manifest.select import (
    a2vid_problems,
    chunk_estimate,
    frame_problems,
    hq_problems,
    mode_problems,
    pipeline_problems,
    retake_problems,
    select_mode,
    select_pipeline,
    size_problems,
    upsampler_problems,
    weights_problems,
)
from ltx2_batch.manifest.suggest import suggest
from ltx2_batch.manifest.values import is_int
from ltx2_batch.manifest.vocabulary import JOB


@dataclass(frozen=True)
class _Settings:
    """A job's plain settings as read: None where a problem was reported (and for unset steps)."""

    negative_prompt: str | None
    width: int | None
    height: int | None
    num_frames: int | None
    frame_rate: float | None
    steps: int | None
    audio: bool | None
    enhance_prompt: bool | None
    pipeline: str | None


@dataclass(frozen=True)
class _Conditioning:
    """What the job is conditioned and guided with, as read from its sections."""

    video_guider: GuiderSpec
    audio_guider: GuiderSpec
    images: tuple[ImageCondition, ...]
    loras: tuple[LoraSpec, ...]
    videos: tuple[VideoCondition, ...]
    tags: tuple[tuple[str, str], ...]
    audio_input: AudioCondition | None
    retake: RetakeSpec | None


def parse_template(fields: Mapping[str, object], ctx: JobContext, report: Report) -> RenderJob | None:
    """Type-check, validate and convert every field of one expanded job except name, prompt and seed;
    None when anything was reported. The result has an empty name and prompt and seed 0: `job_varying`
    supplies those, so jobs that differ only in them share one template (validated once)."""
    reader = FieldReader(fields, report, ctx)
    settings = _read_settings(reader)
    width, height, num_frames = settings.width, settings.height, settings.num_frames
    upscale = sections.upscale(reader)
    report_all(reader.report, size_problems(width, height, upscale.spatial, upscale.spatial_scale))
    report_all(
        reader.report, upsampler_problems(width, height, num_frames, upscale.spatial, upscale.spatial_scale)
    )
    inputs = _read_conditioning(reader, settings)
    requested = requested_pipeline(reader, settings.pipeline)
    # Over the limit is already reported; the clamp keeps the rules below (chunk plans) bounded.
    frames = min(num_frames, ctx.limits.max_num_frames) if isinstance(num_frames, int) else 1
    pipeline = _pipeline_rules(reader, requested, frames, inputs, upscale, bool(settings.audio))
    mode = select_mode(pipeline, frames, ctx.chunking.chunk_frames)
    _mode_rules(reader, mode, frames, settings, upscale, inputs.retake is not None)
    chunk_prompts, chunk_images = chunk_rules(reader, mode, frames, ctx.chunking)
    if reader.bad:
        return None
    return _template_job(settings, upscale, inputs, pipeline, mode, ctx, chunk_prompts, chunk_images)


def _read_settings(reader: FieldReader) -> _Settings:
    """The plain fields, checked against their kinds, the limits and their own ranges."""
    settings = _Settings(
        negative_prompt=reader.text("negative_prompt"),
        width=reader.integer("width"),
        height=reader.integer("height"),
        num_frames=reader.integer("num_frames"),
        frame_rate=reader.number("frame_rate"),
        steps=reader.integer("num_inference_steps"),
        audio=reader.flag("audio"),
        enhance_prompt=reader.flag("enhance_prompt"),
        pipeline=reader.text("pipeline"),
    )
    for key, value in (
        ("negative_prompt", settings.negative_prompt),
        ("width", settings.width),
        ("height", settings.height),
        ("num_frames", settings.num_frames),
        ("frame_rate", settings.frame_rate),
        ("num_inference_steps", settings.steps),
    ):
        setting_rules(reader, key, value)
    return settings


# The plain job fields `_read_settings` reads.
SETTINGS = (
    "negative_prompt",
    "width",
    "height",
    "num_frames",
    "frame_rate",
    "num_inference_steps",
    "audio",
    "enhance_prompt",
    "pipeline",
)


def read_setting(reader: FieldReader, key: str) -> object:
    """One plain field read by its kind, with `setting_rules` (None when reported)."""
    kind = JOB[key].kind
    value: object
    if kind == "str":
        value = reader.text(key)
    elif kind in ("int", "int?"):
        value = reader.integer(key)
    elif kind == "number":
        value = reader.number(key)
    else:
        value = reader.flag(key)
    setting_rules(reader, key, value)
    return value


def setting_rules(reader: FieldReader, key: str, value: object) -> None:
    """The rules a plain field's value has whatever the rest of the job holds: its maximum and its own
    range. The rules that depend on other fields (a width on the two-stage grid, a frame count on the
    8k+1 grid) are `parse_template`'s."""
    limits = reader.ctx.limits
    problem = None
    if key == "negative_prompt" and isinstance(value, str):
        problem = text_problem(value, limits)
    elif key == "num_inference_steps" and is_int(value) and value < 1:
        problem = f"must be >= 1, got {value}"
    if problem:
        reader.report(key, problem)
    over = limit_problem(limits, key, value)
    if over:
        reader.report(*over)


def _read_conditioning(reader: FieldReader, settings: _Settings) -> _Conditioning:
    num_frames, rate = settings.num_frames, settings.frame_rate
    video_guider = sections.guider(reader, "video_guider_params")
    audio_guider = sections.guider(reader, "audio_guider_params")
    images = sections.images(reader, "images", reader.fields.get("images", []))
    if num_frames is not None and num_frames >= 1:
        for i, im in enumerate(images):
            reader.in_range(
                f"images[{i}].frame_idx", im.frame_idx, 0, num_frames - 1, "must be a frame index"
            )
    loras, videos, tags = sections.loras(reader), sections.videos(reader), sections.tags(reader)
    sound = num_frames is not None and rate is not None and num_frames > 0 < rate
    clip = (num_frames, float(rate)) if sound and num_frames is not None and rate is not None else None
    audio_input = media_sections.audio_input(reader, clip)
    # a retake's recipe is the checkpoint's own: guided on a dev checkpoint, distilled sigmas otherwise
    retake = media_sections.retake(reader, reader.ctx.weights.kind is CheckpointKind.dev)
    return _Conditioning(video_guider, audio_guider, images, loras, videos, tags, audio_input, retake)


def requested_pipeline(reader: FieldReader, text: str | None) -> PipelineKind:
    """The `pipeline` field as a kind (`auto` when it is missing or reported)."""
    if text is None:
        return PipelineKind.AUTO
    try:
        return PipelineKind(text)
    except ValueError:
        valid = [k.value for k in PipelineKind]
        reader.report(
            "pipeline",
            f"must be one of {', '.join(valid)}, got {quote(text)}; {suggest(text[:200], valid)}",
        )
        return PipelineKind.AUTO


def _pipeline_rules(
    reader: FieldReader,
    requested: PipelineKind,
    frames: int,
    inputs: _Conditioning,
    upscale: UpscaleSpec,
    audio: bool,
) -> PipelineKind:
    """The concrete pipeline (`auto` resolved), with what it and the model's files require reported."""
    weights, chunk_frames = reader.ctx.weights, reader.ctx.chunking.chunk_frames
    image_frames = tuple(im.frame_idx for im in inputs.images)
    lora_kinds = tuple(lo.kind for lo in inputs.loras)
    pipeline = select_pipeline(requested, image_frames, lora_kinds, weights)
    report_all(reader.report, weights_problems(requested, pipeline, weights, upscale))
    report_all(
        reader.report,
        pipeline_problems(
            requested, pipeline, frames, image_frames, lora_kinds, bool(inputs.videos), chunk_frames
        ),
    )
    report_all(reader.report, hq_problems(pipeline, upscale))
    report_all(reader.report, a2vid_problems(pipeline, inputs.audio_input is not None, upscale, audio))
    report_all(reader.report, retake_problems(pipeline, inputs.retake is not None, upscale))
    return pipeline


def _mode_rules(
    reader: FieldReader,
    mode: RenderMode,
    frames: int,
    settings: _Settings,
    upscale: UpscaleSpec,
    retake: bool,
) -> None:
    """What the render mode allows: the temporal upsampler, the frame count, a chained job's chunks. A
    retake's frame count is its source's, judged with the source (media_sections.py)."""
    report_all(reader.report, mode_problems(mode, upscale))
    chained = mode is RenderMode.CHAINED
    num_frames = None if retake else settings.num_frames
    report_all(reader.report, frame_problems(num_frames, settings.frame_rate, chained=chained))
    if chained:
        limits, chunking = reader.ctx.limits, reader.ctx.chunking
        chunks = chunk_estimate(frames, chunking.chunk_frames, chunking.overlap_frames)
        report_all(
            reader.report, chunk_problems(limits, chunks, chunking.chunk_frames, chunking.overlap_frames)
        )


def _template_job(
    settings: _Settings,
    upscale: UpscaleSpec,
    inputs: _Conditioning,
    pipeline: PipelineKind,
    mode: RenderMode,
    ctx: JobContext,
    chunk_prompts: tuple[str, ...],
    chunk_images: ChunkImages,
) -> RenderJob | None:
    """The template from parts that passed every rule (no name, prompt or seed yet)."""
    s = settings
    if (  # each None was reported (the caller checked), so this only tells the type checker
        s.negative_prompt is None
        or s.width is None
        or s.height is None
        or s.num_frames is None
        or s.frame_rate is None
        or s.audio is None
        or s.enhance_prompt is None
    ):
        return None
    return RenderJob(
        name="",
        prompt="",
        width=s.width,
        height=s.height,
        num_frames=s.num_frames,
        frame_rate=float(s.frame_rate),
        seed=0,
        pipeline=pipeline,
        mode=mode,
        negative_prompt=s.negative_prompt,
        num_inference_steps=s.steps,
        video_guider_params=inputs.video_guider,
        audio_guider_params=inputs.audio_guider,
        images=inputs.images,
        loras=inputs.loras,
        video_conditioning=inputs.videos,
        audio_conditioning=inputs.audio_input,
        retake=inputs.retake,
        audio=s.audio,
        enhance_prompt=s.enhance_prompt,
        upscale=upscale,
        chunking=ctx.chunking,
        chunk_prompts=chunk_prompts,
        chunk_images=chunk_images,
        tags=inputs.tags,
    )


def job_varying(fields: Mapping[str, object], ctx: JobContext, report: Report) -> tuple[str, str, int] | None:
    """Check one job's name, prompt and seed and derive the seed (the seed rule reads all `fields`);
    (name, prompt, seed), or None when anything was reported."""
    plain = _plain_varying(fields, ctx)
    if plain is not None:
        return plain
    reader = FieldReader(fields, report, ctx)
    name, prompt = reader.text("name"), reader.text("prompt")
    if prompt is not None and not prompt.strip():
        reader.report("prompt", "is empty; describe the clip to render")
    problem = text_problem(prompt, ctx.limits) if prompt is not None else None
    if problem:
        reader.report("prompt", problem)
    seed = read_seed(reader)
    if reader.bad or name is None or prompt is None:
        return None
    return name, prompt, seed


def _plain_varying(fields: Mapping[str, object], ctx: JobContext) -> tuple[str, str, int] | None:
    """The common case, checked without the reader (this runs once per expanded job); None: read it."""
    name, prompt, seed = fields.get("name"), fields.get("prompt"), fields.get("seed")
    if not isinstance(name, str) or not isinstance(prompt, str):
        return None
    if not prompt.strip() or text_problem(prompt, ctx.limits) is not None:
        return None
    if seed is None:
        return name, prompt, job_seed(fields, None, ctx)
    if is_int(seed) and 0 <= seed <= MAX_SEED:
        return name, prompt, seed
    return None
