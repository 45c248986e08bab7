"""`Ltx2Backend`: the RenderBackend on the official LTX-2 building blocks. THE ONLY importer of ltx_pipelines.

Owns: composing one render window from the official pieces (ModelLedger builders, generate_enhanced_prompt,
the image/keyframe/reference-video conditioning helpers, denoise_audio_video, euler_denoising_loop,
MultiModalGuider factories, upsample_video, decode_video / decode_audio) as a sequence of named stages, as the
official pipelines do (distilled.py, ti2vid_one_stage.py, ti2vid_two_stages.py, keyframe_interpolation.py,
ic_lora.py), with three differences: the dtype comes from the DevicePolicy instead of a hard-coded bf16, built
models are held across jobs (caches.ModelCache) instead of rebuilt per call, and the latents are returned and
can be handed in (the chaining stage's latent handoff). No model math is re-implemented here. It applies the
memory policy (memory.py: text encoder parked after encoding, tiled decode, fp8), keeps a per-backend LRU of
prompt encodings, and can split a render into denoise now and decode later (`denoise`: the decode runs on
another thread and, on CUDA, its own stream, so it overlaps the next job's denoise). Where the weights come
from (files, or generated for the full-size random set) is the WeightsSource's business (weights.py). Inside
`reporting_steps` it counts denoising steps (step_progress.py) as the official loop calls its denoiser.
Must not: write files, choose devices (device.py), be imported before the compat shims are applied (make it
through backends.factory), or leak torch types into the pure core except as the opaque tensors RenderResult
carries. Over 400 lines because the five official recipes are followed stage by stage in one place (so a
diff against ltx_pipelines stays readable); policy and caching live in their own modules.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_core.components.guiders import (
    MultiModalGuider,
    MultiModalGuiderParams,
    create_multimodal_guider_factory,
)
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.conditioning import VideoConditionByLatentIndex, VideoConditionByReferenceLatent
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.audio_vae import decode_audio as vae_decode_audio
from ltx_core.model.audio_vae import encode_audio as vae_encode_audio
from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video
from ltx_core.model.video_vae import TilingConfig
from ltx_core.model.video_vae import decode_video as vae_decode_video
from ltx_core.quantization import QuantizationPolicy
from ltx_core.tools import VideoLatentShape
from ltx_core.types import Audio, AudioLatentShape, VideoPixelShape
from ltx_pipelines.ic_lora import _read_lora_reference_downscale_factor
from ltx_pipelines.retake import TemporalRegionMask
from ltx_pipelines.utils import ModelLedger, euler_denoising_loop, res2s_audio_video_denoising_loop
from ltx_pipelines.utils.args import ImageConditioningInput
from ltx_pipelines.utils.constants import (
    DEFAULT_LORA_STRENGTH,
    DEFAULT_NEGATIVE_PROMPT,
    DISTILLED_SIGMA_VALUES,
    LTX_2_3_HQ_PARAMS,
    STAGE_2_DISTILLED_SIGMA_VALUES,
    PipelineParams,
    detect_params,
)
from ltx_pipelines.utils.helpers import (
    assert_resolution,
    combined_image_conditionings,
    denoise_audio_video,
    denoise_video_only,
    generate_enhanced_prompt,
    image_conditionings_by_adding_guiding_latent,
    multi_modal_guider_denoising_func,
    multi_modal_guider_factory_denoising_func,
    noise_audio_state,
    noise_video_state,
    simple_denoising_func,
)
from ltx_pipelines.utils.media_io import decode_audio_from_file, load_video_conditioning
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_batch.backends.base import LatentHandoff, PendingDecode, RenderRequest, RenderResult
from ltx2_batch.backends.caches import ModelCache, PromptCache
from ltx2_batch.backends.compat import use_gemma_config
from ltx2_batch.backends.device import DevicePolicy
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
from ltx2_batch.core.families import spec as family_spec
from ltx2_batch.core.jobs import X1_5, X2, GuiderSpec, LoraKind, LoraSpec, PipelineKind, RenderJob
from ltx2_batch.core.step_events import StageSteps, StepListener
from ltx2_batch.errors import FatalBackendError, MissingWeightsError

_WAVEFORM_BATCHED_DIMS = 3  # [batch, channels, samples]
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
Loras = tuple[LoraPathStrengthAndSDOps, ...]
log = logging.getLogger(__name__)
# ltx_pipelines' hq_2_stage_arg_parser defaults: the distilled LoRA's strength in each stage of hq
HQ_LORA_STRENGTH_STAGE_1 = 0.25
HQ_LORA_STRENGTH_STAGE_2 = 0.5


class Sampler(str, enum.Enum):
    euler = "euler"  # EulerDiffusionStep + euler_denoising_loop (every kind but hq)
    res2s = "res2s"  # Res2sDiffusionStep + res2s_audio_video_denoising_loop (ti2vid_two_stages_hq.py)


@dataclass(frozen=True)
class _KindPlan:
    """How one pipeline kind maps onto the official recipe (which transformer per stage, guidance, images)."""

    guided: bool  # stage 1: CFG/STG, negative prompt, LTX2Scheduler (ti2vid, keyframe); else distilled sigmas
    keyframe_images: bool  # images as guiding latents (keyframe_interpolation.py) vs latent replacement at 0
    stage1_loras: Loras
    stage2_loras: Loras
    reference_videos: bool
    sampler: Sampler = Sampler.euler
    audio_driven: bool = False  # a2vid: the audio latent is the input file's, frozen; only video denoises


def _transformer_name(loras: Loras) -> str:
    return "transformer:" + "|".join(f"{lo.path}@{lo.strength}" for lo in loras)


class Ltx2Backend:
    """A warm LTX-2 model set in one process. One render at a time (one per Ray actor); the only concurrency
    it allows is one pending decode (from `denoise`) running beside the next denoise.

    Process-wide state: ltx-core keeps the Gemma config in a shared constant, which the constructor points
    at this backend's Gemma folder (compat.use_gemma_config). One backend per process at a time (a worker
    builds a new one on a model swap), so that constant always describes the live backend's encoder."""

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
        use_gemma_config(files.gemma_root)  # the Gemma folder describes itself (tiny or 12B)
        fp8 = (files.is_fp8 or force_fp8) and policy.allow_fp8
        self.quantization = QuantizationPolicy.fp8_cast() if fp8 else None
        self.transformer_prep = transformer_prep
        self.params: PipelineParams = detect_params(str(files.checkpoint))
        self.components = PipelineComponents(dtype=self.dtype, device=self.device)
        self._ledger = self._make_ledger()
        self.cache = ModelCache(policy.device, keep_always=SHARED_MODULES)
        self.prompts = PromptCache(prompt_cache_size)
        self.memory_plan: MemoryPlan | None = None
        self._warm: tuple[PipelineKind, tuple[LoraSpec, ...]] | None = None
        self._decode_stream: Any = None  # CUDA: the stream overlapped decodes run on (made on first use)
        self._step_listener: StepListener | None = None  # set by reporting_steps
        self._steps: StageSteps | None = None  # the render in progress counts its steps here

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
        """Audio latent frames per second of video time (ltx-core's audio latent grid: 25 for 16 kHz mel,
        hop 160, downsample 4)."""
        return AudioLatentShape.from_duration(batch=1, duration=1000.0).frames / 1000.0

    @property
    def temporal_scale(self) -> int:
        """Pixel frames per latent frame after the first, from ltx-core's VAE scale factors (8)."""
        return int(self.components.video_scale_factors.time)

    # ------------------------------------------------------------------------------------------ loading
    def prepare(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> float:
        plan = self._kind_plan(pipeline, loras)
        if self._warm == (pipeline, loras):
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
        for stage_loras in (plan.stage1_loras, plan.stage2_loras):
            wanted[_transformer_name(stage_loras)] = self._transformer_builder(stage_loras)
        self._apply_memory_plan(
            len({_transformer_name(plan.stage1_loras), _transformer_name(plan.stage2_loras)})
        )
        seconds = self.cache.require(wanted)
        self._warm = (pipeline, loras)
        return seconds

    def _transformer_builder(self, loras: Loras) -> Any:
        def build() -> Any:
            model = self.weights.loading(self._ledger.with_loras(loras), self.dtype).transformer()
            # ltx-core's LoRA fusion (DummyRegistry path) leaves weights no LoRA touches in the checkpoint's
            # dtype (bf16) whatever dtype was asked for; casting them is exact, as in the no-LoRA path.
            model = model.to(self.dtype) if loras and self.quantization is None else model
            return prepare_transformer(model, self.transformer_prep)  # before its first use

        return build

    def _spatial_upsampler(self, scale: float) -> Any:
        """The x2 upsampler `prepare` loaded, or the x1.5 one, built on first use."""
        if scale != X1_5:
            return self.cache.get("spatial_upsampler")
        return self._extra_upsampler("spatial_upsampler_x1_5", self.files.spatial_upsampler_x1_5)

    def _temporal_upsampler(self) -> Any:
        if self.files.temporal_upsampler is None:
            self.files.require(("temporal_upsampler",))
        return self._extra_upsampler("temporal_upsampler", self.files.temporal_upsampler)

    def _extra_upsampler(self, name: str, path: Any) -> Any:
        """An upsampler no pipeline kind loads in `prepare`, built from its file on first use and held."""
        builder = self.weights.loading(
            SingleGPUModelBuilder(model_path=str(path), model_class_configurator=LatentUpsamplerConfigurator),
            self.dtype,
        )
        return self.cache.ensure(
            name, lambda: builder.build(device=self.device, dtype=self.dtype).to(self.device).eval()
        )

    def _apply_memory_plan(self, n_transformers: int) -> None:
        """Choose the memory policy from the device's free memory (memory.py) and apply it: which modules may
        be parked on the CPU, fp8 for transformers not built yet, tiled decode (read in _render)."""
        plan = choose_memory_policy(self.free_bytes, self._footprint(n_transformers))
        # fp8_scaled already quantizes the transformer (fp8_cast on top of it would quantize twice)
        if plan.fp8_transformer and self.quantization is None and not self.transformer_prep.quantizes:
            if any(n.startswith("transformer:") for n in self.cache.names()):
                log.warning("memory policy wants fp8 but a bf16 transformer is already built; keeping it")
            else:
                self.quantization = QuantizationPolicy.fp8_cast()
                self._ledger = self._make_ledger()
        if plan.offload_all:
            big = _is_big_any
        elif plan.offload_text_encoder:
            big = _is_text_encoder
        else:
            big = _never_big
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

    def _kind_plan(self, pipeline: PipelineKind, loras: tuple[LoraSpec, ...]) -> _KindPlan:
        user = tuple(
            LoraPathStrengthAndSDOps(lo.path, lo.strength, LTXV_LORA_COMFY_RENAMING_MAP)
            for lo in loras
            if lo.kind is LoraKind.LORA
        )
        ic = tuple(
            LoraPathStrengthAndSDOps(lo.path, lo.strength, LTXV_LORA_COMFY_RENAMING_MAP)
            for lo in loras
            if lo.kind is LoraKind.IC_LORA
        )
        if ic and pipeline is not PipelineKind.IC_LORA:
            raise FatalBackendError(f"IC-LoRA files need pipeline=ic_lora, not {pipeline.value}")
        if pipeline is PipelineKind.DISTILLED:
            return _KindPlan(False, False, user, user, reference_videos=False)
        if pipeline is PipelineKind.IC_LORA:
            if not ic:
                raise FatalBackendError("pipeline=ic_lora needs a LoRA of kind ic_lora")
            # ic_lora.py: stage 1 carries every LoRA given, stage 2 runs the plain distilled checkpoint
            return _KindPlan(False, False, (*ic, *user), (), reference_videos=True)
        if pipeline is PipelineKind.HQ:  # the distilled LoRA in both stages, at the official strengths
            if self.files.distilled_lora is None:
                self.files.require(("distilled_lora",))
            s1, s2 = (
                LoraPathStrengthAndSDOps(
                    str(self.files.distilled_lora), strength, LTXV_LORA_COMFY_RENAMING_MAP
                )
                for strength in (HQ_LORA_STRENGTH_STAGE_1, HQ_LORA_STRENGTH_STAGE_2)
            )
            return _KindPlan(True, False, (*user, s1), (*user, s2), False, Sampler.res2s)
        if pipeline is PipelineKind.RETAKE:  # retake.py: one transformer with the user's LoRAs
            return _KindPlan(True, False, user, user, False)
        if pipeline is PipelineKind.A2VID:  # a2vid_two_stage.py: user LoRAs, + the distilled LoRA in stage 2
            if self.files.distilled_lora is None:
                self.files.require(("distilled_lora",))
            lora = LoraPathStrengthAndSDOps(
                str(self.files.distilled_lora), DEFAULT_LORA_STRENGTH, LTXV_LORA_COMFY_RENAMING_MAP
            )
            return _KindPlan(True, False, user, (*user, lora), False, audio_driven=True)
        if pipeline in (PipelineKind.TI2VID, PipelineKind.KEYFRAME):
            if self.files.distilled_lora is None:
                self.files.require(("distilled_lora",))
            distilled = LoraPathStrengthAndSDOps(
                str(self.files.distilled_lora), DEFAULT_LORA_STRENGTH, LTXV_LORA_COMFY_RENAMING_MAP
            )
            return _KindPlan(True, pipeline is PipelineKind.KEYFRAME, user, (*user, distilled), False)
        raise FatalBackendError(f"pipeline {pipeline.value!r} is not a concrete pipeline kind")

    # ------------------------------------------------------------------------------------------ rendering
    def render(self, request: RenderRequest) -> RenderResult:
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
        return _PendingDecode(self, state, ready, time.perf_counter() - t_start)

    def _decode_on_side_stream(self, state: _Denoised, ready: Any) -> RenderResult:
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

    def check(self, job: RenderJob, *, one_window: bool = True) -> None:
        """What this model set cannot render, before anything is loaded: pipeline/LoRA kinds, a missing
        upsampler file, a size the official pipelines refuse, a window that is not 8k+1 frames (`one_window`;
        a chained job's windows are checked per chunk). Raises FatalBackendError or MissingWeightsError."""
        self._kind_plan(job.pipeline, job.loras)
        two_stage, scale = job.upscale.spatial, job.upscale.spatial_scale
        if job.pipeline in (PipelineKind.HQ, PipelineKind.A2VID) and (not two_stage or scale != X2):
            raise FatalBackendError(
                f"pipeline {job.pipeline.value} is two-stage with the x2 upsampler (upscale.spatial: true)"
            )
        if (job.pipeline is PipelineKind.RETAKE) != (job.retake is not None):
            raise FatalBackendError("a retake spec is what pipeline retake needs, and only retake uses it")
        if (job.pipeline is PipelineKind.A2VID) != (job.audio_conditioning is not None):
            raise FatalBackendError("audio_conditioning is what pipeline a2vid needs, and only a2vid uses it")
        if two_stage and self.files.spatial_upsampler_for(scale) is None:
            role = "spatial_upsampler_x1_5" if scale == X1_5 else "spatial_upsampler"
            if role == "spatial_upsampler_x1_5":
                raise MissingWeightsError(
                    f"upscale.spatial: 1.5 needs the x1.5 spatial upsampler, absent under {self.files.root}; "
                    "set model.spatial_upsampler_x1_5"
                )
            self.files.require((role,))
        try:
            if two_stage and scale == X1_5:  # stage 1 at 2/3 size on the two-stage (64-pixel) grid
                if job.width % 96 or job.height % 96:
                    raise ValueError(
                        f"x1.5 two-stage sizes must be multiples of 96, got {job.width}x{job.height}"
                    )
            else:
                assert_resolution(height=job.height, width=job.width, is_two_stage=two_stage)
        except ValueError as exc:
            raise FatalBackendError(str(exc)) from exc
        if not one_window:
            return
        window = family_spec(self.files.family).window_frames  # the family's window (LTX-2: 121)
        if (job.num_frames - 1) % self.temporal_scale or not 1 <= job.num_frames <= window:
            raise FatalBackendError(
                f"num_frames={job.num_frames}: one window takes 8k+1 frames, at most {window}"
            )

    def _denoise_request(self, request: RenderRequest) -> _Denoised:
        job = request.job
        self.check(job)
        plan = self._kind_plan(job.pipeline, job.loras)
        two_stage = job.upscale.spatial
        load_s = self.prepare(job.pipeline, job.loras)  # after validation: a bad job loads nothing
        timings: dict[str, float] = {"load": load_s} if load_s else {}
        if self._step_listener is not None:  # counted in _loop: stage 1, then stage 2 of two-stage kinds
            stages = 2 if two_stage and job.pipeline is not PipelineKind.RETAKE else 1
            self._steps = StageSteps(self._step_listener, stages)
        try:
            with torch.inference_mode():
                if job.pipeline is PipelineKind.RETAKE:
                    return self._retake(job, plan, timings)
                return self._denoise(job, plan, two_stage, request.handoff, timings)
        finally:
            self._steps = None

    def _retake(self, job: RenderJob, plan: _KindPlan, timings: dict[str, float]) -> _Denoised:
        """retake.py as one stage at the source's size: the source video and audio encoded as the start
        latents, TemporalRegionMask conditionings that keep everything outside the window, then the Euler
        loop (guided, or the distilled sigmas) from those latents."""
        spec = job.retake
        assert spec is not None  # check() refuses a retake without its spec
        clock = _Clock(timings, self.device)
        generator = torch.Generator(device=self.device).manual_seed(job.seed)
        noiser = GaussianNoiser(generator=generator)
        shape = VideoPixelShape(
            batch=1, frames=job.num_frames, width=job.width, height=job.height, fps=job.frame_rate
        )
        with clock("stage1"):  # the source's encoding counts as the stage it starts
            video = load_video_conditioning(
                video_path=spec.path,
                height=shape.height,
                width=shape.width,
                frame_cap=shape.frames,
                dtype=self.dtype,
                device=self.device,
            )
            video_latent = self.cache.get("video_encoder")(video)
            window = (spec.start_s, spec.end_s)
            video_conds = [
                TemporalRegionMask(*(window if spec.regenerate_video else (0.0, 0.0)), fps=shape.fps)
            ]
            audio_latent, audio_conds = None, []
            source_audio = decode_audio_from_file(spec.path, self.device)
            if source_audio is not None:
                waveform = source_audio.waveform.squeeze(0)
                batched = waveform.dim() == _WAVEFORM_BATCHED_DIMS - 1  # [channels, samples]: add the batch
                waveform = waveform.unsqueeze(0) if batched else waveform
                encoder = self.cache.ensure("audio_encoder", self._ledger.audio_encoder)
                audio_latent = vae_encode_audio(
                    Audio(waveform=waveform.to(self.dtype), sampling_rate=source_audio.sampling_rate),
                    encoder,
                    None,
                )
                audio_latent = _fit_frames(
                    audio_latent, AudioLatentShape.from_video_pixel_shape(shape).frames
                )
                kept = window if spec.regenerate_audio else (0.0, 0.0)
                audio_conds = [TemporalRegionMask(*kept, fps=shape.fps)]
        with clock("text_encode"):
            prompt, contexts = self._text_stage(job, replace(plan, guided=spec.guided), [])
        with clock("stage1"):
            transformer = self.cache.get(_transformer_name(plan.stage1_loras))
            v_ctx, a_ctx = contexts[0].video_encoding, contexts[0].audio_encoding
            if spec.guided:
                sigmas = self._guided_sigmas(job)
                denoise_fn = multi_modal_guider_denoising_func(
                    *_guiders(self.params, job, contexts[1]),
                    v_context=v_ctx,
                    a_context=a_ctx,
                    transformer=transformer,
                )
            else:
                sigmas = torch.tensor(DISTILLED_SIGMA_VALUES).to(dtype=torch.float32, device=self.device)
                denoise_fn = simple_denoising_func(
                    video_context=v_ctx, audio_context=a_ctx, transformer=transformer
                )
            common = {
                "output_shape": shape,
                "noiser": noiser,
                "components": self.components,
                "dtype": self.dtype,
                "device": self.device,
            }
            video_state, video_tools = noise_video_state(
                conditionings=video_conds, initial_latent=video_latent, **common
            )
            audio_state, audio_tools = noise_audio_state(
                conditionings=audio_conds, initial_latent=audio_latent, **common
            )
            video_state, audio_state = _loop(denoise_fn, steps=self._steps)(
                sigmas, video_state, audio_state, EulerDiffusionStep()
            )
            video_state = video_tools.unpatchify(video_tools.clear_conditioning(video_state))
            audio_state = audio_tools.unpatchify(audio_tools.clear_conditioning(audio_state))
        trace = {"stage1": [float(s) for s in sigmas]}
        return _Denoised(
            job=job,
            prompt=prompt,
            two_stage=False,
            sigmas=trace,
            stage1_latent=video_state.latent,
            final_latent=video_state.latent,
            to_decode=video_state.latent,
            audio_latent=audio_state.latent,
            frame_rate=job.frame_rate,
            generator=generator,
            timings=timings,
            info=self._info(job, replace(plan, guided=spec.guided), prompt, False, trace),
        )

    def _denoise(
        self,
        job: RenderJob,
        plan: _KindPlan,
        two_stage: bool,
        handoff: LatentHandoff | None,
        timings: dict[str, float],
    ) -> _Denoised:
        """The official recipe as a sequence of stages: text encode, stage 1 (half size when two-stage),
        spatial upsample + stage 2 (two-stage), temporal upsample (optional). Decoding is `_decode`'s."""
        clock = _Clock(timings, self.device)
        generator = torch.Generator(device=self.device).manual_seed(job.seed)
        noiser = GaussianNoiser(generator=generator)
        images = [
            ImageConditioningInput(path=i.path, frame_idx=i.frame_idx, strength=i.strength)
            for i in job.images
        ]
        with clock("text_encode"):
            prompt, contexts = self._text_stage(job, plan, images)
        scale = job.upscale.spatial_scale if two_stage else 1
        shape = VideoPixelShape(
            batch=1,
            frames=job.num_frames,
            width=round(job.width / scale),
            height=round(job.height / scale),
            fps=job.frame_rate,
        )
        source_audio = None
        if plan.audio_driven:
            with clock("stage1"):  # the driving audio's encoding counts as stage 1
                source_audio, audio_latent = self._driving_audio(job)
        video_encoder = self.cache.get("video_encoder")
        with clock("stage1"):
            if plan.audio_driven:
                video_state, audio_state, sigmas1 = self._stage1_audio_driven(
                    job, images, shape, contexts, noiser, video_encoder, audio_latent
                )
            else:
                video_state, audio_state, sigmas1 = self._stage1(
                    job, plan, images, shape, contexts, noiser, handoff, video_encoder
                )
        stage1_latent = video_state.latent
        sigmas = {"stage1": [float(s) for s in sigmas1]}
        if two_stage:
            with clock("upsample"):
                upscaled = upsample_video(
                    latent=video_state.latent[:1],
                    video_encoder=video_encoder,
                    upsampler=self._spatial_upsampler(job.upscale.spatial_scale),
                )
            with clock("stage2"):
                shape = shape._replace(width=job.width, height=job.height)
                video_state, audio_state, sigmas2 = self._stage2(
                    plan,
                    images,
                    shape,
                    contexts,
                    noiser,
                    handoff,
                    video_encoder,
                    upscaled,
                    audio_state.latent,
                )
            sigmas["stage2"] = [float(s) for s in sigmas2]
        final_latent = _adain(video_state.latent, handoff)
        to_decode, frame_rate = final_latent, job.frame_rate
        if job.upscale.temporal:
            with clock("upsample"):
                to_decode = upsample_video(
                    latent=final_latent[:1], video_encoder=video_encoder, upsampler=self._temporal_upsampler()
                )
            frame_rate = job.frame_rate * 2
        return _Denoised(
            job=job,
            prompt=prompt,
            two_stage=two_stage,
            sigmas=sigmas,
            stage1_latent=stage1_latent,
            final_latent=final_latent,
            to_decode=to_decode,
            audio_latent=audio_state.latent,
            frame_rate=frame_rate,
            generator=generator,
            timings=timings,
            source_audio=source_audio,
            info=self._info(job, plan, prompt, two_stage, sigmas),  # read here: the decode may run elsewhere
        )

    def _guided_sigmas(self, job: RenderJob) -> torch.Tensor:
        """Stage 1's sigmas of a guided recipe: the official scheduler over the job's steps, else the
        family's."""
        steps = job.num_inference_steps or self.params.num_inference_steps
        return LTX2Scheduler().execute(steps=steps).to(dtype=torch.float32, device=self.device)

    def _text_stage(
        self, job: RenderJob, plan: _KindPlan, images: list[ImageConditioningInput]
    ) -> tuple[str, list[Any]]:
        """The prompt as rendered (enhanced when asked) and its encodings: [prompt] or, guided, [prompt,
        negative]. Parks the text encoder afterwards when the memory policy offloads it."""
        prompt = job.prompt
        if job.enhance_prompt:
            image = images[0].path if images else None
            prompt = self.prompts.get_or_make(
                ("enhanced", job.prompt, image, job.seed),
                lambda: generate_enhanced_prompt(
                    _image_tokens_matched(self.cache.get("text_encoder")), job.prompt, image, seed=job.seed
                ),
            )
        negative = job.negative_prompt or DEFAULT_NEGATIVE_PROMPT
        contexts = [self._encoded(text) for text in ([prompt, negative] if plan.guided else [prompt])]
        self.cache.park("text_encoder")  # memory policy offload_text_encoder: off the device until needed
        return prompt, contexts

    def _stage1(
        self,
        job: RenderJob,
        plan: _KindPlan,
        images: list[ImageConditioningInput],
        shape: VideoPixelShape,
        contexts: list[Any],
        noiser: GaussianNoiser,
        handoff: LatentHandoff | None,
        video_encoder: Any,
    ) -> tuple[Any, Any, torch.Tensor]:
        """Stage 1 from noise: guided (CFG/STG over the LTX2 schedule) or the distilled sigmas."""
        conds = self._image_conditionings(plan, images, shape, video_encoder)
        if plan.reference_videos:
            conds += self._reference_conditionings(job, shape, video_encoder)
        conds += _handoff_conditioning(handoff.stage1 if handoff else None, handoff, self.dtype, self.device)
        audio_start = self._audio_handoff_start(shape, handoff)
        transformer = self.cache.get(_transformer_name(plan.stage1_loras))
        v_ctx, a_ctx = contexts[0].video_encoding, contexts[0].audio_encoding
        if plan.sampler is Sampler.res2s:  # ti2vid_two_stages_hq.py: plain guiders, token-count schedule
            hq = LTX_2_3_HQ_PARAMS
            steps = job.num_inference_steps or hq.num_inference_steps
            empty = torch.empty(VideoLatentShape.from_pixel_shape(shape).to_torch_shape())
            sigmas = (
                LTX2Scheduler().execute(latent=empty, steps=steps).to(dtype=torch.float32, device=self.device)
            )
            denoise_fn = multi_modal_guider_denoising_func(
                *_guiders(hq, job, contexts[1]),
                v_context=v_ctx,
                a_context=a_ctx,
                transformer=transformer,
            )
        elif plan.guided:
            sigmas = self._guided_sigmas(job)
            denoise_fn = multi_modal_guider_factory_denoising_func(
                video_guider_factory=create_multimodal_guider_factory(
                    params=_guider(self.params.video_guider_params, job.video_guider_params),
                    negative_context=contexts[1].video_encoding,
                ),
                audio_guider_factory=create_multimodal_guider_factory(
                    params=_guider(self.params.audio_guider_params, job.audio_guider_params),
                    negative_context=contexts[1].audio_encoding,
                ),
                v_context=v_ctx,
                a_context=a_ctx,
                transformer=transformer,
            )
        else:
            sigmas = torch.Tensor(DISTILLED_SIGMA_VALUES).to(self.device)
            denoise_fn = simple_denoising_func(
                video_context=v_ctx, audio_context=a_ctx, transformer=transformer
            )
        video_state, audio_state = self._run_stage(
            shape,
            conds,
            noiser,
            sigmas,
            denoise_fn,
            audio_kept=self._audio_kept(handoff, shape),
            sampler=plan.sampler,
            **audio_start,
        )
        return video_state, audio_state, sigmas

    def _driving_audio(self, job: RenderJob) -> tuple[Any, torch.Tensor]:
        """a2vid's input: the file's audio from `start_s` (at most `max_duration_s`), its latent cut to the
        clip's duration (a2vid_two_stage.py)."""
        cond = job.audio_conditioning
        assert cond is not None  # check() refuses a2vid without it
        decoded = decode_audio_from_file(cond.path, self.device, cond.start_s, cond.max_duration_s)
        if decoded is None:
            raise FatalBackendError(f"audio_conditioning.path {cond.path}: no audio stream")
        encoder = self.cache.ensure("audio_encoder", self._ledger.audio_encoder)
        latent = vae_encode_audio(decoded, encoder)
        frames = AudioLatentShape.from_duration(
            batch=1, duration=job.num_frames / job.frame_rate, channels=8, mel_bins=16
        ).frames
        return decoded, latent[:, :, :frames]

    def _stage1_audio_driven(
        self,
        job: RenderJob,
        images: list[ImageConditioningInput],
        shape: VideoPixelShape,
        contexts: list[Any],
        noiser: GaussianNoiser,
        video_encoder: Any,
        audio_latent: torch.Tensor,
    ) -> tuple[Any, Any, torch.Tensor]:
        """a2vid stage 1: video-only denoising, guided (video CFG/STG; the audio guider at neutral
        defaults), the input audio latent frozen."""
        conds = combined_image_conditionings(
            images=images,
            height=shape.height,
            width=shape.width,
            video_encoder=video_encoder,
            dtype=self.dtype,
            device=self.device,
        )
        transformer = self.cache.get(_transformer_name(self._kind_plan(job.pipeline, job.loras).stage1_loras))
        sigmas = self._guided_sigmas(job)
        denoise_fn = multi_modal_guider_denoising_func(
            video_guider=MultiModalGuider(
                params=_guider(self.params.video_guider_params, job.video_guider_params),
                negative_context=contexts[1].video_encoding,
            ),
            audio_guider=MultiModalGuider(params=MultiModalGuiderParams()),
            v_context=contexts[0].video_encoding,
            a_context=contexts[0].audio_encoding,
            transformer=transformer,
        )
        video_state = self._run_video_stage(
            shape, conds, noiser, sigmas, denoise_fn, initial_audio_latent=audio_latent
        )
        return video_state, _Frozen(audio_latent), sigmas

    def _stage2(
        self,
        plan: _KindPlan,
        images: list[ImageConditioningInput],
        shape: VideoPixelShape,
        contexts: list[Any],
        noiser: GaussianNoiser,
        handoff: LatentHandoff | None,
        video_encoder: Any,
        upscaled: torch.Tensor,
        audio_latent: torch.Tensor,
    ) -> tuple[Any, Any, torch.Tensor]:
        """Stage 2 at full size: the upsampled stage-1 latents refined over the stage-2 distilled sigmas."""
        conds = self._image_conditionings(plan, images, shape, video_encoder)
        conds += _handoff_conditioning(handoff.final if handoff else None, handoff, self.dtype, self.device)
        transformer = self.cache.get(_transformer_name(plan.stage2_loras))
        sigmas = torch.Tensor(STAGE_2_DISTILLED_SIGMA_VALUES).to(self.device)
        denoise_fn = simple_denoising_func(
            video_context=contexts[0].video_encoding,
            audio_context=contexts[0].audio_encoding,
            transformer=transformer,
        )
        if plan.audio_driven:  # the video refined against the frozen input audio
            video_state = self._run_video_stage(
                shape,
                conds,
                noiser,
                sigmas,
                denoise_fn,
                noise_scale=sigmas[0],
                initial_video_latent=upscaled,
                initial_audio_latent=audio_latent,
            )
            return video_state, _Frozen(audio_latent), sigmas
        video_state, audio_state = self._run_stage(
            shape,
            conds,
            noiser,
            sigmas,
            denoise_fn,
            audio_kept=self._audio_kept(handoff, shape),
            sampler=plan.sampler,
            noise_scale=sigmas[0],
            initial_video_latent=upscaled,
            initial_audio_latent=audio_latent,
        )
        return video_state, audio_state, sigmas

    def _run_video_stage(
        self,
        shape: VideoPixelShape,
        conditionings: list[Any],
        noiser: GaussianNoiser,
        sigmas: torch.Tensor,
        denoise_fn: Any,
        **initial: Any,
    ) -> Any:
        """One official `denoise_video_only` stage (a2vid: the audio latents stay as given)."""
        return denoise_video_only(
            output_shape=shape,
            conditionings=conditionings,
            noiser=noiser,
            sigmas=sigmas,
            stepper=EulerDiffusionStep(),
            denoising_loop_fn=_loop(denoise_fn, steps=self._steps),
            components=self.components,
            dtype=self.dtype,
            device=self.device,
            **initial,
        )

    def _run_stage(
        self,
        shape: VideoPixelShape,
        conditionings: list[Any],
        noiser: GaussianNoiser,
        sigmas: torch.Tensor,
        denoise_fn: Any,
        audio_kept: list[Any] | None = None,
        sampler: Sampler = Sampler.euler,
        **initial: Any,
    ) -> tuple[Any, Any]:
        """One denoising stage with the Euler (hq: the res_2s) loop (`initial`: a start latent and noise
        scale). Without an audio handoff it is the official `denoise_audio_video`; with one (`audio_kept`:
        the conditioning that keeps the handed-off audio tokens clean) the same official steps with that
        audio conditioning, as ltx_pipelines' retake pipeline composes them (denoise_audio_video takes none
        for audio)."""
        if not audio_kept:
            return denoise_audio_video(
                output_shape=shape,
                conditionings=conditionings,
                noiser=noiser,
                sigmas=sigmas,
                stepper=_stepper(sampler),
                denoising_loop_fn=_loop(denoise_fn, sampler, self._steps),
                components=self.components,
                dtype=self.dtype,
                device=self.device,
                **initial,
            )
        noise_scale = initial.get("noise_scale", 1.0)
        common = {
            "output_shape": shape,
            "noiser": noiser,
            "components": self.components,
            "dtype": self.dtype,
            "device": self.device,
            "noise_scale": noise_scale,
        }
        video_state, video_tools = noise_video_state(
            conditionings=conditionings, initial_latent=initial.get("initial_video_latent"), **common
        )
        audio_state, audio_tools = noise_audio_state(
            conditionings=audio_kept, initial_latent=initial.get("initial_audio_latent"), **common
        )
        loop = _loop(denoise_fn, sampler, self._steps)
        video_state, audio_state = loop(sigmas, video_state, audio_state, _stepper(sampler))
        video_state = video_tools.unpatchify(video_tools.clear_conditioning(video_state))
        audio_state = audio_tools.unpatchify(audio_tools.clear_conditioning(audio_state))
        return video_state, audio_state

    def _audio_handoff_start(self, shape: VideoPixelShape, handoff: LatentHandoff | None) -> dict[str, Any]:
        """Stage 1's start audio latent under an audio handoff: the handed-off frames first, zeros after
        (those tokens are fully noised, exactly as a start without a handoff)."""
        if handoff is None or handoff.audio is None:
            return {}
        expected = AudioLatentShape.from_video_pixel_shape(shape)
        kept = handoff.audio.to(device=self.device, dtype=self.dtype)[:, :, : expected.frames]
        start = torch.zeros(expected.to_torch_shape(), device=self.device, dtype=self.dtype)
        start[:, :, : kept.shape[2]] = kept
        return {"initial_audio_latent": start}

    def _audio_kept(self, handoff: LatentHandoff | None, shape: VideoPixelShape) -> list[Any] | None:
        """The audio conditioning of a handoff: tokens before the handed-off duration are not denoised."""
        if handoff is None or handoff.audio is None:
            return None
        kept_s = handoff.audio.shape[2] / self.audio_latents_per_second
        horizon = 2.0 * shape.frames / shape.fps + 1.0  # past the end of the window: regenerate the rest
        return [TemporalRegionMask(start_time=kept_s, end_time=horizon, fps=shape.fps)]

    def _info(
        self, job: RenderJob, plan: _KindPlan, prompt: str, two_stage: bool, sigmas: dict[str, list[float]]
    ) -> dict[str, Any]:
        """What the sidecar records about how the job ran (`backend.*`)."""
        lora = str(self.files.distilled_lora) if self.files.distilled_lora else None
        recipe = {
            "stage_1_steps": len(sigmas["stage1"]) - 1,
            "stage_2_steps": len(sigmas["stage2"]) - 1 if "stage2" in sigmas else 0,
            "spatial_scale": job.upscale.spatial_scale if two_stage else None,
            "sampler": plan.sampler.value,
            "guidance": plan.guided,  # CFG/STG in stage 1 (guided recipe) or none (distilled sigmas)
            "stage_2_distilled_lora": two_stage and any(lo.path == lora for lo in plan.stage2_loras),
        }
        return {
            "device": str(self.device),
            "dtype": self.policy.dtype,
            "prompt": prompt,
            "pipeline": job.pipeline.value,
            "two_stage": two_stage,
            "sigmas": sigmas,
            "offload": self.cache.offload,
            "resident_bytes": self.cache.resident_bytes(),
            "fp8": self.quantization is not None or self.transformer_prep.quantizes,
            **self.transformer_prep.as_info(fp8_cast=self.quantization is not None),
            "temporal_upsampled": job.upscale.temporal,
            "weights": self.weights.kind,
            "model_family": self.files.family.value,  # read from the checkpoint header (model_version)
            "model_version": self.files.model_version,
            "checkpoint_kind": self.files.checkpoint_kind.value if self.files.checkpoint_kind else None,
            "recipe": recipe,
            "prompt_cache": {"hits": self.prompts.hits, "misses": self.prompts.misses},
            **(self.memory_plan.as_info() if self.memory_plan else {}),
        }

    def _decode(self, state: _Denoised) -> RenderResult:
        """Video and audio decode of a denoised job. Reads only the decoders (resident whenever a decode
        may overlap the next denoise) and the state's own tensors and generator."""
        job, timings, generator = state.job, state.timings, state.generator
        clock = _Clock(timings, self.device)
        with clock("decode_video"):
            tiling = TilingConfig.default() if self.memory_plan and self.memory_plan.tile_decode else None
            chunks = vae_decode_video(state.to_decode, self.cache.get("video_decoder"), tiling, generator)
            frames = torch.cat([c.cpu() for c in chunks], dim=0).numpy()
        audio = sample_rate = None
        if state.source_audio is not None:  # a2vid_two_stage.py returns the input audio for fidelity
            audio = state.source_audio.waveform.squeeze(0).float().cpu().numpy()
            sample_rate = int(state.source_audio.sampling_rate)
        elif job.audio:
            with clock("decode_audio"):
                decoded = vae_decode_audio(
                    state.audio_latent, self.cache.get("audio_decoder"), self.cache.get("vocoder")
                )
                audio = decoded.waveform.float().cpu().numpy()
                sample_rate = int(decoded.sampling_rate)
        for phase in ("text_encode", "stage1", "upsample", "stage2", "decode_video", "decode_audio"):
            timings.setdefault(phase, 0.0)
        return RenderResult(
            frames=frames,
            frame_rate=state.frame_rate,
            audio=audio,
            sample_rate=sample_rate,
            stage1_latent=state.stage1_latent.detach().clone(),
            final_latent=state.final_latent.detach().clone(),
            audio_latent=state.audio_latent.detach().clone(),
            timings=timings,
            info=state.info,
        )

    def _encoded(self, text: str) -> Any:
        """One text's encoding, from the prompt cache when this backend encoded it before. Keyed by the text
        alone: the prompt and the negative prompt are cached separately (the official code encodes each on
        its own, so a cached encoding is bit-identical to a fresh one), and an enhanced prompt is keyed by
        what it was enhanced from (above)."""
        return self.prompts.get_or_make(("encoded", text), lambda: self._encode([text])[0])

    def _encode(self, prompts: list[str]) -> list[Any]:
        """encode_prompts() without its per-call gc.collect()/empty_cache(): those free the models it builds
        per call (~0.2 s each here); ours are held. Same two official calls, same order."""
        text_encoder = self.cache.get("text_encoder")
        raw = [text_encoder.encode(p) for p in prompts]
        processor = self.cache.get("embeddings_processor")
        return [processor.process_hidden_states(hidden, mask) for hidden, mask in raw]

    def _image_conditionings(
        self,
        plan: _KindPlan,
        images: list[ImageConditioningInput],
        shape: VideoPixelShape,
        video_encoder: Any,
    ) -> list[Any]:
        helper = (
            image_conditionings_by_adding_guiding_latent
            if plan.keyframe_images
            else combined_image_conditionings
        )
        return list(
            helper(
                images=images,
                height=shape.height,
                width=shape.width,
                video_encoder=video_encoder,
                dtype=self.dtype,
                device=self.device,
            )
        )

    def _reference_conditionings(
        self, job: RenderJob, shape: VideoPixelShape, video_encoder: Any
    ) -> list[Any]:
        """ICLoraPipeline._create_conditionings, reference-video part (no attention mask: strength 1.0)."""
        if not job.video_conditioning:
            raise FatalBackendError("pipeline=ic_lora needs at least one video_conditioning reference video")
        factors = {
            _read_lora_reference_downscale_factor(lo.path) for lo in job.loras if lo.kind is LoraKind.IC_LORA
        }
        factors.discard(1)
        if len(factors) > 1:
            raise FatalBackendError(f"IC-LoRAs disagree on reference_downscale_factor: {sorted(factors)}")
        factor = factors.pop() if factors else 1
        if shape.height % factor or shape.width % factor:
            raise FatalBackendError(
                f"{shape.height}x{shape.width} is not divisible by reference scale {factor}"
            )
        conds: list[Any] = []
        for ref in job.video_conditioning:
            video = load_video_conditioning(
                video_path=ref.path,
                height=shape.height // factor,
                width=shape.width // factor,
                frame_cap=job.num_frames,
                dtype=self.dtype,
                device=self.device,
            )
            conds.append(
                VideoConditionByReferenceLatent(
                    latent=video_encoder(video), downscale_factor=factor, strength=ref.strength
                )
            )
        return conds

    def close(self) -> None:
        self.prompts.clear()  # encodings die with the text encoder that made them
        self.cache.clear()
        self._warm = None


def _image_tokens_matched(text_encoder: Any) -> Any:
    """`text_encoder` with its processor expanding an image into as many soft tokens as the model's vision
    projector makes (`mm_tokens_per_image`). ltx-core builds the processor with transformers' default of
    256, which is real Gemma 3's value; a smaller Gemma (the embedded sets use 4) needs its own, or the
    image-to-video enhancement fails in Gemma's forward ("Image features and image tokens do not match")."""
    processor = text_encoder.processor
    wanted = getattr(getattr(text_encoder.model, "config", None), "mm_tokens_per_image", None)
    if processor is None or wanted is None or processor.image_seq_length == wanted:
        return text_encoder
    from transformers import Gemma3Processor

    text_encoder.processor = Gemma3Processor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        chat_template=processor.chat_template,
        image_seq_length=wanted,
    )
    return text_encoder


def _is_text_encoder(name: str) -> bool:
    return name == "text_encoder"


def _is_big_any(name: str) -> bool:
    return name == "text_encoder" or name.startswith("transformer:")


def _never_big(_name: str) -> bool:
    return False


def _handoff_conditioning(
    latent: Any, handoff: LatentHandoff | None, dtype: torch.dtype, device: torch.device
) -> list[Any]:
    """The chaining handoff: the previous chunk's tail latents kept clean from latent frame 0 of this stage.
    With `blend`, the last `blend` of them are conditioned one by one with a strength falling linearly
    towards 0 (docs/behaviour.md, "Seam smoothing"): a crossfade from the previous chunk into this one."""
    if latent is None or handoff is None:
        return []
    latent = latent.to(device=device, dtype=dtype)
    hard = latent.shape[2] - handoff.blend
    conds = [VideoConditionByLatentIndex(latent=latent[:, :, :hard], strength=handoff.strength, latent_idx=0)]
    for j in range(handoff.blend):
        fade = handoff.strength * (handoff.blend - j) / (handoff.blend + 1)
        frame = latent[:, :, hard + j : hard + j + 1]
        conds.append(VideoConditionByLatentIndex(latent=frame, strength=fade, latent_idx=hard + j))
    return conds


def _adain(latent: torch.Tensor, handoff: LatentHandoff | None) -> torch.Tensor:
    """AdaIN against the first chunk: the frames after the handed-off ones get that chunk's per-channel mean
    and std (the handed-off frames are the previous chunk's, left as they are)."""
    if handoff is None or handoff.normalize_to is None:
        return latent
    mean, std = (t.to(device=latent.device, dtype=latent.dtype) for t in handoff.normalize_to)
    k = handoff.stage1.shape[2]
    new = latent[:, :, k:]
    own_mean = new.mean(dim=(0, 2, 3, 4), keepdim=True)
    own_std = new.std(dim=(0, 2, 3, 4), keepdim=True, correction=0).clamp_min(1e-6)
    out = latent.clone()
    out[:, :, k:] = (new - own_mean) / own_std * std.view(1, -1, 1, 1, 1) + mean.view(1, -1, 1, 1, 1)
    return out


def _guider(defaults: MultiModalGuiderParams, spec: GuiderSpec) -> MultiModalGuiderParams:
    """Official defaults (PipelineParams for this checkpoint) with the job's non-None fields on top."""
    overrides = {
        k: getattr(spec, k)
        for k in ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale", "skip_step")
        if getattr(spec, k) is not None
    }
    if spec.stg_blocks is not None:
        overrides["stg_blocks"] = list(spec.stg_blocks)
    return replace(defaults, **overrides)


def _guiders(defaults: Any, job: RenderJob, negative: Any) -> tuple[MultiModalGuider, MultiModalGuider]:
    """(video, audio) guiders of a guided stage: `defaults`' guider params (PipelineParams or the HQ ones)
    with the job's overrides, against the negative prompt's encodings."""
    return (
        MultiModalGuider(
            params=_guider(defaults.video_guider_params, job.video_guider_params),
            negative_context=negative.video_encoding,
        ),
        MultiModalGuider(
            params=_guider(defaults.audio_guider_params, job.audio_guider_params),
            negative_context=negative.audio_encoding,
        ),
    )


def _stepper(sampler: Sampler) -> Any:
    return Res2sDiffusionStep() if sampler is Sampler.res2s else EulerDiffusionStep()


def _loop(denoise_fn: Any, sampler: Sampler = Sampler.euler, steps: StageSteps | None = None) -> Any:
    """The official denoising loop of `sampler` over `denoise_fn`; with `steps`, one stage of the render's
    step count (the loop's own step indices, read as its denoising function is called)."""

    def official(sigmas: torch.Tensor, video_state: Any, audio_state: Any, stepper: Any, fn: Any) -> Any:
        common = {
            "sigmas": sigmas,
            "video_state": video_state,
            "audio_state": audio_state,
            "stepper": stepper,
        }
        if sampler is Sampler.res2s:
            # res_2s casts its substep latents to the model's dtype: bf16 (its default) is the official
            # pipeline's only dtype, float32 the CPU default here
            dtype = video_state.latent.dtype
            return res2s_audio_video_denoising_loop(**common, denoise_fn=fn, model_dtype=dtype)
        return euler_denoising_loop(**common, denoise_fn=fn)

    def denoising_loop(sigmas: torch.Tensor, video_state: Any, audio_state: Any, stepper: Any) -> Any:
        if steps is None:
            return official(sigmas, video_state, audio_state, stepper, denoise_fn)
        steps.begin(len(sigmas) - 1)  # both loops take len(sigmas) - 1 steps
        result = official(sigmas, video_state, audio_state, stepper, _counted(denoise_fn, steps))
        steps.end()
        return result

    return denoising_loop


def _counted(denoise_fn: Any, steps: StageSteps) -> Any:
    """`denoise_fn`, telling `steps` the step index of each call first: the same call with the same
    arguments, so the latents are bit-identical with and without counting."""

    def counted(video_state: Any, audio_state: Any, sigmas: torch.Tensor, step_index: int) -> Any:
        steps.at(step_index)
        return denoise_fn(video_state, audio_state, sigmas, step_index)

    return counted


def _fit_frames(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """An audio latent cut or zero-padded to `frames` latent frames (as retake.py does)."""
    if latent.shape[2] >= frames:
        return latent[:, :, :frames]
    pad = torch.zeros(
        (*latent.shape[:2], frames - latent.shape[2], latent.shape[3]),
        device=latent.device,
        dtype=latent.dtype,
    )
    return torch.cat([latent, pad], dim=2)


@dataclass(frozen=True)
class _Frozen:
    """An audio "state" that did not denoise (a2vid): only its latent is read."""

    latent: torch.Tensor


@dataclass
class _Denoised:
    """Everything the decode needs from a denoised job (the job's own generator goes on into the decode)."""

    job: RenderJob
    prompt: str
    two_stage: bool
    sigmas: dict[str, list[float]]
    stage1_latent: torch.Tensor
    final_latent: torch.Tensor
    to_decode: torch.Tensor
    audio_latent: torch.Tensor
    frame_rate: float
    generator: torch.Generator
    timings: dict[str, float]
    info: dict[str, Any]
    source_audio: Any = None  # a2vid: the driving audio, written as it was read (not VAE-decoded)


class _PendingDecode:
    """What denoise returns: decode() once, on any thread; `total` counts denoise + decode, not the wait."""

    def __init__(self, backend: Ltx2Backend, state: _Denoised, ready: Any, denoise_s: float) -> None:
        self._backend = backend
        self._state: _Denoised | None = state
        self._ready = ready
        self._denoise_s = denoise_s

    def decode(self) -> RenderResult:
        state, self._state = self._state, None
        if state is None:
            raise RuntimeError("a pending decode runs once")
        t0 = time.perf_counter()
        result = self._backend._decode_on_side_stream(state, self._ready)
        result.timings["total"] = self._denoise_s + time.perf_counter() - t0
        return result


class _Clock:
    """Adds wall seconds per phase into `timings` (synchronizing CUDA so GPU work lands in its own phase)."""

    def __init__(self, timings: dict[str, float], device: torch.device) -> None:
        self._timings = timings
        self._device = device
        self._cuda = device.type == "cuda"

    def __call__(self, phase: str) -> _Phase:
        return _Phase(self, phase)

    def add(self, phase: str, seconds: float) -> None:
        self._timings[phase] = self._timings.get(phase, 0.0) + seconds

    def sync(self) -> None:
        if self._cuda:  # this thread's stream only: an overlapped decode on the side stream is not waited for
            torch.cuda.current_stream(self._device).synchronize()


class _Phase:
    def __init__(self, clock: _Clock, phase: str) -> None:
        self._clock, self._phase, self._t0 = clock, phase, 0.0

    def __enter__(self) -> None:
        self._clock.sync()
        self._t0 = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self._clock.sync()
        self._clock.add(self._phase, time.perf_counter() - self._t0)


__all__ = ["Ltx2Backend"]
