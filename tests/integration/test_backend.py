"""The real LTX-2 backend on the tiny official-format checkpoint: every pipeline kind, warm reuse, the latent
handoff, temporal upsampling, audio off, prompt enhancement, parity with the official pipeline classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ltx2_batch.backends.base import LatentHandoff, RenderBackend, RenderRequest, RenderResult
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.backends.tiny import TINY_LAYOUT, ensure_tiny_models, write_tiny_lora
from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.jobs import (
    ImageCondition,
    LoraKind,
    LoraSpec,
    PipelineKind,
    RenderMode,
    UpscaleSpec,
    VideoCondition,
)
from ltx2_batch.errors import FatalBackendError, MissingWeightsError
from tests.conftest import TINY_PROMPT, tiny_job
from tests.fixtures.backends import TinySet

pytestmark = pytest.mark.slow
PROMPT = TINY_PROMPT


def tiny_transformer_shapes(root: Path) -> dict[str, tuple[int, ...]]:
    """Transformer parameter shapes (module names) read from a built tiny checkpoint's header."""
    from safetensors import safe_open

    prefix = "model.diffusion_model."
    with safe_open(str(Path(root) / TINY_LAYOUT["checkpoint"]), framework="pt") as handle:
        return {
            k[len(prefix) :]: tuple(handle.get_slice(k).get_shape())
            for k in handle.keys()  # noqa: SIM118 - safe_open is not iterable
            if k.startswith(prefix) and "embeddings_connector" not in k
        }


@pytest.fixture
def backend(tiny_fp32: RenderBackend) -> RenderBackend:
    """The session's float32 tiny backend (tests/fixtures/backends.py)."""
    return tiny_fp32


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory, tiny_root: Path) -> dict[str, str]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("assets")
    yy, xx = np.mgrid[0:64, 0:64]
    first = np.stack([xx * 4, yy * 4, np.full_like(xx, 128)], -1).astype(np.uint8)
    Image.fromarray(first).save(folder / "first.png")
    Image.fromarray(255 - first).save(folder / "last.png")
    video = folder / "reference.mp4"
    _write_video(video, [np.roll(first, 4 * i, axis=1) for i in range(9)])
    gen = torch.Generator().manual_seed(7)
    lora = write_tiny_lora(
        folder / "user-lora.safetensors",
        tiny_transformer_shapes(tiny_root),
        gen,
        ("attn2.to_out", "ff."),
        scale=0.2,
    )
    return {
        "first": str(folder / "first.png"),
        "last": str(folder / "last.png"),
        "video": str(video),
        "lora": str(lora),
        "ic_lora": str(tiny_root / "checkpoints/ltx-2-tiny-ic-lora.safetensors"),
    }


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def render(backend: RenderBackend, **kw: object) -> RenderResult:
    return backend.render(RenderRequest(job=tiny_job(**kw)))


def test_distilled_returns_frames_audio_latents_and_timings(backend: RenderBackend) -> None:
    assert isinstance(backend, RenderBackend)
    out = render(backend)
    assert out.frames.shape == (9, 64, 64, 3)
    assert out.frames.dtype == np.uint8
    assert out.frames.std() > 0  # not a constant image
    assert out.audio.dtype == np.float32
    assert out.audio.ndim == 2
    assert out.sample_rate == 24000
    assert abs(out.audio.shape[1] / out.sample_rate - 9 / 24) < 0.05  # audio lasts as long as the video
    assert tuple(out.stage1_latent.shape) == (1, 128, 2, 1, 1)  # half size: 32 px -> 1 latent px
    assert tuple(out.final_latent.shape) == (1, 128, 2, 2, 2)
    assert {"text_encode", "stage1", "upsample", "stage2", "decode_video", "decode_audio", "total"} <= set(
        out.timings
    )
    assert out.info["dtype"] == "float32"
    assert out.info["device"] == "cpu"
    assert out.info["sigmas"]["stage2"][0] == pytest.approx(0.909375)
    assert backend.temporal_scale == 8


def test_same_seed_is_bit_identical_and_seed_matters(backend: RenderBackend) -> None:
    a, b, c = render(backend, seed=5), render(backend, seed=5), render(backend, seed=6)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.audio, b.audio)
    assert torch.equal(a.final_latent, b.final_latent)
    assert not torch.equal(a.final_latent, c.final_latent)


def test_second_job_reads_no_weights(backend: RenderBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors

    render(backend)  # warm for this kind
    opened: list[str] = []
    real_open = safetensors.safe_open

    def counting_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", counting_open)
    builds = dict(backend.cache.builds)
    transformer = backend.cache.get("transformer:")
    render(backend, seed=11, prompt="another prompt")
    assert opened == []
    assert dict(backend.cache.builds) == builds
    assert backend.cache.get("transformer:") is transformer
    assert backend.prepare(PipelineKind.DISTILLED, ()) == 0.0


def test_ti2vid_two_stage_and_one_stage(backend: RenderBackend) -> None:
    two = render(backend, pipeline=PipelineKind.TI2VID)
    assert two.frames.shape == (9, 64, 64, 3)
    assert tuple(two.stage1_latent.shape) == (1, 128, 2, 1, 1)
    assert len(two.info["sigmas"]["stage1"]) == 3  # LTX2Scheduler, 2 steps
    one = render(
        backend, pipeline=PipelineKind.TI2VID, upscale=UpscaleSpec(spatial=False), width=32, height=32
    )
    assert one.frames.shape == (9, 32, 32, 3)
    assert "stage2" not in one.info["sigmas"]
    assert one.timings["stage2"] == 0.0
    assert tuple(one.final_latent.shape) == (1, 128, 2, 1, 1)
    # both stage transformers (user LoRAs, + distilled LoRA) are held for the kind
    assert sum(name.startswith("transformer:") for name in backend.cache.names()) == 2


def test_keyframe_interpolates_between_two_images(backend: RenderBackend, assets: dict[str, str]) -> None:
    images = (ImageCondition(assets["first"], 0, 1.0), ImageCondition(assets["last"], 8, 1.0))
    key = render(backend, pipeline=PipelineKind.KEYFRAME, images=images)
    plain = render(backend, pipeline=PipelineKind.KEYFRAME)
    assert key.frames.shape == (9, 64, 64, 3)
    assert not np.array_equal(key.frames, plain.frames)


def test_image_conditioning_changes_ti2vid(backend: RenderBackend, assets: dict[str, str]) -> None:
    with_image = render(backend, pipeline=PipelineKind.TI2VID, images=(ImageCondition(assets["first"]),))
    without = render(backend, pipeline=PipelineKind.TI2VID)
    assert not np.array_equal(with_image.frames, without.frames)


def test_ic_lora_with_reference_video(backend: RenderBackend, assets: dict[str, str]) -> None:
    ic = (LoraSpec(assets["ic_lora"], 1.0, LoraKind.IC_LORA),)
    out = render(
        backend,
        pipeline=PipelineKind.IC_LORA,
        loras=ic,
        video_conditioning=(VideoCondition(assets["video"], 1.0),),
    )
    plain = render(backend)
    assert out.frames.shape == (9, 64, 64, 3)
    assert not np.array_equal(out.frames, plain.frames)
    with pytest.raises(FatalBackendError, match="video_conditioning"):
        render(backend, pipeline=PipelineKind.IC_LORA, loras=ic)


def test_user_lora_builds_its_own_transformer_and_changes_output(
    backend: RenderBackend, assets: dict[str, str]
) -> None:
    plain = render(backend)
    lora = (LoraSpec(assets["lora"], 1.0),)
    with_lora = render(backend, loras=lora)
    names = [n for n in backend.cache.names() if n.startswith("transformer:")]
    assert names == [f"transformer:{assets['lora']}@1.0"]  # the plain one was freed on the switch
    assert not np.array_equal(plain.frames, with_lora.frames)


def test_temporal_upsampler_doubles_frames(backend: RenderBackend) -> None:
    out = render(backend, upscale=UpscaleSpec(spatial=True, temporal=True))
    assert out.frames.shape == (17, 64, 64, 3)  # 2 latent frames -> 3 -> 1 + 2*8 pixel frames
    assert out.frame_rate == 48.0
    assert tuple(out.final_latent.shape) == (1, 128, 2, 2, 2)  # handoff grid stays the generation grid


def test_audio_off(backend: RenderBackend) -> None:
    out = render(backend, audio=False)
    assert out.audio is None
    assert out.sample_rate is None
    assert out.timings["decode_audio"] == 0.0


def test_latent_handoff_keeps_the_previous_tail(backend: RenderBackend) -> None:
    first = render(backend, num_frames=17, seed=1)
    tail = LatentHandoff(stage1=first.stage1_latent[:, :, -1:], final=first.final_latent[:, :, -1:])
    second = backend.render(RenderRequest(job=tiny_job(num_frames=17, seed=2), handoff=tail))
    free = render(backend, num_frames=17, seed=2)
    assert torch.equal(second.stage1_latent[:, :, :1], tail.stage1)
    assert torch.equal(second.final_latent[:, :, :1], tail.final)
    assert not torch.equal(free.final_latent[:, :, :1], tail.final)
    assert not np.array_equal(second.frames, free.frames)


def test_prompt_enhancement_runs_through_the_loaded_gemma(backend: RenderBackend) -> None:
    out = render(backend, enhance_prompt=True)
    assert isinstance(out.info["prompt"], str)
    assert out.info["prompt"] != PROMPT


def test_bad_resolution_is_a_fatal_backend_error(backend: RenderBackend) -> None:
    with pytest.raises(FatalBackendError, match="divisible by 64"):
        render(backend, width=96, height=64)
    with pytest.raises(FatalBackendError, match="8k\\+1"):
        render(backend, num_frames=10)


def test_121_frames_at_64x64(backend: RenderBackend) -> None:
    out = render(backend, num_frames=121)
    assert out.frames.shape == (121, 64, 64, 3)
    assert out.timings["total"] < 120


def test_missing_weights_lists_paths_and_command(tmp_path: Path) -> None:
    cfg = ModelConfig(name="ltx-2", source=ModelSource.checkpoint, root=str(tmp_path / "models"))
    with pytest.raises(MissingWeightsError) as err:
        create_backend(cfg, tmp_path)
    text = str(err.value)
    assert str(tmp_path / "models/checkpoints/ltx-2-19b-distilled.safetensors") in text
    assert "fp8" not in text  # a CPU cannot run the fp8 checkpoint, so it is not offered
    assert "hf download Lightricks/LTX-2 ltx-2-19b-distilled.safetensors" in text


# ----------------------------------------------------------------------------- parity with ltx_pipelines
@pytest.fixture
def bf16_backend(tiny_bf16: RenderBackend) -> RenderBackend:
    """The session's bfloat16 tiny backend: the official pipelines' only dtype."""
    return tiny_bf16


def _official_frames(video_iter: object) -> np.ndarray:
    return torch.cat([c.cpu() for c in video_iter], dim=0).numpy()  # type: ignore[attr-defined]


def test_parity_with_official_distilled_pipeline(
    bf16_backend: RenderBackend, tiny_root: Path, tiny_set: TinySet
) -> None:
    from ltx_pipelines.distilled import DistilledPipeline

    ours = bf16_backend.render(RenderRequest(job=tiny_job(seed=42)))
    official = DistilledPipeline(
        distilled_checkpoint_path=str(tiny_root / "checkpoints/ltx-2-tiny-distilled.safetensors"),
        gemma_root=str(tiny_root / "text_encoders/gemma3"),
        spatial_upsampler_path=str(tiny_root / "upscalers/ltx-2-tiny-spatial-upscaler-x2.safetensors"),
        loras=[],
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT, seed=42, height=64, width=64, num_frames=9, frame_rate=24.0, images=[]
        )
        frames = _official_frames(video)
    assert np.array_equal(ours.frames, frames)  # bitwise: same modules, dtype, RNG order
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())


def test_parity_with_official_two_stage_pipeline(
    bf16_backend: RenderBackend, tiny_root: Path, tiny_set: TinySet
) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.ti2vid_two_stages import TI2VidTwoStagesPipeline
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_PARAMS

    ours = bf16_backend.render(RenderRequest(job=tiny_job(seed=42, pipeline=PipelineKind.TI2VID)))
    distilled = [
        LoraPathStrengthAndSDOps(
            str(tiny_root / "checkpoints/ltx-2-tiny-distilled-lora.safetensors"),
            1.0,
            LTXV_LORA_COMFY_RENAMING_MAP,
        )
    ]
    official = TI2VidTwoStagesPipeline(
        checkpoint_path=str(tiny_root / "checkpoints/ltx-2-tiny-distilled.safetensors"),
        distilled_lora=distilled,
        spatial_upsampler_path=str(tiny_root / "upscalers/ltx-2-tiny-spatial-upscaler-x2.safetensors"),
        gemma_root=str(tiny_root / "text_encoders/gemma3"),
        loras=[],
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT,
            negative_prompt=DEFAULT_NEGATIVE_PROMPT,
            seed=42,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=24.0,
            num_inference_steps=2,
            video_guider_params=LTX_2_PARAMS.video_guider_params,
            audio_guider_params=LTX_2_PARAMS.audio_guider_params,
            images=[],
        )
        frames = _official_frames(video)
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())


def _guided_kwargs() -> dict[str, object]:
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_PARAMS

    return {
        "negative_prompt": DEFAULT_NEGATIVE_PROMPT,
        "num_inference_steps": 2,
        "video_guider_params": LTX_2_PARAMS.video_guider_params,
        "audio_guider_params": LTX_2_PARAMS.audio_guider_params,
    }


def test_parity_with_official_one_stage_pipeline(
    bf16_backend: RenderBackend, tiny_root: Path, assets: dict[str, str], tiny_set: TinySet
) -> None:
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline
    from ltx_pipelines.utils.args import ImageConditioningInput

    ours = bf16_backend.render(
        RenderRequest(
            job=tiny_job(
                seed=42,
                pipeline=PipelineKind.TI2VID,
                upscale=UpscaleSpec(spatial=False),
                images=(ImageCondition(assets["first"], 0, 1.0),),
            )
        )
    )
    official = TI2VidOneStagePipeline(
        checkpoint_path=str(tiny_root / "checkpoints/ltx-2-tiny-distilled.safetensors"),
        gemma_root=str(tiny_root / "text_encoders/gemma3"),
        loras=[],
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT,
            seed=42,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=24.0,
            images=[ImageConditioningInput(assets["first"], 0, 1.0)],
            **_guided_kwargs(),
        )
        frames = _official_frames(video)
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())


def test_parity_with_official_keyframe_pipeline(
    tiny_dev_bf16: RenderBackend, tiny_root: Path, assets: dict[str, str], tiny_set: TinySet
) -> None:
    """KeyframeInterpolationPipeline is the dev checkpoint's recipe: the tiny files play one here (on the
    distilled tiny set keyframe runs the distilled recipe: test_keyframe_distilled.py)."""
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.keyframe_interpolation import KeyframeInterpolationPipeline
    from ltx_pipelines.utils.args import ImageConditioningInput

    images = (ImageCondition(assets["first"], 0, 1.0), ImageCondition(assets["last"], 8, 0.9))
    ours = tiny_dev_bf16.render(
        RenderRequest(job=tiny_job(seed=42, pipeline=PipelineKind.KEYFRAME, images=images))
    )
    distilled = [
        LoraPathStrengthAndSDOps(
            str(tiny_root / "checkpoints/ltx-2-tiny-distilled-lora.safetensors"),
            1.0,
            LTXV_LORA_COMFY_RENAMING_MAP,
        )
    ]
    official = KeyframeInterpolationPipeline(
        checkpoint_path=str(tiny_root / "checkpoints/ltx-2-tiny-distilled.safetensors"),
        distilled_lora=distilled,
        spatial_upsampler_path=str(tiny_root / "upscalers/ltx-2-tiny-spatial-upscaler-x2.safetensors"),
        gemma_root=str(tiny_root / "text_encoders/gemma3"),
        loras=[],
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT,
            seed=42,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=24.0,
            images=[ImageConditioningInput(i.path, i.frame_idx, i.strength) for i in images],
            **_guided_kwargs(),
        )
        frames = _official_frames(video)
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())


def test_parity_with_official_ic_lora_pipeline(
    bf16_backend: RenderBackend, tiny_root: Path, assets: dict[str, str], tiny_set: TinySet
) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_pipelines.ic_lora import ICLoraPipeline

    ours = bf16_backend.render(
        RenderRequest(
            job=tiny_job(
                seed=42,
                pipeline=PipelineKind.IC_LORA,
                loras=(LoraSpec(assets["ic_lora"], 1.0, LoraKind.IC_LORA),),
                video_conditioning=(VideoCondition(assets["video"], 1.0),),
            )
        )
    )
    official = ICLoraPipeline(
        distilled_checkpoint_path=str(tiny_root / "checkpoints/ltx-2-tiny-distilled.safetensors"),
        spatial_upsampler_path=str(tiny_root / "upscalers/ltx-2-tiny-spatial-upscaler-x2.safetensors"),
        gemma_root=str(tiny_root / "text_encoders/gemma3"),
        loras=[LoraPathStrengthAndSDOps(assets["ic_lora"], 1.0, LTXV_LORA_COMFY_RENAMING_MAP)],
        device=torch.device("cpu"),
    )
    with torch.inference_mode(), tiny_set.gemma_scope():  # the official Gemma reads ltx-core's constant
        video, audio = official(
            prompt=PROMPT,
            seed=42,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=24.0,
            images=[],
            video_conditioning=[(assets["video"], 1.0)],
        )
        frames = _official_frames(video)
    assert np.array_equal(ours.frames, frames)
    assert np.array_equal(ours.audio, audio.waveform.cpu().numpy())


def test_tiny_build_is_deterministic_atomic_and_done_once(tiny_root: Path, tmp_path: Path) -> None:
    import hashlib

    from ltx2_batch.backends.tiny import TINY_LAYOUT

    def digests(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    # Built in a fresh process (as a user's first run does), compared with the set this process built
    # before any test ran: same seed, same bytes, whatever else ran in either process.
    import subprocess
    import sys

    built = subprocess.run(
        [sys.executable, "-m", "ltx2_batch.backends.tiny", str(tmp_path / "tiny")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert json.loads(built.stdout)["built"] is True
    first, second = digests(tiny_root), digests(tmp_path / "tiny")
    assert sorted(k for k in first if first[k] != second.get(k)) == []
    assert first.keys() == second.keys()
    assert all((tmp_path / "tiny" / rel).exists() for rel in TINY_LAYOUT.values())
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no temporary folder left behind
    assert not ensure_tiny_models(tmp_path / "tiny").built  # second call: nothing to do


def test_a_job_the_model_cannot_render_fails_before_anything_is_loaded(
    tiny_root: Path, tmp_path: Path
) -> None:
    """A size the official pipelines refuse (not a multiple of 32) that slipped past the manifest checks fails
    in the executor with the backend's message, and the cold backend has built no model for it."""
    from ltx2_batch.core.jobs import with_job_id
    from ltx2_batch.core.outcome import WorkerIdentity
    from ltx2_batch.storage.layout import OutputLayout
    from ltx2_batch.worker.executor import JobExecutor, RunOutput
    from ltx2_batch.worker.job_files import JobFiles

    cold = create_backend(ModelConfig(root=str(tiny_root)), Path("/"))
    executor = JobExecutor(cold, WorkerIdentity("t", "local"))
    out = RunOutput(JobFiles(OutputLayout(tmp_path / "out"), {}))
    try:
        bad = with_job_id(tiny_job(width=100), "bad-width")
        outcome = executor.execute(bad, out)
        assert outcome.status == "failed"
        assert "100" in (outcome.error or "") and "FatalBackendError" in (outcome.error or "")
        assert not cold.cache.builds and not cold.cache.names()  # nothing was built or loaded
        long_bad = with_job_id(tiny_job(width=100, num_frames=300, mode=RenderMode.CHAINED), "bad-chained")
        assert executor.execute(long_bad, out).status == "failed" and not cold.cache.builds
    finally:
        executor.close()
