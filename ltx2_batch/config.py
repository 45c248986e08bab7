"""Structured configs: the typed schema behind every YAML file under `conf/`.

Registered in Hydra's ConfigStore by the CLI (the only module that imports Hydra), so an unknown key or a
wrong type in a config file or on the command line is a Hydra error. After composition the CLI turns the
DictConfig into these dataclasses with `OmegaConf.to_object`; nothing downstream sees a DictConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from ltx2_batch.core.families import CheckpointKind, ModelFamily
from ltx2_batch.errors import ConfigError
from ltx2_batch.manifest.limits import DEFAULT_LIMITS as _LIMITS


# Member names are lower case because OmegaConf matches enum values in YAML by member name.
class ModelSource(str, Enum):
    """`model.source`: where the weights come from (backends/weights.py)."""

    tiny = "tiny"  # embedded default: built locally, cached under <models root>/tiny/
    checkpoint = "checkpoint"  # real Lightricks weights under the models root
    random = "random"  # full-size official configs, random weights built on the device (benchmarks)
    fake = "fake"  # no model: synthetic numpy clips, to test the plumbing (backends/fake.py)


class OverlapMode(Enum):
    """`output.overlap` (worker/overlap.py). A plain Enum: as a `str` subclass its member `encode` would
    shadow `str.encode` (`OverlapMode.auto.encode()` raised TypeError)."""

    auto = "auto"
    off = "off"
    encode = "encode"
    decode = "decode"


class VerifyMode(str, Enum):
    """How a resumed run checks a job recorded done before skipping it (and the export before packing it)."""

    cheap = "cheap"  # the container is whole (MP4 boxes, PNG end), the sidecar parses and agrees: no decoding
    full = "full"  # cheap, then decode the file and count its frames


class EngineKind(str, Enum):
    """`engine.kind`: render in this process, or on Ray actors (local or a cluster)."""

    local = "local"
    ray = "ray"


class PoolCommand(str, Enum):
    """`ltx2-batch pool <command>`: warm a pool, show it, or end it (runs nothing else)."""

    up = "up"
    status = "status"
    down = "down"


class Quantization(str, Enum):
    """How the transformer's block matmuls are stored and computed (backends/quantize.py)."""

    none = "none"  # the model's dtype throughout
    fp8_cast = "fp8_cast"  # ltx-core's fp8 policy: weights stored in fp8, upcast to bf16 per matmul (CUDA)
    fp8_scaled = "fp8_scaled"  # torchao: fp8 weights and dynamic fp8 activations, fp8 tensor-core matmuls
    # (torch._scaled_mm); CUDA with compute capability >= 8.9 and the `fp8` extra (torchao) only


class CompileMode(str, Enum):
    """torch.compile on the transformer, applied once when it is built (the first job pays the compile)."""

    off = "off"
    blocks = "blocks"  # each transformer block (identical blocks share one compiled graph: a short compile)
    full = "full"  # the whole transformer as one region


@dataclass
class ModelConfig:
    """Which weights, and how to place them. File names default to Lightricks' published ones."""

    name: str = "tiny"
    source: ModelSource = ModelSource.tiny
    # The family the preset is for (file names, download hints, window length); a checkpoint whose
    # `model_version` metadata names another family is refused when its files are resolved.
    family: ModelFamily = ModelFamily.ltx2
    # Distilled or dev when the checkpoint's file name does not say (a user's own file); null: from the name.
    checkpoint_kind: CheckpointKind | None = None
    # null: the models home ($LTX2_BATCH_MODELS, a checkout's models/, else ~/.cache/ltx2_batch/models),
    # the same from any launch directory; a relative path is taken from the launch directory.
    root: str | None = None
    # Checkpoint preference in order; the first file that exists wins (full precision before fp8).
    checkpoints: list[str] = field(
        default_factory=lambda: [
            "checkpoints/ltx-2-19b-distilled.safetensors",
            "checkpoints/ltx-2-19b-distilled-fp8.safetensors",
        ]
    )
    distilled_lora: str = "checkpoints/ltx-2-19b-distilled-lora-384.safetensors"
    spatial_upsampler: str = "upscalers/ltx-2-spatial-upscaler-x2-1.0.safetensors"
    # `upscale.spatial: 1.5` (only LTX-2.3 publishes one); null: none (the embedded tiny23 set ships its own)
    spatial_upsampler_x1_5: str | None = None
    temporal_upsampler: str = "upscalers/ltx-2-temporal-upscaler-x2-1.0.safetensors"
    gemma_root: str = "text_encoders/gemma3"
    hf_repo: str = "Lightricks/LTX-2"
    device: str = "auto"  # auto = cuda > mps > cpu
    dtype: str = "auto"  # auto = bf16 on CUDA, float32 elsewhere
    allow_fp8: bool = True  # may fp8 files be used and may the memory policy pick fp8_cast (CUDA only)
    # none | fp8_cast | fp8_scaled (see Quantization); fp8 checkpoint files imply fp8_cast
    quantization: Quantization = Quantization.none
    compile: CompileMode = CompileMode.off
    fp8: bool | None = None  # removed (it was `quantization=fp8_cast`): any value is refused, naming the fix
    seed: int = 0  # only for source=tiny/random: the weights' RNG seed
    prompt_cache_size: int = 64  # text encodings kept per worker (LRU; seed sweeps encode a prompt once)


@dataclass
class EngineConfig:
    """`engine.*`: where workers run, how many, what each may use, and whether they belong to a warm pool."""

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
    # A named warm pool (engine=ray): its render actors outlive the launch and serve the next launches with
    # the same weights and code (README, "Warm pools"). null: the launch's actors end with it.
    pool: str | None = None
    pool_idle_s: float | None = 900.0  # a pool actor idle this long exits, freeing its GPU (null: never)
    pool_grow: bool = True  # actors a launch starts stay in the pool; false: they end with the launch


@dataclass
class OutputConfig:
    """`output.*`: where a run's files go (a folder or a bucket) and how they are encoded and written."""

    root: str = "outputs"
    run_name: str | None = None  # default: the manifest's file stem
    video_crf: int = 18
    thumbnail_width: int = 320
    keep_chunks: bool = False  # keep a chained job's chunk files (latents, lossless frames) after stitching
    # What a worker does beside the next job's render (overlap.py; the files are the same bytes):
    # auto = on a CUDA worker, write job n's files and, when it shortens the cycle, decode job n while
    # job n+1 renders; nothing on a CPU worker (its render already uses every core). off | encode (files
    # only) | decode (files and decode, whenever the memory policy leaves room) force one on any device.
    overlap: OverlapMode = OverlapMode.auto
    # Object storage (`root: s3://bucket/runs`, gs://, az://; README "Object storage"). Credentials come the
    # way the store's tools expect (environment, profile, instance role), never from here.
    endpoint_url: str | None = (
        None  # an S3-compatible store (MinIO, R2, Ceph); null: $AWS_ENDPOINT_URL or AWS
    )
    # Each node's local folder jobs render into before they are uploaded; null: $LTX2_BATCH_SCRATCH on that
    # node, else <system temp>/ltx2-batch-scratch-<uid>
    scratch: str | None = None
    upload_part_mb: int = 16  # multipart part size for large files (S3's minimum is 5)
    lease_ttl_s: float = 60.0  # a bucket's writer lease lapses this long after its holder's last heartbeat


class StillsPolicy(str, Enum):
    """Where dataset export puts one-frame jobs (HF's webdataset loader needs one kind per dataset)."""

    separate = "separate"  # image/ and webdataset/image/, never next to a video (names are what
    # Hydra matches: `export.stills=exclude`)
    exclude = "exclude"  # not exported


@dataclass
class ExportConfig:
    """Dataset export after the run (ltx2_batch.export.dataset): `export.dataset=true`,
    `export.webdataset=true`."""

    dataset: bool = False  # clips + metadata.parquet under `dir`
    webdataset: bool = False  # also tar shards of .mp4 + .json per sample (implies dataset)
    dir: str | None = None  # default: <output dir>/dataset
    samples_per_shard: int = 1000
    link: bool = True  # hard-link clips into the dataset when on the same file system, else copy
    thumbnails: bool = False  # also <dir>/thumbnails/<job_id>.jpg, named in the metadata
    stills: StillsPolicy = StillsPolicy.separate  # one-frame jobs: own folder and shards, or exclude


@dataclass
class ChainingConfig:
    """`chaining.*`: how a job longer than one window is cut into overlapping chunks and stitched."""

    # Frames of one window (8k+1). null: the model family's window (LTX-2: 121, LTX-2.3: 481); a larger
    # value than the family's window is refused before any model work.
    chunk_frames: int | None = None
    overlap_frames: int = 24
    condition_on_last_frame: bool = False
    # Seam smoothing, off by default (docs/behaviour.md, "Seam smoothing"): the last `blend` handed-off latent
    # frames are conditioned with a strength fading to 0 (a crossfade into the new chunk) instead of kept
    # clean; `adain` matches each later chunk's per-channel latent mean/std to the first chunk's.
    blend: int = 0
    adain: bool = False

    def with_window(self, window_frames: int) -> ChainingConfig:
        """This config with an unset `chunk_frames` filled in as `window_frames`."""
        return self if self.chunk_frames is not None else replace(self, chunk_frames=window_frames)

    @property
    def window(self) -> int:
        """`chunk_frames`, once resolved against the model family (`with_window`): there is no fallback, so
        no code path can silently use LTX-2's window for an LTX-2.3 model."""
        if self.chunk_frames is None:
            raise ConfigError("chaining.chunk_frames was not resolved against the model family's window")
        return self.chunk_frames


@dataclass
class PathsConfig:
    """`paths.*`: where a manifest's input files may be read from."""

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
    """The whole composed config: one group per section, plus the run's top-level switches."""

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
    shard: str | None = None  # "i/n": this launch renders floor/ceil(N/n) jobs, dealt by position (shard.py)
    seed: int | None = None  # replaces the manifest's base_seed; explicit job seeds are kept (seeds.py)
    batch_jobs: int = 10_000  # prompt-file manifests stream: jobs planned and rendered this many at a time
    progress: bool = True
    verbose: bool = False  # show library warnings and INFO logs (transformers, ltx-core, torch)
    ledger_refresh_s: float = 5.0  # how often jobs.parquet (one row per job) is refreshed during a run
    status: bool = False  # print the output dir's job states (jobs.parquet) instead of running
    pool: PoolCommand | None = None  # `ltx2-batch pool up|status|down`: a warm pool's command, no run
