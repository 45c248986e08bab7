"""`Ltx2Backend`: the RenderBackend on the official LTX-2 building blocks. THE ONLY importer of ltx_pipelines.

Owns: composing one render window from the official pieces (ModelLedger builders, generate_enhanced_prompt,
the image/keyframe/reference-video conditioning helpers, denoise_audio_video, euler_denoising_loop,
MultiModalGuider factories, upsample_video, decode_video / decode_audio) step by step as the official
pipelines do (distilled.py, ti2vid_one_stage.py, ti2vid_two_stages.py, keyframe_interpolation.py, ic_lora.py),
with three differences: the dtype comes from the manager's DevicePolicy instead of a hard-coded bf16, built
models are held across jobs (ModelCache) instead of rebuilt per call, and the latents are returned and can be
handed in (the chaining stage's latent handoff). No model math is re-implemented here. It also applies the
memory policy (memory.py: text encoder parked after encoding, tiled decode, fp8), keeps a per-backend LRU of
prompt encodings, can split a render into denoise now and decode later (`denoise`: the decode runs on another
thread and, on CUDA, its own stream, so it overlaps the next job's denoise), and, for model=ltx2_random, gives
the official builders random_weights' loader.
Must not: write files, choose devices (manager.py does), or leak torch types into the pure core except as the
opaque tensors RenderResult carries. Over 400 lines because the five official recipes are followed step by
step in one place (so a diff against ltx_pipelines stays readable); policy and caching live in manager.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from ltx2_batch.backends import compat

compat.prepare()  # torchaudio + torch.cuda.synchronize shims must precede the first ltx_core import

import torch  # noqa: E402
from ltx_core.components.diffusion_steps import EulerDiffusionStep  # noqa: E402
from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory  # noqa: E402
from ltx_core.components.noisers import GaussianNoiser  # noqa: E402
from ltx_core.components.schedulers import LTX2Scheduler  # noqa: E402
from ltx_core.conditioning import VideoConditionByLatentIndex, VideoConditionByReferenceLatent  # noqa: E402
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps  # noqa: E402
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder  # noqa: E402
from ltx_core.model.audio_vae import decode_audio as vae_decode_audio  # noqa: E402
from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video  # noqa: E402
from ltx_core.model.video_vae import TilingConfig  # noqa: E402
from ltx_core.model.video_vae import decode_video as vae_decode_video  # noqa: E402
from ltx_core.quantization import QuantizationPolicy  # noqa: E402
from ltx_core.types import VideoPixelShape  # noqa: E402
from ltx_pipelines.ic_lora import _read_lora_reference_downscale_factor  # noqa: E402
from ltx_pipelines.utils import ModelLedger, euler_denoising_loop  # noqa: E402
from ltx_pipelines.utils.args import ImageConditioningInput  # noqa: E402
from ltx_pipelines.utils.constants import (  # noqa: E402
    DEFAULT_LORA_STRENGTH,
    DEFAULT_NEGATIVE_PROMPT,
    DISTILLED_SIGMA_VALUES,
    STAGE_2_DISTILLED_SIGMA_VALUES,
    PipelineParams,
    detect_params,
)
from ltx_pipelines.utils.helpers import (  # noqa: E402
    assert_resolution,
    combined_image_conditionings,
    denoise_audio_video,
    generate_enhanced_prompt,
    image_conditionings_by_adding_guiding_latent,
    multi_modal_guider_factory_denoising_func,
    simple_denoising_func,
)
from ltx_pipelines.utils.media_io import load_video_conditioning  # noqa: E402
from ltx_pipelines.utils.types import PipelineComponents  # noqa: E402

from ltx2_batch.backends import random_weights  # noqa: E402
from ltx2_batch.backends.base import LatentHandoff, PendingDecode, RenderRequest, RenderResult  # noqa: E402
from ltx2_batch.backends.manager import DevicePolicy, ModelCache, PromptCache  # noqa: E402
from ltx2_batch.backends.memory import (  # noqa: E402
    ACTIVATION_BYTES,
    REFERENCE_JOB,
    MemoryPlan,
    ModelFootprint,
    choose_memory_policy,
    decode_peak_bytes,
)
from ltx2_batch.backends.models import ModelFiles  # noqa: E402
from ltx2_batch.errors import FatalBackendError  # noqa: E402
from ltx2_batch.families import spec as family_spec  # noqa: E402
from ltx2_batch.jobs import GuiderSpec, LoraKind, LoraSpec, PipelineKind, RenderJob  # noqa: E402

SHARED_MODULES = (
    "text_encoder",
    "embeddings_processor",
    "video_encoder",
    "video_decoder",
    "audio_decoder",
    "vocoder",
    "spatial_upsampler",
    "temporal_upsampler",
)
Loras = tuple[LoraPathStrengthAndSDOps, ...]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _KindPlan:
    """How one pipeline kind maps onto the official recipe (which transformer per stage, guidance, images)."""

    guided: bool  # stage 1: CFG/STG, negative prompt, LTX2Scheduler (ti2vid, keyframe); else distilled sigmas
    keyframe_images: bool  # images as guiding latents (keyframe_interpolation.py) vs latent replacement at 0
    stage1_loras: Loras
    stage2_loras: Loras
    reference_videos: bool


def _transformer_name(loras: Loras) -> str:
    return "transformer:" + "|".join(f"{lo.path}@{lo.strength}" for lo in loras)


class Ltx2Backend:
    """A warm LTX-2 model set in one process. One render at a time (one per Ray actor); the only concurrency
    it allows is one pending decode (from `denoise`) running beside the next denoise."""

    def __init__(
        self,
        files: ModelFiles,
        policy: DevicePolicy,
        *,
        random_seed: int | None = None,
        force_fp8: bool = False,
        prompt_cache_size: int = 64,
        free_bytes: int | None = None,
    ) -> None:
        """`random_seed` set: `files` is the header-only full-size set (random_weights.py) and every weight is
        generated on the device from that seed. `free_bytes`: device memory free at start (None: host memory),
        from which the memory policy is chosen."""
        if files.checkpoint is None or files.gemma_root is None:
            files.require(("checkpoint", "gemma_root"))
        self.files = files
        self.policy = policy
        self.random_seed = random_seed
        self.free_bytes = free_bytes
        self.device = torch.device(policy.device)
        self.dtype = getattr(torch, policy.dtype)
        compat.use_gemma_config(files.gemma_root)  # the Gemma folder describes itself (tiny or 12B)
        fp8 = (files.is_fp8 or force_fp8) and policy.allow_fp8
        self.quantization = QuantizationPolicy.fp8_cast() if fp8 else None
        self.params: PipelineParams = detect_params(str(files.checkpoint))
        self.components = PipelineComponents(dtype=self.dtype, device=self.device)
        self._ledger = self._make_ledger()
        self.cache = ModelCache(policy.device, keep_always=SHARED_MODULES)
        self.prompts = PromptCache(prompt_cache_size)
        self.memory_plan: MemoryPlan | None = None
        self._warm: tuple[PipelineKind, tuple[LoraSpec, ...]] | None = None
        self._decode_stream: Any = None  # CUDA: the stream overlapped decodes run on (made on first use)

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
        return self._randomized(ledger)

    def _randomized(self, ledger_or_builder: Any) -> Any:
        """Random source: the same official builders, with weights generated instead of read."""
        if self.random_seed is None:
            return ledger_or_builder
        return random_weights.install_random_loaders(ledger_or_builder, self.random_seed, self.dtype)

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
            model = self._randomized(self._ledger.with_loras(loras)).transformer()
            # ltx-core's LoRA fusion (DummyRegistry path) leaves weights no LoRA touches in the checkpoint's
            # dtype (bf16) whatever dtype was asked for; casting them is exact, as in the no-LoRA path.
            return model.to(self.dtype) if loras and self.quantization is None else model

        return build

    def _temporal_upsampler(self) -> Any:
        if self.files.temporal_upsampler is None:
            self.files.require(("temporal_upsampler",))
        builder = self._randomized(
            SingleGPUModelBuilder(
                model_path=str(self.files.temporal_upsampler),
                model_class_configurator=LatentUpsamplerConfigurator,
            )
        )
        return self.cache.ensure(
            "temporal_upsampler",
            lambda: builder.build(device=self.device, dtype=self.dtype).to(self.device).eval(),
        )

    def _apply_memory_plan(self, n_transformers: int) -> None:
        """Choose the memory policy from the device's free memory (memory.py) and apply it: which modules may
        be parked on the CPU, fp8 for transformers not built yet, tiled decode (read in _render)."""
        plan = choose_memory_policy(self.free_bytes, self._footprint(n_transformers))
        if plan.fp8_transformer and self.quantization is None:
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
        """Bytes per group: parameter counts for the random set, file sizes for real checkpoints."""
        elem = torch.empty((), dtype=self.dtype).element_size()
        activations = ACTIVATION_BYTES * elem // 2  # the estimate is for bf16 activations
        decode = decode_peak_bytes(*REFERENCE_JOB) * elem // 2
        fp8_ok = self.policy.allow_fp8
        if self.random_seed is not None:
            counts = random_weights.footprint_params(n_transformers)
            transformer = counts["transformer"] * elem
            return ModelFootprint(
                transformer=transformer if self.quantization is None else counts["transformer"],
                text_encoder=counts["text_encoder"] * elem,
                other=counts["other"] * elem,
                activations=activations,
                decode=decode,
                transformer_fp8=counts["transformer"] if fp8_ok else None,
            )
        ckpt = self.files.checkpoint.stat().st_size if self.files.checkpoint else 0
        gemma = sum(p.stat().st_size for p in self.files.gemma_root.rglob("*.safetensors"))
        uppers = [self.files.spatial_upsampler, self.files.temporal_upsampler]
        other = sum(p.stat().st_size for p in uppers if p is not None)
        transformer = ckpt * n_transformers  # the file also holds VAE/vocoder/connectors: on the safe side
        return ModelFootprint(
            transformer=transformer,
            text_encoder=gemma,
            other=other,
            activations=activations,
            decode=decode,
            transformer_fp8=(transformer if self.files.is_fp8 else transformer // 2 + transformer // 10)
            if fp8_ok
            else None,
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
        two_stage = job.upscale.spatial
        if two_stage and self.files.spatial_upsampler is None:
            self.files.require(("spatial_upsampler",))
        try:
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
        with torch.inference_mode():
            return self._denoise(job, plan, two_stage, request.handoff, timings)

    def _denoise(
        self,
        job: RenderJob,
        plan: _KindPlan,
        two_stage: bool,
        handoff: LatentHandoff | None,
        timings: dict[str, float],
    ) -> _Denoised:
        clock = _Clock(timings, self.device)
        generator = torch.Generator(device=self.device).manual_seed(job.seed)
        noiser = GaussianNoiser(generator=generator)
        stepper = EulerDiffusionStep()
        images = [
            ImageConditioningInput(path=i.path, frame_idx=i.frame_idx, strength=i.strength)
            for i in job.images
        ]

        with clock("text_encode"):
            prompt = job.prompt
            if job.enhance_prompt:
                image = images[0].path if images else None
                prompt = self.prompts.get_or_make(
                    ("enhanced", job.prompt, image, job.seed),
                    lambda: generate_enhanced_prompt(
                        self.cache.get("text_encoder"), job.prompt, image, seed=job.seed
                    ),
                )
            negative = job.negative_prompt or DEFAULT_NEGATIVE_PROMPT
            contexts = [self._encoded(text) for text in ([prompt, negative] if plan.guided else [prompt])]
            self.cache.park("text_encoder")  # memory policy offload_text_encoder: off the device until needed
        v_ctx, a_ctx = contexts[0].video_encoding, contexts[0].audio_encoding

        scale = 2 if two_stage else 1
        shape1 = VideoPixelShape(
            batch=1,
            frames=job.num_frames,
            width=job.width // scale,
            height=job.height // scale,
            fps=job.frame_rate,
        )
        video_encoder = self.cache.get("video_encoder")
        with clock("stage1"):
            conds1 = self._image_conditionings(plan, images, shape1, video_encoder)
            if plan.reference_videos:
                conds1 += self._reference_conditionings(job, shape1, video_encoder)
            conds1 += _handoff_conditioning(
                handoff.stage1 if handoff else None, handoff, self.dtype, self.device
            )
            transformer = self.cache.get(_transformer_name(plan.stage1_loras))
            if plan.guided:
                steps = job.num_inference_steps or self.params.num_inference_steps
                sigmas1 = LTX2Scheduler().execute(steps=steps).to(dtype=torch.float32, device=self.device)
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
                sigmas1 = torch.Tensor(DISTILLED_SIGMA_VALUES).to(self.device)
                denoise_fn = simple_denoising_func(
                    video_context=v_ctx, audio_context=a_ctx, transformer=transformer
                )
            video_state, audio_state = denoise_audio_video(
                output_shape=shape1,
                conditionings=conds1,
                noiser=noiser,
                sigmas=sigmas1,
                stepper=stepper,
                denoising_loop_fn=_loop(denoise_fn),
                components=self.components,
                dtype=self.dtype,
                device=self.device,
            )
        stage1_latent = video_state.latent
        sigmas = {"stage1": [float(s) for s in sigmas1]}

        if two_stage:
            with clock("upsample"):
                upscaled = upsample_video(
                    latent=video_state.latent[:1],
                    video_encoder=video_encoder,
                    upsampler=self.cache.get("spatial_upsampler"),
                )
            with clock("stage2"):
                shape2 = shape1._replace(width=job.width, height=job.height)
                conds2 = self._image_conditionings(plan, images, shape2, video_encoder)
                conds2 += _handoff_conditioning(
                    handoff.final if handoff else None, handoff, self.dtype, self.device
                )
                transformer = self.cache.get(_transformer_name(plan.stage2_loras))
                sigmas2 = torch.Tensor(STAGE_2_DISTILLED_SIGMA_VALUES).to(self.device)
                video_state, audio_state = denoise_audio_video(
                    output_shape=shape2,
                    conditionings=conds2,
                    noiser=noiser,
                    sigmas=sigmas2,
                    stepper=stepper,
                    denoising_loop_fn=_loop(
                        simple_denoising_func(
                            video_context=v_ctx, audio_context=a_ctx, transformer=transformer
                        )
                    ),
                    components=self.components,
                    dtype=self.dtype,
                    device=self.device,
                    noise_scale=sigmas2[0],
                    initial_video_latent=upscaled,
                    initial_audio_latent=audio_state.latent,
                )
            sigmas["stage2"] = [float(s) for s in sigmas2]
        final_latent = video_state.latent

        frame_rate = job.frame_rate
        to_decode = final_latent
        if job.upscale.temporal:
            with clock("upsample"):
                to_decode = upsample_video(
                    latent=final_latent[:1], video_encoder=video_encoder, upsampler=self._temporal_upsampler()
                )
            frame_rate = job.frame_rate * 2
        info = {  # read here, on the rendering thread: the decode may run on another one
            "device": str(self.device),
            "dtype": self.policy.dtype,
            "prompt": prompt,
            "pipeline": job.pipeline.value,
            "two_stage": two_stage,
            "sigmas": sigmas,
            "offload": self.cache.offload,
            "resident_bytes": self.cache.resident_bytes(),
            "fp8": self.quantization is not None,
            "temporal_upsampled": job.upscale.temporal,
            "weights": "random" if self.random_seed is not None else self.files.source,
            "model_family": self.files.family.value,  # read from the checkpoint header (model_version)
            "model_version": self.files.model_version,
            "prompt_cache": {"hits": self.prompts.hits, "misses": self.prompts.misses},
            **(self.memory_plan.as_info() if self.memory_plan else {}),
        }
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
            info=info,
        )

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
        if job.audio:
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


def _is_text_encoder(name: str) -> bool:
    return name == "text_encoder"


def _is_big_any(name: str) -> bool:
    return name == "text_encoder" or name.startswith("transformer:")


def _never_big(_name: str) -> bool:
    return False


def _handoff_conditioning(
    latent: Any, handoff: LatentHandoff | None, dtype: torch.dtype, device: torch.device
) -> list[Any]:
    """The chaining handoff: the previous chunk's tail latents kept clean at latent frame 0 of this stage."""
    if latent is None or handoff is None:
        return []
    return [
        VideoConditionByLatentIndex(
            latent=latent.to(device=device, dtype=dtype), strength=handoff.strength, latent_idx=0
        )
    ]


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


def _loop(denoise_fn: Any) -> Any:
    def denoising_loop(sigmas: torch.Tensor, video_state: Any, audio_state: Any, stepper: Any) -> Any:
        return euler_denoising_loop(
            sigmas=sigmas,
            video_state=video_state,
            audio_state=audio_state,
            stepper=stepper,
            denoise_fn=denoise_fn,
        )

    return denoising_loop


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
