"""Corners that used to fail inside the model: image-to-video prompt enhancement on the embedded Gemma
(its vision projector makes 4 soft tokens per image, not real Gemma's 256), and the smallest one-frame
renders the validator accepts (two-stage 64x64 x 1 frame is refused: the upsampler's GroupNorm cannot
take a single latent cell). On both embedded sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.families import ModelFamily
from ltx2_batch.core.jobs import ImageCondition, PipelineKind, RenderJob, RenderMode, UpscaleSpec
from ltx2_batch.errors import ManifestError
from tests.manifests import manifest_jobs

pytestmark = pytest.mark.slow


@pytest.fixture
def backend(family_fp32: RenderBackend) -> RenderBackend:
    """The session's float32 backend of each embedded set in turn (tests/fixtures/backends.py)."""
    return family_fp32


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "first.png"
    yy, xx = np.mgrid[0:64, 0:64]
    Image.fromarray(np.stack([xx * 4, yy * 4, np.full_like(xx, 128)], -1).astype(np.uint8)).save(path)
    return str(path)


def _job(**kw: object) -> RenderJob:
    base = {
        "name": "t",
        "prompt": "A cat walks on a sunny street.",
        "width": 64,
        "height": 64,
        "num_frames": 9,
        "frame_rate": 24.0,
        "seed": 3,
        "pipeline": PipelineKind.DISTILLED,
        "mode": RenderMode.VIDEO,
    }
    return RenderJob(**{**base, **kw})  # type: ignore[arg-type]


def test_enhance_prompt_with_an_image(backend: RenderBackend, picture: str) -> None:
    image = (ImageCondition(path=picture, frame_idx=0, strength=1.0),)
    out = backend.render(RenderRequest(job=_job(enhance_prompt=True, images=image)))
    assert isinstance(out.info["prompt"], str) and out.info["prompt"] != "A cat walks on a sunny street."
    assert out.frames.shape == (9, 64, 64, 3)


@pytest.mark.parametrize(
    ("width", "height", "spatial"), [(128, 64, True), (64, 128, True), (32, 32, False)], ids=str
)
def test_smallest_one_frame_renders(backend: RenderBackend, width: int, height: int, spatial: bool) -> None:
    job = _job(width=width, height=height, num_frames=1, mode=RenderMode.IMAGE, upscale=UpscaleSpec(spatial))
    out = backend.render(RenderRequest(job=job))
    assert out.frames.shape == (1, height, width, 3)


def test_one_frame_two_stage_64x64_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    still = {"name": "still", "prompt": "a lemon", "width": 64, "height": 64, "num_frames": 1}
    path.write_text(yaml.safe_dump({"jobs": [still]}))
    with pytest.raises(ManifestError) as caught:
        manifest_jobs(path)
    [problem] = caught.value.problems
    assert (problem.job_name, problem.field) == ("still", "width")
    assert "upscale.spatial: false" in problem.message and "128" in problem.message
    path.write_text(
        yaml.safe_dump({"jobs": [{**still, "num_frames": 9}, {**still, "name": "b", "width": 128}]})
    )
    assert len(manifest_jobs(path)) == 2


def test_spatial_x1_5_on_tiny23(tiny23_fp32: RenderBackend) -> None:
    """`upscale.spatial: 1.5`: stage 1 at 2/3 of the size (a 2x2 latent for 96x96), the x1.5 upsampler
    (rational resampler) to the 3x3 latent of the target, stage 2 there."""
    job = _job(width=96, height=96, upscale=UpscaleSpec(spatial=True, spatial_scale=1.5))
    out = tiny23_fp32.render(RenderRequest(job=job))
    assert out.frames.shape == (9, 96, 96, 3)
    assert tuple(out.stage1_latent.shape[-2:]) == (2, 2) and tuple(out.final_latent.shape[-2:]) == (3, 3)
    assert out.info["recipe"]["spatial_scale"] == 1.5


def test_spatial_x1_5_rules(tmp_path: Path) -> None:
    from ltx2_batch.run.planning import weights_offer

    path = tmp_path / "m.yaml"
    base = {"prompt": "a lemon", "num_frames": 9, "upscale": {"spatial": 1.5}}
    jobs = [
        {**base, "name": "ok", "width": 96, "height": 192},
        {**base, "name": "off_grid", "width": 128, "height": 96},
        {**base, "name": "bad_scale", "width": 192, "height": 192, "upscale": {"spatial": 3}},
    ]
    path.write_text(yaml.safe_dump({"jobs": jobs}))
    tiny23 = weights_offer(ModelConfig(family=ModelFamily.ltx23), tmp_path)
    with pytest.raises(ManifestError) as caught:
        manifest_jobs(path, weights=tiny23)
    found = {(p.job_name, p.field): p.message for p in caught.value.problems}
    assert set(found) == {("off_grid", "width"), ("bad_scale", "upscale.spatial")}
    assert "multiple of 96" in found[("off_grid", "width")] and "96 or 192" in found[("off_grid", "width")]
    path.write_text(yaml.safe_dump({"jobs": jobs[:1]}))
    [job] = manifest_jobs(path, weights=tiny23)
    assert job.upscale.spatial_scale == 1.5
    # the LTX-2 tiny set has no x1.5 file: refused before any model work
    with pytest.raises(ManifestError, match=r"x1\.5 spatial upsampler"):
        manifest_jobs(path, weights=weights_offer(ModelConfig(), tmp_path))
