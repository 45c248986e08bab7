"""Structured configs: the typed schema behind every YAML file under `conf/`.

Registered in Hydra's ConfigStore by the CLI (the only module that imports Hydra), so an unknown key or a
wrong type in a config file or on the command line is a Hydra error. After composition the CLI turns the
DictConfig into these dataclasses with `OmegaConf.to_object`; nothing downstream sees a DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from ltx2_batch.manifest.limits import DEFAULT_LIMITS as _LIMITS


# Member names are lower case because OmegaConf matches enum values in YAML by member name.
class ModelSource(str, Enum):
    tiny = "tiny"  # embedded default: built locally, cached under models/tiny/
    checkpoint = "checkpoint"  # real Lightricks weights under models/
    random = "random"  # full-size official configs, random weights built on the device (benchmarks)


class VerifyMode(str, Enum):
    """How a resumed run checks a job recorded done before skipping it (and the export before packing it)."""

    cheap = "cheap"  # the container is whole (MP4 boxes, PNG end), the sidecar parses and agrees: no decoding
    full = "full"  # cheap, then decode the file and count its frames


class EngineKind(str, Enum):
    local = "local"
    ray = "ray"


@dataclass
class ModelConfig:
    """Which weights, and how to place them. File names default to Lightricks' published ones."""

    name: str = "tiny"
    source: ModelSource = ModelSource.tiny
    root: str = "models"
    # Checkpoint preference in order; the first file that exists wins (seed 8.2: full > fp8).
    checkpoints: list[str] = field(
        default_factory=lambda: [
            "checkpoints/ltx-2-19b-distilled.safetensors",
            "checkpoints/ltx-2-19b-distilled-fp8.safetensors",
        ]
    )
    distilled_lora: str = "checkpoints/ltx-2-19b-distilled-lora-384.safetensors"
    spatial_upsampler: str = "upscalers/ltx-2-spatial-upscaler-x2-1.0.safetensors"
    temporal_upsampler: str = "upscalers/ltx-2-temporal-upscaler-x2-1.0.safetensors"
    gemma_root: str = "text_encoders/gemma3"
    hf_repo: str = "Lightricks/LTX-2"
    device: str = "auto"  # auto = cuda > mps > cpu
    dtype: str = "auto"  # auto = bf16 on CUDA, float32 elsewhere
    allow_fp8: bool = True
    fp8: bool = False  # force the official fp8 transformer (CUDA only; refused elsewhere); fp8 files imply it
    seed: int = 0  # only for source=tiny/random: the weights' RNG seed
    prompt_cache_size: int = 64  # text encodings kept per worker (LRU; seed sweeps encode a prompt once)


@dataclass
class EngineConfig:
    kind: EngineKind = EngineKind.local
    num_workers: int | None = None  # None: one per GPU, else 1 CPU worker
    gpus_per_worker: float = 1.0
    cpus_per_worker: float = 1.0
    address: str | None = None  # None: start a local Ray; "auto" or ray://host:port joins a cluster
    node_ip_address: str | None = None  # this driver's IP in the cluster; None: Ray's guess (local: loopback)
    num_cpus: int | None = None  # only when starting a local Ray
    num_gpus: int | None = None  # only when starting a local Ray (logical GPUs on a CPU box for tests)
    max_attempts: int = 3  # per job, counting system failures only (worker death)
    start_timeout_s: float = 900.0  # actors must be placed and have built their models within this
    temp_dir: str | None = None


@dataclass
class OutputConfig:
    root: str = "outputs"
    run_name: str | None = None  # default: the manifest's file stem
    video_crf: int = 18
    thumbnail_width: int = 320
    keep_chunk_frames: bool = False  # keep chunks' decoded frames (npz) after stitching; latents always stay
    # Encode job n's MP4 on a worker thread while job n+1 renders (same bytes). null (auto): on for a worker
    # that renders on a CUDA GPU (the encode is CPU work the GPU need not wait for), off on a CPU worker
    # (the render already uses every core).
    overlap_encode: bool | None = None
    # ... and decode job n's latents there too (CUDA: on its own stream), when the memory policy leaves room
    # for a decode beside the next denoise (resident weights); implies overlap_encode. Same bytes.
    # null (auto): on where overlap_encode resolves on and the worker is on CUDA.
    overlap_decode: bool | None = None

    def resolved(self, cuda: bool) -> OutputConfig:
        """The auto (null) overlap settings settled for a worker that renders on CUDA or not."""
        encode = cuda if self.overlap_encode is None else self.overlap_encode
        decode = (cuda and encode) if self.overlap_decode is None else self.overlap_decode
        return replace(self, overlap_encode=encode or decode, overlap_decode=decode)

    @property
    def overlaps(self) -> bool:
        """Whether a worker keeps a second job in flight (its files written while the next one renders)."""
        return bool(self.overlap_encode or self.overlap_decode)


@dataclass
class ExportConfig:
    """Dataset export after the run (ltx2_batch.dataset): `export.dataset=true`, `export.webdataset=true`."""

    dataset: bool = False  # clips + metadata.parquet under `dir`
    webdataset: bool = False  # also tar shards of .mp4 + .json per sample (implies dataset)
    dir: str | None = None  # default: <output dir>/dataset
    samples_per_shard: int = 1000
    link: bool = True  # hard-link clips into the dataset when on the same file system, else copy


@dataclass
class ChainingConfig:
    chunk_frames: int = 121
    overlap_frames: int = 24
    condition_on_last_frame: bool = False


@dataclass
class PathsConfig:
    projects_root: str = "projects"  # `/projects/...` and http(s)://host/projects/... map under it
    allowed_roots: list[str] = field(default_factory=list)  # extra roots input files may live under


@dataclass
class LimitsConfig:
    """Hard maxima a manifest must stay within (`ltx2_batch.manifest.limits.Limits` documents each one);
    raise one on the command line, e.g. `limits.max_num_frames=60001`, when a machine really can."""

    max_width: int = _LIMITS.max_width
    max_height: int = _LIMITS.max_height
    max_num_frames: int = _LIMITS.max_num_frames
    max_chunks: int = _LIMITS.max_chunks
    max_steps: int = _LIMITS.max_steps
    max_frame_rate: float = _LIMITS.max_frame_rate
    max_jobs: int = _LIMITS.max_jobs
    max_prompt_chars: int = _LIMITS.max_prompt_chars
    max_image_pixels: int = _LIMITS.max_image_pixels
    max_manifest_bytes: int = _LIMITS.max_manifest_bytes
    max_yaml_depth: int = _LIMITS.max_yaml_depth
    max_alias_nodes: int = _LIMITS.max_alias_nodes
    max_prompt_line_bytes: int = _LIMITS.max_prompt_line_bytes


@dataclass
class AppConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    chaining: ChainingConfig = field(default_factory=ChainingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    manifest: str = "demo"  # a name under manifests/ or a path to a YAML file
    plan: bool = False  # validate and print the job table, load no model
    force: bool = False  # re-render jobs already done in this output dir
    verify: VerifyMode = VerifyMode.cheap  # how done jobs are checked before they are skipped or exported
    ledger_rebuild: bool = False  # first restore the done set from the sidecars (a damaged ledger.parquet)
    shard: str | None = None  # "i/n": this launch renders a deterministic 1/n of the jobs
    seed: int | None = None  # overrides the manifest's base seed (for `-m seed=1,2,3` sweeps)
    batch_jobs: int = 10_000  # prompt-file manifests stream: jobs planned and rendered this many at a time
    progress: bool = True
