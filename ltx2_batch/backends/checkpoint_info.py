"""What a checkpoint file is, read from its safetensors header alone (never its tensors): the family and
version (`model_version` metadata), distilled or dev (the file name, else what the caller expected), and
the transformer traits that tell the LTX-2.3 format apart (gated attention, cross-attention AdaLN, the
caption projection in the text encoder, the vocoder with bandwidth extension).

Owns: `read_safetensors_header` / `read_safetensors_metadata` (8-byte length + JSON header; bounded read),
`checkpoint_info`, and `truncation_problem` (the file is as long as its header says: a cut download is found
on the driver, from the header alone, instead of failing every job in the worker with "incomplete
metadata").
Must not: import torch, safetensors or ltx_core (the driver calls it), read tensor data, or guess: a field
the header lacks is reported as absent.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ltx2_batch.core.families import CheckpointKind, ModelFamily, family_for_version, kind_from_name
from ltx2_batch.errors import ConfigError

HEADER_LIMIT = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB
LENGTH_BYTES = 8  # a safetensors file opens with its header length, a little-endian u64


@dataclass(frozen=True)
class CheckpointInfo:
    """What one checkpoint's header says about it; a trait the header lacks reads False."""

    path: str
    family: ModelFamily
    model_version: str  # "" when the metadata has none (LTX-2 checkpoints may not carry one)
    kind: CheckpointKind | None  # None when neither the name nor the caller says
    gated_attention: bool
    cross_attention_adaln: bool
    caption_projection_in_text_encoder: bool  # the 2.3 text feature extractor ("V2")
    vocoder_bwe: bool  # the vocoder with bandwidth extension (48 kHz)

    @property
    def has_2_3_format(self) -> bool:
        """All three LTX-2.3 transformer and text-encoder traits are present."""
        return self.gated_attention and self.cross_attention_adaln and self.caption_projection_in_text_encoder


def _read_header(path: Path) -> tuple[int, dict[str, object]]:
    """(header length, header) of a safetensors file; ConfigError naming the file when it is not one."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(LENGTH_BYTES)
            if len(raw) != LENGTH_BYTES:
                raise ConfigError(f"{path}: too short to be a safetensors file")
            (length,) = struct.unpack("<Q", raw)
            if length > HEADER_LIMIT:
                raise ConfigError(f"{path}: safetensors header of {length} bytes exceeds {HEADER_LIMIT}")
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read its safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise ConfigError(f"{path}: safetensors header is not a JSON object")
    return length, header


def read_safetensors_header(path: str | Path) -> dict[str, object]:
    """The JSON header of a safetensors file (tensor name -> {dtype, shape, data_offsets}, and
    `__metadata__`); ConfigError naming the file when it is not a safetensors file."""
    return _read_header(Path(path))[1]


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The `__metadata__` map of a safetensors file ({} when it has none); ConfigError naming the file when
    it is not a safetensors file."""
    _, header = _read_header(Path(path))
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: its safetensors `__metadata__` is not a map")
    return {str(k): str(v) for k, v in meta.items()}


def truncation_problem(path: str | Path) -> str | None:
    """Why a safetensors file is not whole (shorter than its header's last tensor ends, or not a safetensors
    file at all), or None. Reads the header only."""
    path = Path(path)
    try:
        length, header = _read_header(path)
    except ConfigError as exc:
        return str(exc)
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets") or ()) == 2  # noqa: PLR2004 - [begin, end]
    ]
    needed = LENGTH_BYTES + length + max(ends, default=0)
    size = path.stat().st_size
    if size < needed:
        return (
            f"{path}: {size:,} bytes, its header needs {needed:,}: the file is incomplete (an interrupted "
            "download or copy?); download it again"
        )
    return None


def checkpoint_info(path: str | Path, expected_kind: CheckpointKind | None = None) -> CheckpointInfo:
    """Family/version from `model_version`, kind from the file name (else `expected_kind`), format traits
    from the `config` metadata."""
    meta = read_safetensors_metadata(path)
    version = meta.get("model_version", "")
    try:
        config = json.loads(meta.get("config", "{}"))
    except ValueError as exc:
        raise ConfigError(f"{path}: its `config` metadata is not JSON ({exc})") from exc
    transformer = config.get("transformer", {}) if isinstance(config, dict) else {}
    vocoder = config.get("vocoder", {}) if isinstance(config, dict) else {}
    return CheckpointInfo(
        path=str(path),
        family=family_for_version(version),
        model_version=version,
        kind=kind_from_name(Path(path).name) or expected_kind,
        gated_attention=bool(transformer.get("apply_gated_attention", False)),
        cross_attention_adaln=bool(transformer.get("cross_attention_adaln", False)),
        caption_projection_in_text_encoder=bool(transformer.get("caption_proj_before_connector", False)),
        vocoder_bwe=isinstance(vocoder, dict) and "bwe" in vocoder,
    )
