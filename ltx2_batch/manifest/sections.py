"""The readers of a job's nested sections: guider params, upscale, images, LoRAs, reference videos and
tags, each turned into its `core.jobs` value with every problem reported (a2vid's driving audio and a
retake's source, which are judged against the clip, are `media_sections.py`'s).

Owns each section's value rules (strength ranges, the upscale scales) and the reading of the input files a
section names, through the loader's resolver. The keys, kinds and defaults come from `vocabulary`'s
tables. Must not judge a section against the pipeline or the rest of the job (`select.py` and
`job_rules.py` do) nor open a file except through the resolver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ltx2_batch.core.jobs import (
    X2,
    GuiderSpec,
    ImageCondition,
    LoraKind,
    LoraSpec,
    UpscaleSpec,
    VideoCondition,
)
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.reader import FieldReader, report_all
from ltx2_batch.manifest.resolver import InputKind, ResolvedInput
from ltx2_batch.manifest.select import SPATIAL_SCALES
from ltx2_batch.manifest.suggest import check_mapping
from ltx2_batch.manifest.values import is_int, is_number, type_name
from ltx2_batch.manifest.vocabulary import (
    GUIDER,
    IMAGE,
    LORA,
    UPSCALE,
    VIDEO,
)

LORA_STRENGTH_RANGE = (-2.0, 2.0)


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
            f"must be true or 2 (x2 two-stage), false (one stage) or 1.5 (x1.5 upsampler), got {quote(raw)}",
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
    """`loras: [{path, strength, type}]`: each file resolved and checked, its kind `lora` or `ic_lora`."""
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
    """`video_conditioning: [{path, strength}]`: the IC-LoRA reference videos, each resolved and checked."""
    out = []
    for i, item in enumerate(reader.items("video_conditioning", VIDEO)):
        where = f"video_conditioning[{i}]"
        strength = reader.item_number(where, item, VIDEO, "strength")
        reader.in_range(f"{where}.strength", strength, 0.0, 1.0)
        found = _input(reader, where, item, InputKind.VIDEO)
        out.append(VideoCondition(found.path, strength, found.sha256))
    return tuple(out)


def tags(reader: FieldReader) -> tuple[tuple[str, str], ...]:
    """Free-form labels: a string stays as written, anything else is stored as its JSON text."""
    value = reader.fields.get("tags", {})
    if not isinstance(value, dict):
        reader.report("tags", f"must be a mapping, got {type_name(value)}")
        return ()
    return tuple(sorted((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()))
