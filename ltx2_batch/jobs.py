"""The expanded unit of work (`RenderJob`) and its identity.

A RenderJob is fully resolved: absolute input paths, the concrete pipeline kind, an explicit seed. Its id
is a content hash of the normalized render parameters, the model fingerprint and the bytes of its input
files, never of clock times or run ids, so the same manifest always maps to the same ids (and outputs).
This module is pure: no torch, no Ray, no Hydra.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

MAX_CHUNK_FRAMES = 121
JOB_ID_LENGTH = 16


class PipelineKind(str, enum.Enum):
    """What the user may ask for in a manifest's `pipeline` field."""

    AUTO = "auto"
    TI2VID = "ti2vid"
    DISTILLED = "distilled"
    IC_LORA = "ic_lora"
    KEYFRAME = "keyframe"


class RenderMode(str, enum.Enum):
    """How a job is executed once its pipeline is known (docs/behaviour.md, "Pipeline auto-selection")."""

    VIDEO = "video"  # one pipeline call, <= 121 frames
    CHAINED = "chained"  # overlapping chunks with a latent handoff, stitched
    IMAGE = "image"  # one frame, written as a PNG


class LoraKind(str, enum.Enum):
    LORA = "lora"
    IC_LORA = "ic_lora"


@dataclass(frozen=True)
class ImageCondition:
    """An image injected at a pixel frame. `path` is absolute and already validated."""

    path: str
    frame_idx: int = 0
    strength: float = 1.0
    sha256: str = ""


@dataclass(frozen=True)
class LoraSpec:
    path: str
    strength: float = 1.0
    kind: LoraKind = LoraKind.LORA
    sha256: str = ""


@dataclass(frozen=True)
class VideoCondition:
    """A reference video for IC-LoRA (the official `video_conditioning` argument)."""

    path: str
    strength: float = 1.0
    sha256: str = ""


@dataclass(frozen=True)
class GuiderSpec:
    """Mirrors ltx_core's MultiModalGuiderParams; None fields take the pipeline's defaults."""

    cfg_scale: float | None = None
    stg_scale: float | None = None
    rescale_scale: float | None = None
    modality_scale: float | None = None
    skip_step: int | None = None
    stg_blocks: tuple[int, ...] | None = None


@dataclass(frozen=True)
class UpscaleSpec:
    spatial: bool = True
    temporal: bool = False


@dataclass(frozen=True)
class ChunkingSpec:
    """Chaining parameters that shape the output of a long job (part of its identity)."""

    chunk_frames: int = MAX_CHUNK_FRAMES
    overlap_frames: int = 24
    condition_on_last_frame: bool = False
    blend: int = 0  # handed-off latent frames whose conditioning fades out (a latent crossfade); 0 = hard
    adain: bool = False  # match each chunk's latent statistics to the first chunk's (limits drift)


@dataclass(frozen=True)
class RenderJob:
    """One clip to render. Frozen: it crosses process boundaries (Ray) as a plain value."""

    name: str
    prompt: str
    width: int
    height: int
    num_frames: int
    frame_rate: float
    seed: int
    pipeline: PipelineKind  # concrete: never AUTO
    mode: RenderMode
    negative_prompt: str = ""
    num_inference_steps: int | None = None
    video_guider_params: GuiderSpec = GuiderSpec()
    audio_guider_params: GuiderSpec = GuiderSpec()
    images: tuple[ImageCondition, ...] = ()
    loras: tuple[LoraSpec, ...] = ()
    video_conditioning: tuple[VideoCondition, ...] = ()
    audio: bool = True
    enhance_prompt: bool = False
    upscale: UpscaleSpec = UpscaleSpec()
    chunking: ChunkingSpec = ChunkingSpec()
    chunk_prompts: tuple[str, ...] = ()
    chunk_images: tuple[tuple[ImageCondition, ...], ...] = ()
    after: str = ""  # storyboard: job id of the previous shot, whose last frame conditions this one
    scene: str = ""  # storyboard scene name: shots of one scene run in order (metadata, not identity)
    tags: tuple[tuple[str, str], ...] = ()  # free metadata: not part of identity
    index: int = 0  # position in the expanded manifest: not part of identity
    job_id: str = field(default="", compare=False)

    @property
    def is_chained(self) -> bool:
        return self.mode is RenderMode.CHAINED

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.frame_rate

    @property
    def lora_set(self) -> tuple[tuple[str, float], ...]:
        """Hashable LoRA identity used to group jobs that share a loaded model."""
        return tuple((lo.sha256 or lo.path, lo.strength) for lo in self.loras)


# Pipelines that run the distilled sigma schedule without guidance (the official DistilledPipeline and
# ICLoraPipeline take no steps, guider parameters or negative prompt): a sweep over those fields would
# render the same clip under different ids.
DISTILLED_SCHEDULE = frozenset({PipelineKind.DISTILLED, PipelineKind.IC_LORA})

_NON_IDENTITY_FIELDS = frozenset({"name", "tags", "index", "job_id", "scene"})


_SCALARS = (str, int, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    if isinstance(value, _SCALARS) and not isinstance(value, enum.Enum):  # hot path: most leaves
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 24.0 and 24 are the same frame rate
    return value


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace, enums as values, integral floats as ints."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def identity_payload(job: RenderJob, model_fingerprint: str) -> dict[str, Any]:
    """What a job id hashes: render parameters, file digests (not paths), and the model."""
    params = {k: v for k, v in _plain(job).items() if k not in _NON_IDENTITY_FIELDS}
    for key in ("images", "loras", "video_conditioning"):
        for item in params[key]:
            item.pop("path")  # bytes decide identity, not where the file sits
    for chunk in params["chunk_images"]:
        for item in chunk:
            item.pop("path")
    if job.mode is not RenderMode.CHAINED:
        params.pop("chunking")
    if job.pipeline in DISTILLED_SCHEDULE:  # fixed sigmas, no guidance, no negative prompt: not inputs here
        for unused in (
            "num_inference_steps",
            "video_guider_params",
            "audio_guider_params",
            "negative_prompt",
        ):
            params.pop(unused)
    return {"params": params, "model": model_fingerprint}


def compute_job_id(job: RenderJob, model_fingerprint: str) -> str:
    digest = hashlib.sha256(canonical_json(identity_payload(job, model_fingerprint)).encode())
    return digest.hexdigest()[:JOB_ID_LENGTH]


def with_job_id(job: RenderJob, model_fingerprint: str) -> RenderJob:
    return dataclasses.replace(job, job_id=compute_job_id(job, model_fingerprint))


def derive_seed(base_seed: int, job_params: dict[str, Any]) -> int:
    """A seed for a job that did not name one: stable across runs, different across jobs."""
    payload = canonical_json({"base_seed": base_seed, "job": job_params})
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:4], "big") & 0x7FFFFFFF


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
