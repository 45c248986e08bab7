"""The expanded unit of work (`RenderJob`) and its identity.

A RenderJob is fully resolved: absolute input paths, the concrete pipeline kind, an explicit seed. Its id
is a content hash of the normalized render parameters, the model fingerprint and the bytes of its input
files, never of clock times or run ids, so the same manifest always maps to the same ids (and outputs).
The identity rule lives here once: `JobIdentity` (and `compute_job_id`, which goes through it) computes
the canonical text with the prompt and seed left open, so the planner hashes a 100,000-job sweep or a
million-row prompts file at one join and one hash per job. This module is pure: no torch, Ray or Hydra.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB_ID_LENGTH = 16


class PipelineKind(str, enum.Enum):
    """What the user may ask for in a manifest's `pipeline` field."""

    AUTO = "auto"
    TI2VID = "ti2vid"
    DISTILLED = "distilled"
    IC_LORA = "ic_lora"
    KEYFRAME = "keyframe"
    HQ = "hq"  # ti2vid_two_stages_hq: res_2s sampler, the distilled LoRA in both stages
    A2VID = "a2vid"  # a2vid_two_stage: an audio file drives the video (audio frozen in stage 1)
    RETAKE = "retake"  # retake: regenerate a time window of an existing video (one stage, its size)


class RenderMode(str, enum.Enum):
    """How a job is executed once its pipeline is known (docs/behaviour.md, "Pipeline auto-selection")."""

    VIDEO = "video"  # one pipeline call: at most one window, chaining.chunk_frames (by default the family's)
    CHAINED = "chained"  # overlapping chunks with a latent handoff, stitched
    IMAGE = "image"  # one frame, written as a PNG


class LoraKind(str, enum.Enum):
    """A plain LoRA, or an IC-LoRA (conditions on reference videos; only pipeline ic_lora takes one)."""

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
    """One LoRA file at a strength; `sha256` of its bytes puts the file's content into the job's identity."""

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
class AudioCondition:
    """The audio that drives an a2vid job: a file's audio stream from `start_s`, at most `max_duration_s`
    seconds (None: to the end; the pipeline keeps the clip's duration of it)."""

    path: str
    sha256: str = ""
    start_s: float = 0.0
    max_duration_s: float | None = None
    channels: int = 0  # as the file has them (0: not probed); the bytes' digest already covers it


@dataclass(frozen=True)
class RetakeSpec:
    """What a retake job regenerates: `[start_s, end_s)` of the source video (and of its audio), the rest
    kept. `guided`: CFG/STG over the LTX2 schedule (dev checkpoint) or the distilled sigmas."""

    path: str
    sha256: str = ""
    start_s: float = 0.0
    end_s: float = 0.0
    regenerate_video: bool = True
    regenerate_audio: bool = True
    guided: bool = False


X2 = 2.0  # the spatial upsampler's default scale
X1_5 = 1.5  # LTX-2.3's x1.5 spatial upsampler


@dataclass(frozen=True)
class UpscaleSpec:
    """Whether a job refines at full size after the spatial upsampler (and at which scale), and whether it
    doubles its frames with the temporal upsampler."""

    spatial: bool = True
    temporal: bool = False
    spatial_scale: float = X2  # of the spatial upsampler (x2, or x1.5 with LTX-2.3's x1.5 file)


@dataclass(frozen=True)
class ChunkingSpec:
    """Chaining parameters that shape the output of a long job (part of its identity). The manifest loader
    always sets `chunk_frames` to the model family's window (core/families.py: 121 on LTX-2, 481 on
    LTX-2.3); the default only serves jobs built by hand (tests, benchmarks) on LTX-2."""

    chunk_frames: int = 121
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
    audio_conditioning: AudioCondition | None = None  # a2vid only
    retake: RetakeSpec | None = None  # retake only
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
        """Rendered as several overlapping windows and stitched."""
        return self.mode is RenderMode.CHAINED

    @property
    def duration_s(self) -> float:
        """The clip's length in seconds, at the job's frame count and rate."""
        return self.num_frames / self.frame_rate

    @property
    def output_frames(self) -> int:
        """Frames its file must hold: one for an image; 2(n-1)+1 when the temporal upsampler doubles
        8k+1 frames to 16k+1; else `num_frames`. What "done" is checked against, never a count the
        worker wrote down itself."""
        if self.mode is RenderMode.IMAGE:
            return 1
        return 2 * (self.num_frames - 1) + 1 if self.upscale.temporal else self.num_frames

    @property
    def output_frame_rate(self) -> float:
        """The rate its file plays at: twice the job's when temporally upscaled."""
        return self.frame_rate * 2 if self.upscale.temporal else self.frame_rate

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


def _plain(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value, in hot-path order
    # Checked in the order leaves occur (scalars, then known dataclasses), so `is_dataclass`, the slow
    # test, runs once per dataclass type rather than for every float and tuple.
    if isinstance(value, _SCALARS) and not isinstance(value, enum.Enum):
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, float):
        return int(value) if value.is_integer() else value  # 24.0 and 24 are the same frame rate
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        return _plain(value)
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
    for key in ("audio_conditioning", "retake"):  # only a2vid / retake have one: other ids stay as they were
        if params[key] is None:
            params.pop(key)
        else:
            params[key].pop("path")
            params[key].pop("channels", None)  # a fact of the file, whose digest is in the id already
    if job.mode is not RenderMode.CHAINED:
        params.pop("chunking")
    if params["upscale"].get("spatial_scale") == X2 or not job.upscale.spatial:
        params["upscale"].pop("spatial_scale")  # the x2 default: ids from before x1.5 existed stay valid
    if job.pipeline in DISTILLED_SCHEDULE:  # fixed sigmas, no guidance, no negative prompt: not inputs here
        for unused in (
            "num_inference_steps",
            "video_guider_params",
            "audio_guider_params",
            "negative_prompt",
        ):
            params.pop(unused)
    return {"params": params, "model": model_fingerprint}


def identity_text(job: RenderJob, model_fingerprint: str) -> str:
    """The canonical text a job id hashes (see `identity_payload`)."""
    return canonical_json(identity_payload(job, model_fingerprint))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:JOB_ID_LENGTH]


# Stand-ins for the two fields that vary between the jobs of one template (sweep point or prompt-file
# row). NUL characters are escaped by JSON, so the encoded stand-in cannot come from a plain manifest
# string; `JobIdentity` checks that each occurs once and falls back to the full text if not.
_PROMPT_SLOT = "\x00ltx2-prompt\x00"
_SEED_SLOT = "\x00ltx2-seed\x00"
_encode_string = json.encoder.encode_basestring  # what json.dumps(..., ensure_ascii=False) uses for str


class JobIdentity:
    """The identity text of one job with its prompt and seed left open: the job ids of every job that
    differs from it only in name, prompt, seed or index, at the cost of one string join and one hash
    each. `compute_job_id` goes through it too, so there is one identity rule."""

    __slots__ = ("_head", "_job", "_model", "_parts")

    def __init__(self, job: RenderJob, model_fingerprint: str) -> None:
        self._job, self._model = job, model_fingerprint
        payload = identity_payload(job, model_fingerprint)
        payload["params"]["prompt"], payload["params"]["seed"] = _PROMPT_SLOT, _SEED_SLOT
        text = canonical_json(payload)
        prompt_slot, seed_slot = _encode_string(_PROMPT_SLOT), _encode_string(_SEED_SLOT)
        self._parts: tuple[str, str] | None = None
        if text.count(prompt_slot) == 1 and text.count(seed_slot) == 1:
            head, _, rest = text.partition(prompt_slot)
            middle, _, tail = rest.partition(seed_slot)
            if seed_slot not in head:  # sorted keys put `prompt` before `seed`
                self._parts = (middle, tail)
                self._head = hashlib.sha256(head.encode())  # hashed once, copied per job

    def job_id(self, prompt: str, seed: int) -> str:
        """The id of the job with this prompt and seed: one copied hash and one update on the fast path."""
        if self._parts is None:
            varied = dataclasses.replace(self._job, prompt=prompt, seed=seed)
            return _digest(identity_text(varied, self._model))
        middle, tail = self._parts
        digest = self._head.copy()
        digest.update(f"{_encode_string(prompt)}{middle}{int(seed)}{tail}".encode())
        return digest.hexdigest()[:JOB_ID_LENGTH]


def compute_job_id(job: RenderJob, model_fingerprint: str) -> str:
    """`job`'s id under `model_fingerprint`: the same parameters, inputs and weights give the same id."""
    return JobIdentity(job, model_fingerprint).job_id(job.prompt, job.seed)


def with_job_id(job: RenderJob, model_fingerprint: str) -> RenderJob:
    """`job` with its id set: a job must carry one before it is planned or logged."""
    return dataclasses.replace(job, job_id=compute_job_id(job, model_fingerprint))


def varied_job(template: RenderJob, **changes: Any) -> RenderJob:
    """`dataclasses.replace` for the planner's hot loop (one call per expanded job): a copy of the
    template's attributes with `changes` applied, without re-running `__init__` (the template was
    validated, and the changed fields are plain values the caller has checked)."""
    job = object.__new__(RenderJob)
    job.__dict__.update(template.__dict__, **changes)
    return job


def derive_seed(base_seed: int, job_params: dict[str, Any]) -> int:
    """A seed for a job that did not name one: stable across runs, different across jobs."""
    payload = canonical_json({"base_seed": base_seed, "job": job_params})
    return _seed_of(hashlib.sha256(payload.encode()))


def _seed_of(digest: Any) -> int:
    return int.from_bytes(digest.digest()[:4], "big") & 0x7FFFFFFF


class SeedRule:
    """`derive_seed` for jobs whose parameters differ only in `prompt` (a prompts file's rows): the
    canonical text is built once with the prompt left open, as `JobIdentity` does for ids."""

    __slots__ = ("_base", "_head", "_params", "_tail")

    def __init__(self, base_seed: int, job_params: dict[str, Any]) -> None:
        self._base, self._params = base_seed, job_params
        text = canonical_json({"base_seed": base_seed, "job": {**job_params, "prompt": _PROMPT_SLOT}})
        slot = _encode_string(_PROMPT_SLOT)
        self._head, self._tail = None, ""
        if text.count(slot) == 1:
            head, _, self._tail = text.partition(slot)
            self._head = hashlib.sha256(head.encode())

    def seed(self, prompt: str) -> int:
        """What `derive_seed` gives for the row with this prompt, with one copied hash."""
        if self._head is None:
            return derive_seed(self._base, {**self._params, "prompt": prompt})
        digest = self._head.copy()
        digest.update(f"{_encode_string(prompt)}{self._tail}".encode())
        return _seed_of(digest)


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes, read in chunks: how an input file's content enters job identity."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
