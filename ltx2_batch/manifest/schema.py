"""The manifest's vocabulary and the strict, pure conversion of one expanded job into a `RenderJob`.

Owns the key tables (top level, job, nested mappings), "did you mean" suggestions, type checks and the
per-job rules (strengths, frame indices, chunk fields; the size, frame-count and pipeline rules are pure
functions in `select.py` that this module applies). Must not read files or
expand sweeps: input paths go through a `Resolve` callback the loader supplies (which owns the I/O and
the per-file digest cache), and problems are reported through a callback, never raised one at a time,
so a manifest's every problem surfaces in one error. Over 400 lines because one job's conversion is one
unit: the vocabulary and the reader that enforces it change together.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ltx2_batch.chaining.plan import plan_chunks
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.core.jobs import (
    AudioCondition,
    ChunkingSpec,
    GuiderSpec,
    ImageCondition,
    LoraKind,
    LoraSpec,
    PipelineKind,
    RenderJob,
    RenderMode,
    RetakeSpec,
    SeedRule,
    UpscaleSpec,
    VideoCondition,
    derive_seed,
    varied_job,
)
from ltx2_batch.manifest.inputs import audio_duration_s, video_facts
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits, chunk_problems, text_problem, value_problems
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.select import (
    ANY_WEIGHTS,
    LTX2_TEMPORAL_SCALE,
    SPATIAL_SCALES,
    WeightsOffer,
    a2vid_problems,
    chunk_count,
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

TOP_KEYS = ("base_seed", "defaults", "sweep", "jobs")
SWEEP_KEYS = ("grid", "zip")
GUIDER_KEYS = ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale", "skip_step", "stg_blocks")
UPSCALE_KEYS = ("spatial", "temporal")
IMAGE_KEYS = ("path", "frame_idx", "strength")
LORA_KEYS = ("path", "strength", "type")
VIDEO_KEYS = ("path", "strength")
AUDIO_KEYS = ("path", "start", "max_duration")
RETAKE_KEYS = ("path", "start", "end", "regenerate_video", "regenerate_audio")

# Job field -> the kind of value it holds. Mapping kinds may be swept with a dotted key (`upscale.temporal`).
JOB_FIELDS: dict[str, str] = {
    "name": "str",
    "prompt": "str",
    "negative_prompt": "str",
    "width": "int",
    "height": "int",
    "num_frames": "int",
    "frame_rate": "number",
    "seed": "int",
    "num_inference_steps": "int?",
    "video_guider_params": "guider",
    "audio_guider_params": "guider",
    "pipeline": "str",
    "images": "images",
    "loras": "loras",
    "video_conditioning": "videos",
    "audio_conditioning": "audio_input",
    "retake": "retake",
    "audio": "bool",
    "enhance_prompt": "bool",
    "upscale": "upscale",
    "chunk_prompts": "strs",
    "chunk_images": "chunk_images",
    "tags": "tags",
    "prompts": "prompts",  # a prompts file: one job per row (manifest/prompts.py; expanded by the loader)
    "sweep": "sweep",
}
NESTED_KEYS: dict[str, tuple[str, ...] | None] = {
    "video_guider_params": GUIDER_KEYS,
    "audio_guider_params": GUIDER_KEYS,
    "upscale": UPSCALE_KEYS,
    "audio_conditioning": AUDIO_KEYS,
    "retake": RETAKE_KEYS,
    "tags": None,  # free-form
}
NOT_IN_DEFAULTS = frozenset({"name", "sweep", "prompts"})
NOT_SWEPT = frozenset({"sweep", "prompts"})


MIN_PREFIX_CHARS = 3  # a typed prefix this long or longer is matched against valid names


def suggest(key: str, valid: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    close = (
        close
        or [v for v in valid if len(key) >= MIN_PREFIX_CHARS and (v.startswith(key) or key.startswith(v))][:1]
    )
    return f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(valid)}"


def unknown_keys(mapping: Mapping[Any, Any], valid: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(key, message) for every key not in `valid`, each with a suggestion."""
    out = []
    for k in mapping:
        if not isinstance(k, str) or k not in valid:
            text = k[:200] if isinstance(k, str) else quote(k, 200)  # a key can be as huge as a value
            out.append((text, f"unknown key {quote(k)}; {suggest(text, valid)}"))
    return out


def sweep_key_problem(key: str) -> str | None:
    """Why `key` cannot be swept, or None. Dotted keys reach one level into mapping-valued fields."""
    head, dot, sub = key.partition(".")
    if head not in JOB_FIELDS or head in NOT_SWEPT:
        valid_fields = [k for k in JOB_FIELDS if k != "sweep"]
        return f"cannot sweep unknown field {quote(key)}; {suggest(head[:200], valid_fields)}"
    if not dot:
        return None
    if head not in NESTED_KEYS:
        return f"{quote(head)} is not a mapping, so {quote(key)} cannot address a field inside it"
    valid = NESTED_KEYS[head]
    if valid is not None and sub not in valid:
        return f"unknown key {quote(sub)} in {quote(head)}; {suggest(sub[:200], valid)}"
    return None


def type_name(value: object) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float: NaN and infinity (YAML `.nan`, `.inf`) are never a valid setting."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


_KIND_CHECKS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": is_int,
    "int?": lambda v: v is None or is_int(v),
    "number": is_number,
    "bool": lambda v: isinstance(v, bool),
    "mapping": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}
_KIND_WORDS = {
    "str": "a string",
    "int?": "an integer or null",
    "int": "an integer",
    "number": "a finite number",
    "bool": "true or false",
}


def expect(value: object, kind: str) -> str | None:
    """None when `value` has the scalar `kind`, else the message (kinds: str, int, int?, number, bool)."""
    if _KIND_CHECKS[kind](value):
        return None
    return f"must be {_KIND_WORDS.get(kind, 'a ' + kind)}, got {type_name(value)} {quote(value)}"


def check_mapping(value: object, valid: tuple[str, ...]) -> list[tuple[str, str]]:
    """(subfield, message) problems of a nested mapping's shape (not its values)."""
    if not isinstance(value, dict):
        return [("", f"must be a mapping with keys {', '.join(valid)}, got {type_name(value)}")]
    return unknown_keys(value, valid)


# ---------------------------------------------------------------------------------------------------------
# One expanded job -> RenderJob
# ---------------------------------------------------------------------------------------------------------

BUILTIN_DEFAULTS: dict[str, Any] = {
    "negative_prompt": "",
    "width": 768,
    "height": 512,
    "num_frames": 121,
    "frame_rate": 24,
    "num_inference_steps": None,
    "pipeline": "auto",
    "audio": True,
    "enhance_prompt": False,
}
MAX_SEED = 2**63 - 1
LORA_STRENGTH_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class ResolvedInput:
    """What the loader's resolver returns for one path string: a real path and digest, or an error."""

    path: str = ""
    sha256: str = ""
    error: str = ""


class InputKind(str, Enum):
    """What a manifest path names: decides where it may live (LoRAs also under models/) and how the
    loader checks its content (image headers, a reference video's first frame)."""

    IMAGE = "image"
    VIDEO = "video"
    LORA = "lora"
    AUDIO = "audio"  # a2vid's driving audio (any file with an audio stream)


Resolve = Callable[[str, InputKind], ResolvedInput]  # (raw path, kind) -> ResolvedInput
Report = Callable[[str, str], None]  # (field, message)


@dataclass(frozen=True)
class JobContext:
    """Everything a job's rules depend on besides its own fields."""

    chunking: ChunkingSpec
    resolve: Resolve
    base_seed: int = 0
    seed_override: int | None = None
    limits: Limits = DEFAULT_LIMITS
    weights: WeightsOffer = ANY_WEIGHTS  # what the model's files serve: `auto`'s recipe and its refusals


class _Reader:
    """Reads typed values out of one job's field dict, reporting each problem; `bad` says if any."""

    def __init__(self, fields: Mapping[str, Any], report: Report, limits: Limits = DEFAULT_LIMITS) -> None:
        self.fields = fields
        self.limits = limits
        self._report = report
        self.bad = False

    def report(self, field: str, message: str) -> None:
        self.bad = True
        self._report(field, message)

    def scalar(self, key: str, kind: str) -> Any:
        if key not in self.fields and key not in BUILTIN_DEFAULTS:
            self.report(key, "is required")
            return None
        value = self.fields.get(key, BUILTIN_DEFAULTS.get(key))
        problem = expect(value, kind)
        if problem:
            self.report(key, problem)
            return None
        return value

    def items(self, key: str, valid: tuple[str, ...], required: tuple[str, ...] = ("path",)) -> list[dict]:
        value = self.fields.get(key, [])
        return self.item_list(key, value, valid, required)

    def item_list(self, key: str, value: object, valid: tuple[str, ...], required: tuple[str, ...]) -> list:
        if not isinstance(value, list):
            self.report(key, f"must be a list of mappings, got {type_name(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                self.report(where, f"must be a mapping with keys {', '.join(valid)}, got {type_name(item)}")
                continue
            for sub, message in unknown_keys(item, valid):
                self.report(f"{where}.{sub}", message)
            for sub in required:
                if sub not in item:
                    self.report(f"{where}.{sub}", "is required")
            out.append(item)
        return out

    def sub(self, where: str, item: Mapping[str, Any], key: str, kind: str, default: Any) -> Any:
        value = item.get(key, default)
        problem = expect(value, kind)
        if problem:
            self.report(f"{where}.{key}", problem)
            return default
        return value

    def in_range(self, field: str, value: float, low: float, high: float, what: str = "") -> None:
        if not low <= value <= high:
            self.report(field, f"{what or 'must be'} in [{low:g}, {high:g}], got {quote(value)}")

    def input_file(self, field: str, raw: object, resolve: Resolve, kind: InputKind) -> ResolvedInput:
        if not isinstance(raw, str):
            self.report(field, f"must be a path string, got {type_name(raw)}")
            return ResolvedInput()
        found = resolve(raw, kind)
        if found.error:
            self.report(field, found.error)
        return found


def _guider(reader: _Reader, key: str) -> GuiderSpec:
    value = reader.fields.get(key, {})
    problems = check_mapping(value, GUIDER_KEYS)
    for sub, message in problems:
        reader.report(f"{key}.{sub}" if sub else key, message)
    if not isinstance(value, dict):
        return GuiderSpec()
    args: dict[str, Any] = {}
    for name in GUIDER_KEYS[:4]:
        number = reader.sub(key, value, name, "number", None) if value.get(name) is not None else None
        args[name] = None if number is None else float(number)
    if value.get("skip_step") is not None:
        args["skip_step"] = reader.sub(key, value, "skip_step", "int", None)
    blocks = value.get("stg_blocks")
    if blocks is not None:
        if isinstance(blocks, list) and all(is_int(b) and b >= 0 for b in blocks):
            args["stg_blocks"] = tuple(blocks)
        else:
            reader.report(
                f"{key}.stg_blocks", f"must be a list of non-negative integers, got {quote(blocks)}"
            )
    return GuiderSpec(**args)


def _upscale(reader: _Reader) -> UpscaleSpec:
    value = reader.fields.get("upscale", {})
    for sub, message in check_mapping(value, UPSCALE_KEYS):
        reader.report(f"upscale.{sub}" if sub else "upscale", message)
    if not isinstance(value, dict):
        return UpscaleSpec()
    spatial, scale = value.get("spatial", True), 2.0
    if not isinstance(spatial, bool):  # a number names the upsampler's scale: 2 (= true) or 1.5
        if is_number(spatial) and float(spatial) in SPATIAL_SCALES:
            spatial, scale = True, float(spatial)
        else:
            reader.report(
                "upscale.spatial",
                f"must be true or false (x2 two-stage, or one stage), or 1.5 (x1.5 upsampler), "
                f"got {quote(spatial)}",
            )
            spatial = True
    return UpscaleSpec(
        spatial=spatial,
        temporal=reader.sub("upscale", value, "temporal", "bool", False),
        spatial_scale=scale,
    )


def _images(reader: _Reader, key: str, raw: object, resolve: Resolve) -> tuple[ImageCondition, ...]:
    out = []
    for i, item in enumerate(reader.item_list(key, raw, IMAGE_KEYS, ("path",))):
        where = f"{key}[{i}]"
        frame_idx = reader.sub(where, item, "frame_idx", "int", 0)
        strength = float(reader.sub(where, item, "strength", "number", 1.0))
        reader.in_range(f"{where}.strength", strength, 0.0, 1.0)
        found = (
            reader.input_file(f"{where}.path", item["path"], resolve, InputKind.IMAGE)
            if "path" in item
            else ResolvedInput()
        )
        out.append(ImageCondition(found.path, frame_idx, strength, found.sha256))
    return tuple(out)


def _loras(reader: _Reader, resolve: Resolve) -> tuple[LoraSpec, ...]:
    out = []
    for i, item in enumerate(reader.items("loras", LORA_KEYS)):
        where = f"loras[{i}]"
        strength = float(reader.sub(where, item, "strength", "number", 1.0))
        reader.in_range(f"{where}.strength", strength, *LORA_STRENGTH_RANGE)
        kind_text = reader.sub(where, item, "type", "str", "lora")
        try:
            kind = LoraKind(kind_text)
        except ValueError:
            valid = [k.value for k in LoraKind]
            reader.report(f"{where}.type", f"must be one of {', '.join(valid)}, got {quote(kind_text)}")
            kind = LoraKind.LORA
        found = (
            reader.input_file(f"{where}.path", item["path"], resolve, InputKind.LORA)
            if "path" in item
            else ResolvedInput()
        )
        out.append(LoraSpec(found.path, strength, kind, found.sha256))
    return tuple(out)


def _videos(reader: _Reader, resolve: Resolve) -> tuple[VideoCondition, ...]:
    out = []
    for i, item in enumerate(reader.items("video_conditioning", VIDEO_KEYS)):
        where = f"video_conditioning[{i}]"
        strength = float(reader.sub(where, item, "strength", "number", 1.0))
        reader.in_range(f"{where}.strength", strength, 0.0, 1.0)
        found = (
            reader.input_file(f"{where}.path", item["path"], resolve, InputKind.VIDEO)
            if "path" in item
            else ResolvedInput()
        )
        out.append(VideoCondition(found.path, strength, found.sha256))
    return tuple(out)


def _audio_input(reader: _Reader, resolve: Resolve) -> AudioCondition | None:
    """`audio_conditioning: {path, start, max_duration}`: the file probed (an audio stream that decodes,
    long enough to start at `start`) and hashed like images."""
    value = reader.fields.get("audio_conditioning")
    if value is None:
        return None
    for sub, message in check_mapping(value, AUDIO_KEYS):
        reader.report(f"audio_conditioning.{sub}" if sub else "audio_conditioning", message)
    if not isinstance(value, dict):
        return None
    if "path" not in value:
        reader.report("audio_conditioning.path", "is required (the audio file that drives the video)")
        return None
    start = float(reader.sub("audio_conditioning", value, "start", "number", 0.0))
    limit = value.get("max_duration")
    if limit is not None and not is_number(limit):
        reader.report("audio_conditioning.max_duration", f"must be a number of seconds, got {quote(limit)}")
        limit = None
    if start < 0:
        reader.report("audio_conditioning.start", f"must be >= 0 seconds, got {start:g}")
    if limit is not None and limit <= 0:
        reader.report("audio_conditioning.max_duration", f"must be > 0 seconds, got {limit:g}")
    found = reader.input_file("audio_conditioning.path", value["path"], resolve, InputKind.AUDIO)
    if found.path and not found.error:
        duration = audio_duration_s(found.path)
        if duration is not None and start >= duration:
            reader.report(
                "audio_conditioning.start",
                f"{start:g} s is past the end of the audio ({duration:.3f} s); start earlier",
            )
    return AudioCondition(found.path, found.sha256, start, None if limit is None else float(limit))


def _retake(reader: _Reader, resolve: Resolve, guided: bool) -> RetakeSpec | None:
    """`retake: {path, start, end, regenerate_video, regenerate_audio}`: the source probed (it decodes; the
    window lies inside it) and hashed like images. The job renders at the source's size, length and rate."""
    value = reader.fields.get("retake")
    if value is None:
        return None
    for sub, message in check_mapping(value, RETAKE_KEYS):
        reader.report(f"retake.{sub}" if sub else "retake", message)
    if not isinstance(value, dict):
        return None
    for key in ("path", "start", "end"):
        if key not in value:
            reader.report(f"retake.{key}", "is required (the source video and the window to regenerate, s)")
    if not all(key in value for key in ("path", "start", "end")):
        return None
    start = float(reader.sub("retake", value, "start", "number", 0.0))
    end = float(reader.sub("retake", value, "end", "number", 0.0))
    if not 0 <= start < end:
        reader.report("retake.end", f"the window must satisfy 0 <= start < end, got [{start:g}, {end:g}]")
    found = reader.input_file("retake.path", value["path"], resolve, InputKind.VIDEO)
    if found.path and not found.error:
        fps, frames, width, height = video_facts(found.path)
        for key, want in (("width", width), ("height", height), ("num_frames", frames), ("frame_rate", fps)):
            got = reader.fields.get(key, BUILTIN_DEFAULTS.get(key))
            if got != want:
                reader.report(
                    key,
                    f"a retake renders at its source's {key} ({want:g}), got {quote(got)}: "
                    f"set {key}: {want:g}",
                )
        if fps and end > frames / fps + 1e-6:
            reader.report("retake.end", f"{end:g} s is past the end of the source ({frames / fps:.3f} s)")
    return RetakeSpec(
        found.path,
        found.sha256,
        start,
        end,
        reader.sub("retake", value, "regenerate_video", "bool", True),
        reader.sub("retake", value, "regenerate_audio", "bool", True),
        guided,
    )


def _tags(reader: _Reader) -> tuple[tuple[str, str], ...]:
    value = reader.fields.get("tags", {})
    if not isinstance(value, dict):
        reader.report("tags", f"must be a mapping, got {type_name(value)}")
        return ()
    return tuple(sorted((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()))


def _chunk_rules(  # noqa: PLR0912 - one branch per chunk rule, reported in one walk
    reader: _Reader, mode: RenderMode, num_frames: int, chunking: ChunkingSpec, resolve: Resolve
) -> tuple[tuple[str, ...], tuple[tuple[ImageCondition, ...], ...]]:
    prompts, images = reader.fields.get("chunk_prompts"), reader.fields.get("chunk_images")
    if prompts is None and images is None:
        return (), ()
    if mode is not RenderMode.CHAINED:
        for key in ("chunk_prompts", "chunk_images"):
            if reader.fields.get(key) is not None:
                reader.report(
                    key,
                    f"only applies to chained jobs (ti2vid/distilled, num_frames > "
                    f"{chunking.chunk_frames}); this job renders as {mode.value}",
                )
        return (), ()
    chunks = chunk_count(num_frames, chunking.chunk_frames, chunking.overlap_frames)
    out_prompts: tuple[str, ...] = ()
    if prompts is not None:
        if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
            reader.report("chunk_prompts", f"must be a list of non-empty strings, got {quote(prompts)}")
        else:
            out_prompts = tuple(prompts)
            for i, text in enumerate(prompts):
                problem = text_problem(text, reader.limits)
                if problem:
                    reader.report(f"chunk_prompts[{i}]", problem)
        if isinstance(prompts, list) and len(prompts) > chunks:
            reader.report("chunk_prompts", f"has {len(prompts)} entries but the job has only {chunks} chunks")
    out_images: list[tuple[ImageCondition, ...]] = []
    if images is not None:
        if not isinstance(images, list):
            reader.report(
                "chunk_images", f"must be a list (one list of images per chunk), got {type_name(images)}"
            )
            images = []
        if len(images) > chunks:
            reader.report("chunk_images", f"has {len(images)} entries but the job has only {chunks} chunks")
        plan = plan_chunks(num_frames, chunking.chunk_frames, chunking.overlap_frames, LTX2_TEMPORAL_SCALE)
        for c, chunk in enumerate(images):
            conds = _images(reader, f"chunk_images[{c}]", chunk, resolve)
            rendered = plan.chunks[c].num_frames if c < plan.chunk_count else chunking.chunk_frames
            for i, im in enumerate(conds):
                reader.in_range(
                    f"chunk_images[{c}][{i}].frame_idx",
                    im.frame_idx,
                    0,
                    rendered - 1,
                    f"must be a frame of chunk {c} (it renders {rendered} frames),",
                )
            out_images.append(conds)
    return out_prompts, tuple(out_images)


def _seed(reader: _Reader, ctx: JobContext) -> int | None:
    """Explicit seeds win; else derived from the base seed and the job's parameters (not name/tags).

    A `seed_override` (the CLI's `seed=`) re-derives every seed, explicit ones included, so a Hydra
    multirun over seeds really renders different batches.
    """
    seed = reader.scalar("seed", "int?") if "seed" in reader.fields else None
    if seed is not None and not 0 <= seed <= MAX_SEED:
        reader.report("seed", f"must be in [0, 2**63 - 1], got {seed}")
    return job_seed(reader.fields, seed, ctx)


def job_seed(fields: Mapping[str, Any], explicit: int | None, ctx: JobContext) -> int:
    """The seed rule on a job's raw fields (shared with prompt-file expansion, which reuses a validated
    template and so must derive each row's seed exactly as a hand-written job with that prompt would)."""
    if ctx.seed_override is None and explicit is not None:
        return explicit
    return derive_seed(*_seed_inputs(fields, ctx))


def _seed_inputs(fields: Mapping[str, Any], ctx: JobContext) -> tuple[int, dict[str, Any]]:
    if ctx.seed_override is not None:
        return ctx.seed_override, {k: v for k, v in fields.items() if k not in ("name", "tags")}
    return ctx.base_seed, {k: v for k, v in fields.items() if k not in ("name", "tags", "seed")}


def prompt_seeds(fields: Mapping[str, Any], explicit: int | None, ctx: JobContext) -> Callable[[str], int]:
    """`job_seed` for jobs whose `fields` differ only in `prompt`, as a function of the prompt."""
    if ctx.seed_override is None and explicit is not None:
        return lambda _prompt: explicit
    return SeedRule(*_seed_inputs(fields, ctx)).seed


# The fields that may differ between jobs sharing one validated template (a sweep over seeds or prompts,
# a prompts file's rows): they are checked per job by `job_varying`; everything else by `parse_template`.
VARYING_FIELDS = frozenset({"name", "prompt", "seed"})


def parse_template(  # noqa: PLR0912 - one branch per field rule, every problem reported in one walk
    fields: Mapping[str, Any], ctx: JobContext, report: Report
) -> RenderJob | None:
    """Type-check, validate and convert every field of one expanded job except name, prompt and seed;
    None when anything was reported. The result has an empty name and prompt and seed 0: `job_varying`
    supplies those, so jobs that differ only in them share one template (validated once)."""
    reader = _Reader(fields, report, ctx.limits)
    negative = reader.scalar("negative_prompt", "str")
    width, height = reader.scalar("width", "int"), reader.scalar("height", "int")
    num_frames, frame_rate = reader.scalar("num_frames", "int"), reader.scalar("frame_rate", "number")
    steps = reader.scalar("num_inference_steps", "int?")
    audio, enhance = reader.scalar("audio", "bool"), reader.scalar("enhance_prompt", "bool")
    pipeline_text = reader.scalar("pipeline", "str")
    problem = text_problem(negative, ctx.limits) if isinstance(negative, str) else None
    if problem:
        reader.report("negative_prompt", problem)
    if steps is not None and steps < 1:
        reader.report("num_inference_steps", f"must be >= 1, got {steps}")
    for field, message in value_problems(
        ctx.limits, width=width, height=height, num_frames=num_frames, steps=steps, frame_rate=frame_rate
    ):
        reader.report(field, message)
    upscale = _upscale(reader)
    for field, message in size_problems(width, height, upscale.spatial, upscale.spatial_scale):
        reader.report(field, message)
    for field, message in upsampler_problems(
        width, height, num_frames, upscale.spatial, upscale.spatial_scale
    ):
        reader.report(field, message)
    video_guider, audio_guider = (
        _guider(reader, "video_guider_params"),
        _guider(reader, "audio_guider_params"),
    )
    images = _images(reader, "images", fields.get("images", []), ctx.resolve)
    for i, im in enumerate(images):
        if isinstance(num_frames, int) and num_frames >= 1:
            reader.in_range(
                f"images[{i}].frame_idx", im.frame_idx, 0, num_frames - 1, "must be a frame index"
            )
    loras, videos, tags = _loras(reader, ctx.resolve), _videos(reader, ctx.resolve), _tags(reader)
    audio_input = _audio_input(reader, ctx.resolve)
    # a retake's recipe is the checkpoint's own: guided on a dev checkpoint, distilled sigmas otherwise
    retake = _retake(reader, ctx.resolve, ctx.weights.kind is CheckpointKind.dev)
    requested = PipelineKind.AUTO
    if pipeline_text is not None:
        try:
            requested = PipelineKind(pipeline_text)
        except ValueError:
            valid = [k.value for k in PipelineKind]
            reader.report(
                "pipeline",
                f"must be one of {', '.join(valid)}, got {quote(pipeline_text)}; "
                f"{suggest(pipeline_text[:200], valid)}",
            )
    # Over the limit is already reported; the clamp keeps the rules below (chunk plans) bounded.
    frames = min(num_frames, ctx.limits.max_num_frames) if isinstance(num_frames, int) else 1
    pipeline = select_pipeline(
        requested, (im.frame_idx for im in images), (lo.kind for lo in loras), ctx.weights
    )
    for field, message in weights_problems(requested, pipeline, ctx.weights, upscale):
        reader.report(field, message)
    for field, message in pipeline_problems(
        requested,
        pipeline,
        frames,
        tuple(im.frame_idx for im in images),
        tuple(lo.kind for lo in loras),
        bool(videos),
        ctx.chunking.chunk_frames,
    ):
        reader.report(field, message)
    for field, message in hq_problems(pipeline, upscale):
        reader.report(field, message)
    for field, message in a2vid_problems(pipeline, audio_input is not None, upscale, bool(audio)):
        reader.report(field, message)
    for field, message in retake_problems(pipeline, retake is not None, upscale):
        reader.report(field, message)
    mode = select_mode(pipeline, frames, ctx.chunking.chunk_frames)
    for field, message in mode_problems(mode, upscale):
        reader.report(field, message)
    for field, message in frame_problems(num_frames, frame_rate, chained=mode is RenderMode.CHAINED):
        reader.report(field, message)
    if mode is RenderMode.CHAINED:
        chunking = ctx.chunking
        chunks = chunk_estimate(frames, chunking.chunk_frames, chunking.overlap_frames)
        for field, message in chunk_problems(
            ctx.limits, chunks, chunking.chunk_frames, chunking.overlap_frames
        ):
            reader.report(field, message)
    chunk_prompts, chunk_images = _chunk_rules(reader, mode, frames, ctx.chunking, ctx.resolve)
    if reader.bad:
        return None
    return RenderJob(
        name="",
        prompt="",
        width=width,
        height=height,
        num_frames=num_frames,
        frame_rate=float(frame_rate),
        seed=0,
        pipeline=pipeline,
        mode=mode,
        negative_prompt=negative,
        num_inference_steps=steps,
        video_guider_params=video_guider,
        audio_guider_params=audio_guider,
        images=images,
        loras=loras,
        video_conditioning=videos,
        audio_conditioning=audio_input,
        retake=retake,
        audio=audio,
        enhance_prompt=enhance,
        upscale=upscale,
        chunking=ctx.chunking,
        chunk_prompts=chunk_prompts,
        chunk_images=chunk_images,
        tags=tags,
    )


def job_varying(fields: Mapping[str, Any], ctx: JobContext, report: Report) -> tuple[str, str, int] | None:
    """Check one job's name, prompt and seed and derive the seed (the seed rule reads all `fields`);
    (name, prompt, seed), or None when anything was reported."""
    name, prompt, seed = fields.get("name"), fields.get("prompt"), fields.get("seed")
    if (  # the common case, checked without the reader (this runs once per expanded job)
        isinstance(name, str)
        and isinstance(prompt, str)
        and prompt.strip()
        and text_problem(prompt, ctx.limits) is None
        and (seed is None or (is_int(seed) and 0 <= seed <= MAX_SEED))
        and ctx.seed_override is None
    ):
        return name, prompt, seed if seed is not None else job_seed(fields, None, ctx)
    reader = _Reader(fields, report, ctx.limits)
    name, prompt = reader.scalar("name", "str"), reader.scalar("prompt", "str")
    if isinstance(prompt, str) and not prompt.strip():
        reader.report("prompt", "is empty; describe the clip to render")
    problem = text_problem(prompt, ctx.limits) if isinstance(prompt, str) else None
    if problem:
        reader.report("prompt", problem)
    seed = _seed(reader, ctx)
    if reader.bad or seed is None:
        return None
    return name, prompt, seed


def parse_job(fields: Mapping[str, Any], ctx: JobContext, report: Report, index: int = 0) -> RenderJob | None:
    """Type-check, validate and convert one expanded job (at `index` in the expanded manifest); None when
    anything was reported."""
    varying = job_varying(fields, ctx, report)
    template = parse_template(fields, ctx, report)
    if template is None or varying is None:
        return None
    name, prompt, seed = varying
    return varied_job(template, name=name, prompt=prompt, seed=seed, index=index)
