"""`Ltx2Backend`: the RenderBackend on Lightricks' official building blocks, rendering through the recipe
modules of this package (recipes.RECIPES).

Owns: the model set of one backend (the official ModelLedger builders, held across jobs in caches.ModelCache
instead of rebuilt per call; the dtype from the DevicePolicy instead of a hard-coded bf16; fp8 and the
transformer preparation of quantize.py; where the weights come from is the WeightsSource's business), the
memory policy applied to it (memory.py: text encoder parked after encoding, tiled decode, fp8), the checks
every recipe shares (sizes, upsampler files, the family's window), resolving a job's recipe once, and the
entry points: `render`, `denoise` (the decode later, on another thread and, on CUDA, its own stream, so it
overlaps the next job's denoise) and `reporting_steps` (the denoising steps counted inside the official
loops, step_progress.py).
Must not: run a recipe's stages (the recipe modules do), write files, choose devices (device.py), be imported
before the compat shims are applied (make it through backends.factory), or leak torch types into the pure
core except as the opaque tensors RenderResult carries. Just over 400 lines: loading, the memory policy and
the entry points share one state (the model cache, the ledger, the memory plan), so they stay one class.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.quantization import QuantizationPolicy
from ltx_pipelines.utils import ModelLedger
from ltx_pipelines.utils.constants import PipelineParams, detect_params
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_batch.backends import compat
from ltx2_batch.backends.base import PendingDecode, RenderRequest, RenderResult
from ltx2_batch.backends.caches import ModelCache, PromptCache
from ltx2_batch.backends.device import DevicePolicy
from ltx2_batch.backends.lora_check import LoraCheck
from ltx2_batch.backends.ltx2.checks import check_job
from ltx2_batch.backends.ltx2.clock import PhaseClock
from ltx2_batch.backends.ltx2.decode import Deferred, Denoised, decode
from ltx2_batch.backends.ltx2.handoff import audio_latents_per_second
from ltx2_batch.backends.ltx2.recipe import Loras, RecipePlan, RecipeRun, transformer_name
from ltx2_batch.backends.ltx2.recipes import resolve
from ltx2_batch.backends.ltx2.text import PromptEncoder
from ltx2_batch.backends.memory import (
    ACTIVATION_BYTES,
    REFERENCE_JOB,
    MemoryPlan,
    ModelFootprint,
    choose_memory_policy,
    decode_peak_bytes,
)
from ltx2_batch.backends.models import ModelFiles
from ltx2_batch.backends.quantize import NO_PREP, TransformerPrep, prepare_transformer
from ltx2_batch.backends.weights import WeightsSource
from ltx2_batch.core.jobs import X1_5, LoraSpec, PipelineKind, RenderJob
from ltx2_batch.core.step_events import StageSteps, StepListener

# Built by `prepare` (or on first use) and kept across pipeline switches: every recipe reads them
SHARED_MODULES = (
    "text_encoder",
    "embeddings_processor",
    "video_encoder",
    "video_decoder",
    "audio_decoder",
    "audio_encoder",
    "vocoder",
    "spatial_upsampler",
    "spatial_upsampler_x1_5",
    "temporal_upsampler",
)
log = logging.getLogger(__name__)


class Ltx2Backend:
    """A warm LTX-2 model set in one process. One render at a time (one per Ray actor); the only concurrency
    it allows is one pending decode (from `denoise`) running beside the next denoise.

    Several backends (model families, dtypes) may live in one process: the only process-wide state ltx-core
    has, its Gemma config constant, is pointed at this backend's Gemma folder just for the calls that build
    or run its text encoder, and restored after (text.PromptEncoder.gemma_scope).

    It is also the `Models` view (recipe.py) the recipes read their built models through."""

    def __init__(
        self,
        files: ModelFiles,
        policy: DevicePolicy,
        weights: WeightsSource,
        *,
        force_fp8: bool = False,
        transformer_prep: TransformerPrep = NO_PREP,
        prompt_cache_size: int = 64,
        free_bytes: int | None = None,
    ) -> None:
        """`weights`: where the tensors come from (read from `files`, or generated for a header-only set).
        `free_bytes`: device memory free at start (None: host memory), from which the memory policy is
        chosen. `transformer_prep`: fp8_scaled quantization / torch.compile applied to each transformer as it
        is built (quantize.py). Build it with backends.factory.create_backend, which applies the compat shims
        first."""
        if files.checkpoint is None or files.gemma_root is None:
            files.require(("checkpoint", "gemma_root"))
        self.files = files
        self.policy = policy
        self.weights = weights
        self.free_bytes = free_bytes
        self.device = torch.device(policy.device)
        self.dtype = getattr(torch, policy.dtype)
        fp8 = (files.is_fp8 or force_fp8) and policy.allow_fp8
        self.quantization = QuantizationPolicy.fp8_cast() if fp8 else None
        self.transformer_prep = transformer_prep
        self.params: PipelineParams = detect_params(str(files.checkpoint))
        self.components = PipelineComponents(dtype=self.dtype, device=self.device)
        self._ledger = self._make_ledger()
        self.cache = ModelCache(policy.device, keep_always=SHARED_MODULES)
        self.prompts = PromptCache(prompt_cache_size)
        # the Gemma folder describes itself (tiny or 12B); read once, applied around each use
        self.text = PromptEncoder(
            self.cache, self.prompts, compat.read_gemma_config(files.path_of("gemma_root"))
        )
        self.memory_plan: MemoryPlan | None = None
        self._plan: tuple[tuple[PipelineKind, tuple[LoraSpec, ...]], RecipePlan] | None = None
        self._warm: tuple[PipelineKind, tuple[LoraSpec, ...]] | None = None
        self._decode_stream: Any = None  # CUDA: the stream overlapped decodes run on (made on first use)
        self._step_listener: StepListener | None = None  # set by reporting_steps
        self._lora_check = LoraCheck(self.files.path_of("checkpoint"))  # each LoRA file's header read once

    def _make_ledger(self) -> ModelLedger:
        ledger = ModelLedger(
            dtype=self.dtype,
            device=self.device,
            checkpoint_path=str(self.files.checkpoint),
            gemma_root_path=str(self.files.gemma_root),
            spatial_upsampler_path=(
                str(self.files.spatial_upsampler) if self.files.spatial_upsampler else None
            ),
            quantization=self.quantization,
        )
        return self.weights.loading(ledger, self.dtype)

    @property
    def audio_latents_per_second(self) -> float:
        """Audio latent frames per second of video time (25 on ltx-core's audio latent grid)."""
        return audio_latents_per_second()

    @property
    def temporal_scale(self) -> int:
        """Pixel frames per latent frame after the first, from ltx-core's VAE scale factors (8)."""
        return int(self.components.video_scale_factors.time)

    # ------------------------------------------------------------------------------------------ recipes
    def _resolve(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> RecipePlan:
        """The job's recipe and stage LoRAs; the last one is kept, so the executor's check, prepare and
        render of one job resolve it once."""
        key = (pipeline, loras)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, resolve(pipeline, loras, self.files))
        return self._plan[1]

    # ------------------------------------------------------------------------------------------ loading
    def prepare(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> float:
        """Build what the job's recipe needs (shared models, each stage's transformer) per the memory plan."""
        return self._prepare(self._resolve(pipeline, loras), (pipeline, loras))

    def _prepare(self, plan: RecipePlan, key: tuple[PipelineKind, tuple[LoraSpec, ...]]) -> float:
        if self._warm == key:
            return 0.0
        wanted = {
            name: getattr(self._ledger, method)
            for name, method in (
                ("text_encoder", "text_encoder"),
                ("embeddings_processor", "gemma_embeddings_processor"),
                ("video_encoder", "video_encoder"),
                ("video_decoder", "video_decoder"),
                ("audio_decoder", "audio_decoder"),
                ("vocoder", "vocoder"),
            )
        }
        if self.files.spatial_upsampler is not None:
            wanted["spatial_upsampler"] = self._ledger.spatial_upsampler
        for stage_loras in (plan.loras.stage1, plan.loras.stage2):
            wanted[transformer_name(stage_loras)] = self._transformer_builder(stage_loras)
        names = {transformer_name(plan.loras.stage1), transformer_name(plan.loras.stage2)}
        self._apply_memory_plan(len(names))
        with self.text.gemma_scope():  # the Gemma encoder and its embeddings processor read it as they build
            seconds = self.cache.require(wanted)
        self._warm = key
        return seconds

    def _transformer_builder(self, loras: Loras) -> Callable[[], Any]:
        def build() -> Any:
            """The transformer with `loras` fused, in the backend's dtype, quantized or compiled."""
            model = self.weights.loading(self._ledger.with_loras(loras), self.dtype).transformer()
            # ltx-core's LoRA fusion (DummyRegistry path) leaves weights no LoRA touches in the checkpoint's
            # dtype (bf16) whatever dtype was asked for; casting them is exact, as in the no-LoRA path.
            model = model.to(self.dtype) if loras and self.quantization is None else model
            return prepare_transformer(model, self.transformer_prep)  # before its first use

        return build

    # The Models view (recipe.Models): what the recipes read, built by prepare or on first use.
    def transformer(self, loras: Loras) -> Any:
        """The transformer with `loras` fused in (built by `prepare` for the job's recipe)."""
        return self.cache.get(transformer_name(loras))

    def video_encoder(self) -> Any:
        """The video VAE encoder `prepare` loaded (images and latents to condition on)."""
        return self.cache.get("video_encoder")

    def audio_encoder(self) -> Any:
        """The audio VAE encoder, which only a2vid and retake read: built on first use and held."""
        return self.cache.ensure("audio_encoder", self._ledger.audio_encoder)

    def spatial_upsampler(self, scale: float) -> Any:
        """The x2 upsampler `prepare` loaded, or the x1.5 one, built on first use."""
        if scale != X1_5:
            return self.cache.get("spatial_upsampler")
        return self._extra_upsampler("spatial_upsampler_x1_5", self.files.spatial_upsampler_x1_5)

    def temporal_upsampler(self) -> Any:
        """The x2 temporal upsampler, built on first use (MissingWeightsError when the set has none)."""
        if self.files.temporal_upsampler is None:
            self.files.require(("temporal_upsampler",))
        return self._extra_upsampler("temporal_upsampler", self.files.temporal_upsampler)

    def _extra_upsampler(self, name: str, path: Any) -> Any:
        """An upsampler no recipe loads in `prepare`, built from its file on first use and held."""
        builder = self.weights.loading(
            SingleGPUModelBuilder(model_path=str(path), model_class_configurator=LatentUpsamplerConfigurator),
            self.dtype,
        )
        return self.cache.ensure(
            name, lambda: builder.build(device=self.device, dtype=self.dtype).to(self.device).eval()
        )

    def _apply_memory_plan(self, n_transformers: int) -> None:
        """Choose the memory policy from the device's free memory (memory.py) and apply it: which modules may
        be parked on the CPU, fp8 for transformers not built yet, tiled decode (read in _decode)."""
        plan = choose_memory_policy(self.free_bytes, self._footprint(n_transformers))
        # fp8_scaled already quantizes the transformer (fp8_cast on top of it would quantize twice)
        if plan.fp8_transformer and self.quantization is None and not self.transformer_prep.quantizes:
            if any(n.startswith("transformer:") for n in self.cache.names()):
                log.warning("memory policy wants fp8 but a bf16 transformer is already built; keeping it")
            else:
                self.quantization = QuantizationPolicy.fp8_cast()
                self._ledger = self._make_ledger()
        big = _is_big_any if plan.offload_all else _is_text_encoder
        self.cache.set_offload(plan.offload_all or plan.offload_text_encoder, big)
        if plan != self.memory_plan:
            log.info("memory policy %s (%s)", plan.policy.value, plan.reason)
        self.memory_plan = plan

    def _footprint(self, n_transformers: int) -> ModelFootprint:
        """Bytes per group, as the weights source sizes them, plus the activation and decode estimates."""
        elem = torch.empty((), dtype=self.dtype).element_size()
        sizes = self.weights.sizes(
            self.files, n_transformers, elem, self.quantization is not None, self.policy.allow_fp8
        )
        return ModelFootprint(
            transformer=sizes.transformer,
            text_encoder=sizes.text_encoder,
            other=sizes.other,
            activations=ACTIVATION_BYTES * elem // 2,  # the estimates are for bf16 activations
            decode=decode_peak_bytes(*REFERENCE_JOB) * elem // 2,
            transformer_fp8=sizes.transformer_fp8,
        )

    # ------------------------------------------------------------------------------------------ checks
    def check(self, job: RenderJob, *, one_window: bool = True) -> None:
        """What this model set cannot render, before anything is loaded: pipeline/LoRA kinds, a LoRA file
        that would not change this transformer, what the job's recipe refuses, a missing upsampler file, a
        size the official pipelines refuse, a window that is not 8k+1 frames within the family's window
        (`one_window`; a chained job's windows are checked per chunk). Raises FatalBackendError or
        MissingWeightsError."""
        plan = self._resolve(job.pipeline, job.loras)
        check_job(job, plan, self.files, self.temporal_scale, one_window, self._lora_check)

    # ------------------------------------------------------------------------------------------ rendering
    def render(self, request: RenderRequest) -> RenderResult:
        """Denoise and decode one window in line; `total` counts both."""
        t_start = time.perf_counter()
        state = self._denoise_request(request)
        with torch.inference_mode():
            result = self._decode(state)
        result.timings["total"] = time.perf_counter() - t_start
        return result

    @contextlib.contextmanager
    def reporting_steps(self, listener: StepListener) -> Iterator[None]:
        """Renders inside this block report their denoising steps to `listener` (StepReportingBackend)."""
        previous, self._step_listener = self._step_listener, listener
        try:
            yield
        finally:
            self._step_listener = previous

    def can_overlap_decode(self, job: RenderJob) -> bool:
        """The memory plan's verdict (set by prepare): a decode fits beside the next job's denoise. CUDA
        (side stream) or CPU only: MPS has no second stream to decode on. A temporally upscaled job decodes
        twice the frames the plan's reference job does, so it decodes in line."""
        if self.device.type not in ("cuda", "cpu"):
            return False
        if job.upscale.temporal and self.device.type == "cuda":
            return False
        return self.memory_plan is None or self.memory_plan.decode_overlap

    def denoise(self, request: RenderRequest) -> PendingDecode:
        """`render` up to the decode; the returned object decodes later, on any thread (CUDA: on this
        backend's side stream, after the denoise's work), giving exactly what `render` gives."""
        t_start = time.perf_counter()
        state = self._denoise_request(request)
        ready = None
        if self.device.type == "cuda":  # this device's stream, not the thread's current device (cuda:N)
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(self.device))
        return Deferred(self._decode_on_side_stream, state, ready, time.perf_counter() - t_start)

    def _denoise_request(self, request: RenderRequest) -> Denoised:
        """The job's recipe, resolved once, checked, its models loaded (after validation: a bad job loads
        nothing), then run up to the decode."""
        job = request.job
        plan = self._resolve(job.pipeline, job.loras)
        check_job(job, plan, self.files, self.temporal_scale, True, self._lora_check)
        load_s = self._prepare(plan, (job.pipeline, job.loras))
        run = self._recipe_run(job, plan, {"load": load_s} if load_s else {})
        with torch.inference_mode():
            state = plan.recipe.denoise(run, request.handoff)
        state.info = self._info(state, plan)  # read here: the decode may run elsewhere
        return state

    def _recipe_run(self, job: RenderJob, plan: RecipePlan, timings: dict[str, float]) -> RecipeRun:
        generator = torch.Generator(device=self.device).manual_seed(job.seed)
        listener = self._step_listener
        return RecipeRun(
            job=job,
            loras=plan.loras,
            device=self.device,
            dtype=self.dtype,
            components=self.components,
            params=self.params,
            models=self,
            text=self.text,
            generator=generator,
            noiser=GaussianNoiser(generator=generator),
            clock=PhaseClock(timings, self.device),
            steps=StageSteps(listener, plan.recipe.stage_count(job)) if listener is not None else None,
        )

    def _info(self, state: Denoised, plan: RecipePlan) -> dict[str, Any]:
        """What the sidecar records about how the job ran (`backend.*`)."""
        job, sigmas, two_stage = state.job, state.sigmas, state.two_stage
        lora = str(self.files.distilled_lora) if self.files.distilled_lora else None
        recipe = {
            "stage_1_steps": len(sigmas["stage1"]) - 1,
            "stage_2_steps": len(sigmas["stage2"]) - 1 if two_stage else 0,
            "spatial_scale": job.upscale.spatial_scale if two_stage else None,
            "sampler": state.sampler.value,
            "guidance": state.guided,  # CFG/STG in stage 1 (guided recipe) or none (distilled sigmas)
            "stage_2_distilled_lora": two_stage and any(lo.path == lora for lo in plan.loras.stage2),
        }
        return {
            "device": str(self.device),
            "dtype": self.policy.dtype,
            "prompt": state.prompt,
            "pipeline": job.pipeline.value,
            "two_stage": two_stage,
            "sigmas": sigmas,
            "offload": self.cache.offload,
            "resident_bytes": self.cache.resident_bytes(),
            "fp8": self.quantization is not None or self.transformer_prep.quantizes,
            **self.transformer_prep.as_info(fp8_cast=self.quantization is not None),
            "temporal_upsampled": job.upscale.temporal,
            "audio_origin": state.audio_origin.value if job.audio else None,
            "weights": self.weights.kind,
            "model_family": self.files.family.value,  # read from the checkpoint header (model_version)
            "model_version": self.files.model_version,
            "checkpoint_kind": self.files.checkpoint_kind.value if self.files.checkpoint_kind else None,
            "recipe": recipe,
            "prompt_cache": {"hits": self.prompts.hits, "misses": self.prompts.misses},
            **(self.memory_plan.as_info() if self.memory_plan else {}),
        }

    # ------------------------------------------------------------------------------------------ decoding
    def _decode(self, state: Denoised) -> RenderResult:
        tiled = bool(self.memory_plan and self.memory_plan.tile_decode)
        return decode(state, self.cache, self.device, tiled)

    def _decode_on_side_stream(self, state: Denoised, ready: Any) -> RenderResult:
        with torch.inference_mode():
            if ready is None:
                return self._decode(state)
            if self._decode_stream is None:
                self._decode_stream = torch.cuda.Stream(device=self.device)
            stream = self._decode_stream
            stream.wait_event(ready)  # the latents are complete on the denoise's stream
            try:
                with torch.cuda.stream(stream):
                    return self._decode(state)
            finally:  # every read of the denoise's tensors is done before they can be freed (errors too)
                stream.synchronize()

    def close(self) -> None:
        """Drop every model and prompt encoding; the next `prepare` builds from scratch."""
        self.prompts.clear()  # encodings die with the text encoder that made them
        self.cache.clear()
        self._warm = None


def _is_text_encoder(name: str) -> bool:
    return name == "text_encoder"


def _is_big_any(name: str) -> bool:
    return name == "text_encoder" or name.startswith("transformer:")


__all__ = ["Ltx2Backend"]
