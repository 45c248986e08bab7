"""The readers of a job's nested sections: guider params, upscale, images, LoRAs, reference videos, driving
audio, retake and tags, each turned into its `core.jobs` value with every problem reported.

Owns each section's value rules (strength ranges, the upscale scales, a retake window inside its source,
an audio start inside its file) and the reading of the input files a section names, through the loader's
resolver. The keys, kinds and defaults come from `vocabulary`'s tables. Must not judge a section against
the pipeline or the rest of the job (`select.py` and `job_rules.py` do) nor open a file except through
the resolver and `inputs.py`'s one-frame probes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ltx2_batch.core.jobs import (
    X2,
    AudioCondition,
    GuiderSpec,
    ImageCondition,
    LoraKind,
    LoraSpec,
    RetakeSpec,
    UpscaleSpec,
    VideoCondition,
)
from ltx2_batch.manifest.inputs import audio_duration_s, video_facts
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import FieldReader, report_all
from ltx2_batch.manifest.resolver import InputKind, ResolvedInput
from ltx2_batch.manifest.select import SPATIAL_SCALES
from ltx2_batch.manifest.suggest import check_mapping
from ltx2_batch.manifest.values import is_int, is_number, type_name
from ltx2_batch.manifest.vocabulary import (
    AUDIO,
    BUILTIN_DEFAULTS,
    GUIDER,
    IMAGE,
    LORA,
    RETAKE,
    UPSCALE,
    VIDEO,
)

LORA_STRENGTH_RANGE = (-2.0, 2.0)
_SOURCE_END_SLACK_S = 1e-6  # a retake window may end at the source's last frame, give or take rounding


def guider(reader: FieldReader, key: str) -> GuiderSpec:
    """`video_guider_params` / `audio_guider_params`: a missing or null value takes the pipeline's own."""
    value = reader.fields.get(key, {})
    report_all(reader.report, check_mapping(value, GUIDER, key))
    if not isinstance(value, dict):
        return GuiderSpec()
    cfg, stg, rescale, modality = (
        _set_number(reader, key, value, name)
        for name in ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale")
    )
    skip = reader.value(key, value, GUIDER, "skip_step") if value.get("skip_step") is not None else None
    blocks = value.get("stg_blocks")
    stg_blocks = None
    if blocks is not None:
        if isinstance(blocks, list) and all(is_int(b) and b >= 0 for b in blocks):
            stg_blocks = tuple(blocks)
        else:
            reader.report(
                f"{key}.stg_blocks", f"must be a list of non-negative integers, got {quote(blocks)}"
            )
    return GuiderSpec(cfg, stg, rescale, modality, skip if is_int(skip) else None, stg_blocks)


def _set_number(reader: FieldReader, key: str, value: Mapping[str, object], name: str) -> float | None:
    """A guider number that was set (not missing, not null), as a float; None otherwise or when reported."""
    number = reader.value(key, value, GUIDER, name) if value.get(name) is not None else None
    return float(number) if is_number(number) else None


def upscale(reader: FieldReader) -> UpscaleSpec:
    """`upscale: {spatial, temporal}`; `spatial` may name the upsampler's scale: 2 (= true) or 1.5."""
    value = reader.fields.get("upscale", {})
    report_all(reader.report, check_mapping(value, UPSCALE, "upscale"))
    if not isinstance(value, dict):
        return UpscaleSpec()
    raw = value.get("spatial", UPSCALE["spatial"].default)
    spatial, scale = True, X2
    if isinstance(raw, bool):
        spatial = raw
    elif is_number(raw) and float(raw) in SPATIAL_SCALES:
        scale = float(raw)
    else:
        reader.report(
            "upscale.spatial",
            f"must be true or false (x2 two-stage, or one stage), or 1.5 (x1.5 upsampler), got {quote(raw)}",
        )
    return UpscaleSpec(
        spatial=spatial,
        temporal=reader.item_flag("upscale", value, UPSCALE, "temporal"),
        spatial_scale=scale,
    )


def _input(reader: FieldReader, where: str, item: Mapping[str, object], kind: InputKind) -> ResolvedInput:
    """The file an item's `path` names (a missing path is already reported as required)."""
    if "path" not in item:
        return ResolvedInput()
    return reader.input_file(f"{where}.path", item["path"], kind)


def images(reader: FieldReader, key: str, raw: object) -> tuple[ImageCondition, ...]:
    """A list of `{path, frame_idx, strength}` at `key` (`images`, or one chunk's `chunk_images[c]`)."""
    out = []
    for i, item in enumerate(reader.item_list(key, raw, IMAGE)):
        where = f"{key}[{i}]"
        frame_idx = reader.item_int(where, item, IMAGE, "frame_idx")
        strength = reader.item_number(where, item, IMAGE, "strength")
        reader.in_range(f"{where}.strength", strength, 0.0, 1.0)
        found = _input(reader, where, item, InputKind.IMAGE)
        out.append(ImageCondition(found.path, frame_idx, strength, found.sha256))
    return tuple(out)


def loras(reader: FieldReader) -> tuple[LoraSpec, ...]:
    out = []
    for i, item in enumerate(reader.items("loras", LORA)):
        where = f"loras[{i}]"
        strength = reader.item_number(where, item, LORA, "strength")
        reader.in_range(f"{where}.strength", strength, *LORA_STRENGTH_RANGE)
        kind_text = reader.item_text(where, item, LORA, "type")
        try:
            kind = LoraKind(kind_text)
        except ValueError:
            valid = [k.value for k in LoraKind]
            reader.report(f"{where}.type", f"must be one of {', '.join(valid)}, got {quote(kind_text)}")
            kind = LoraKind.LORA
        found = _input(reader, where, item, InputKind.LORA)
        out.append(LoraSpec(found.path, strength, kind, found.sha256))
    return tuple(out)


def videos(reader: FieldReader) -> tuple[VideoCondition, ...]:
    out = []
    for i, item in enumerate(reader.items("video_conditioning", VIDEO)):
        where = f"video_conditioning[{i}]"
        strength = reader.item_number(where, item, VIDEO, "strength")
        reader.in_range(f"{where}.strength", strength, 0.0, 1.0)
        found = _input(reader, where, item, InputKind.VIDEO)
        out.append(VideoCondition(found.path, strength, found.sha256))
    return tuple(out)


def audio_input(reader: FieldReader) -> AudioCondition | None:
    """`audio_conditioning: {path, start, max_duration}`: the file probed (an audio stream that decodes,
    long enough to start at `start`) and hashed like images."""
    value = reader.fields.get("audio_conditioning")
    if value is None:
        return None
    report_all(reader.report, check_mapping(value, AUDIO, "audio_conditioning"))
    if not isinstance(value, dict):
        return None
    if "path" not in value:
        reader.report("audio_conditioning.path", "is required (the audio file that drives the video)")
        return None
    start = reader.item_number("audio_conditioning", value, AUDIO, "start")
    raw_limit = value.get("max_duration")
    limit = raw_limit if is_number(raw_limit) else None
    if raw_limit is not None and limit is None:
        reader.report(
            "audio_conditioning.max_duration", f"must be a number of seconds, got {quote(raw_limit)}"
        )
    if start < 0:
        reader.report("audio_conditioning.start", f"must be >= 0 seconds, got {start:g}")
    if limit is not None and limit <= 0:
        reader.report("audio_conditioning.max_duration", f"must be > 0 seconds, got {limit:g}")
    found = reader.input_file("audio_conditioning.path", value["path"], InputKind.AUDIO)
    if found.path and not found.error:
        duration = audio_duration_s(found.path)
        if duration is not None and start >= duration:
            reader.report(
                "audio_conditioning.start",
                f"{start:g} s is past the end of the audio ({duration:.3f} s); start earlier",
            )
    return AudioCondition(found.path, found.sha256, start, None if limit is None else float(limit))


def retake(reader: FieldReader, guided: bool) -> RetakeSpec | None:
    """`retake: {path, start, end, regenerate_video, regenerate_audio}`: the source probed (it decodes; the
    window lies inside it) and hashed like images. The job renders at the source's size, length and rate."""
    value = reader.fields.get("retake")
    if value is None:
        return None
    report_all(reader.report, check_mapping(value, RETAKE, "retake"))
    if not isinstance(value, dict):
        return None
    required = [key for key, spec in RETAKE.items() if spec.required]
    for key in required:
        if key not in value:
            reader.report(f"retake.{key}", "is required (the source video and the window to regenerate, s)")
    if not all(key in value for key in required):
        return None
    # a start or end of the wrong kind is reported; the window is then checked as if it were 0
    start, end = (reader.value("retake", value, RETAKE, key) for key in ("start", "end"))
    start_s, end_s = (float(v) if is_number(v) else 0.0 for v in (start, end))
    if not 0 <= start_s < end_s:
        reader.report("retake.end", f"the window must satisfy 0 <= start < end, got [{start_s:g}, {end_s:g}]")
    found = reader.input_file("retake.path", value["path"], InputKind.VIDEO)
    if found.path and not found.error:
        _retake_source_rules(reader, found.path, end_s)
    return RetakeSpec(
        found.path,
        found.sha256,
        start_s,
        end_s,
        reader.item_flag("retake", value, RETAKE, "regenerate_video"),
        reader.item_flag("retake", value, RETAKE, "regenerate_audio"),
        guided,
    )


def _retake_source_rules(reader: FieldReader, path: str, end_s: float) -> None:
    """A retake renders at its source's size, length and rate, and its window ends inside the source."""
    fps, frames, width, height = video_facts(path)
    for key, want in (("width", width), ("height", height), ("num_frames", frames), ("frame_rate", fps)):
        got = reader.fields.get(key, BUILTIN_DEFAULTS.get(key))
        if got != want:
            reader.report(
                key,
                f"a retake renders at its source's {key} ({want:g}), got {quote(got)}: set {key}: {want:g}",
            )
    if fps and end_s > frames / fps + _SOURCE_END_SLACK_S:
        reader.report("retake.end", f"{end_s:g} s is past the end of the source ({frames / fps:.3f} s)")


def tags(reader: FieldReader) -> tuple[tuple[str, str], ...]:
    """Free-form labels: a string stays as written, anything else is stored as its JSON text."""
    value = reader.fields.get("tags", {})
    if not isinstance(value, dict):
        reader.report("tags", f"must be a mapping, got {type_name(value)}")
        return ()
    return tuple(sorted((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()))
