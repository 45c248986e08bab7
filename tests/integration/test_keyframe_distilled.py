"""Keyframe interpolation follows the checkpoint's kind (backends/ltx2/recipes.py): on a distilled checkpoint
(the tiny set) the distilled recipe with the images as guiding latents, 8 + 3 unguided transformer forwards,
no distilled LoRA; on a dev one (the tiny files playing it) the official guided recipe. There is no official
class for the distilled variant, so this shows what runs instead of a bit-for-bit comparison: the sidecar's
recipe, the transformer forwards counted on the model itself, and that the images change the clip. The
seconds are bench/keyframe_recipes.py's (never asserted)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ltx2_batch.backends.base import RenderBackend, RenderRequest, RenderResult
from ltx2_batch.core.jobs import ImageCondition, PipelineKind, RenderJob, RenderMode

pytestmark = pytest.mark.slow
STAGE_1, STAGE_2 = 8, 3  # the distilled sigmas, then the refinement sigmas: one forward each, unguided


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageCondition, ...]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("keyframes")
    yy, xx = np.mgrid[0:64, 0:64]
    first = np.stack([xx * 4, yy * 4, np.full_like(xx, 128)], -1).astype(np.uint8)
    Image.fromarray(first).save(folder / "first.png")
    Image.fromarray(255 - first).save(folder / "last.png")
    return (
        ImageCondition(str(folder / "first.png"), 0, 1.0),
        ImageCondition(str(folder / "last.png"), 8, 1.0),
    )


def _job(pipeline: PipelineKind, images: tuple[ImageCondition, ...] = (), **kw: Any) -> RenderJob:
    return RenderJob(
        name="k",
        prompt="A red disc turns blue.",
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24.0,
        seed=3,
        pipeline=pipeline,
        mode=RenderMode.VIDEO,
        images=images,
        audio=False,
        **kw,
    )


@contextmanager
def counted_forwards(backend: Any, job: RenderJob) -> Iterator[list[int]]:
    """Calls of the job's transformers (both stages: one model when their LoRAs agree), counted by a forward
    hook on each model: what runs is unchanged."""
    backend.prepare(job.pipeline, job.loras)
    plan = backend._resolve(job.pipeline, job.loras)  # the recipe the job resolves to
    models = {
        id(m): m for m in (backend.transformer(plan.loras.stage1), backend.transformer(plan.loras.stage2))
    }
    count = [0]

    def hook(*_: object) -> None:
        count[0] += 1

    handles = [m.register_forward_hook(hook) for m in models.values()]
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()


def _render(backend: RenderBackend, job: RenderJob) -> tuple[RenderResult, int]:
    with counted_forwards(backend, job) as count:
        result = backend.render(RenderRequest(job=job))
    return result, count[0]


def test_keyframe_on_a_distilled_checkpoint_runs_the_distilled_recipe(
    tiny_fp32: RenderBackend, images: tuple[ImageCondition, ...]
) -> None:
    keyframe, forwards = _render(tiny_fp32, _job(PipelineKind.KEYFRAME, images, num_inference_steps=40))
    info = keyframe.info
    assert (info["pipeline"], info["checkpoint_kind"]) == ("keyframe", "distilled")
    assert info["recipe"]["guidance"] is False  # and the job's 40 steps are not what runs
    assert (info["recipe"]["stage_1_steps"], info["recipe"]["stage_2_steps"]) == (STAGE_1, STAGE_2)
    assert info["recipe"]["stage_2_distilled_lora"] is False
    assert forwards == STAGE_1 + STAGE_2
    # the images are what makes it keyframe interpolation: without them the clip is another one
    without, _ = _render(tiny_fp32, _job(PipelineKind.KEYFRAME, num_inference_steps=40))
    assert not np.array_equal(keyframe.frames, without.frames)
    # as many forwards as a plain distilled job of the same shape (the dev recipe's 40 guided steps were 183 s
    # against 12-20 s for the distilled jobs of the same run on the tiny model)
    plain, plain_forwards = _render(tiny_fp32, _job(PipelineKind.DISTILLED))
    assert plain_forwards == forwards
    assert plain.info["recipe"] == {**info["recipe"]}
    assert not np.array_equal(keyframe.frames, plain.frames)


def test_keyframe_on_a_dev_checkpoint_stays_guided(
    tiny_dev_bf16: RenderBackend, images: tuple[ImageCondition, ...]
) -> None:
    """The official recipe (bit for bit: test_backend.py's keyframe parity): guided stage 1 (CFG, STG and the
    modality pass: 4 forwards a step at the family's defaults), the distilled LoRA in stage 2."""
    result, forwards = _render(tiny_dev_bf16, _job(PipelineKind.KEYFRAME, images, num_inference_steps=2))
    recipe = result.info["recipe"]
    assert result.info["checkpoint_kind"] == "dev"
    assert recipe["guidance"] is True and recipe["stage_2_distilled_lora"] is True
    assert (recipe["stage_1_steps"], recipe["stage_2_steps"]) == (2, STAGE_2)
    assert forwards == 2 * 4 + STAGE_2


@pytest.mark.usefixtures("warm_run_backends")
def test_auto_keyframe_on_the_tiny_set_through_the_cli(
    tmp_path: Path, images: tuple[ImageCondition, ...], app_factory: Any
) -> None:
    """`pipeline: auto` with images at two frames on the distilled tiny set: keyframe with the distilled
    recipe, needing no distilled LoRA (the manifest refusal follows the checkpoint too), recorded in the
    sidecar and the ledger."""
    import json
    import shutil

    import pyarrow.parquet as pq

    from ltx2_batch.cli import run
    from tests.conftest import REPO_ROOT, write_manifest

    folder = tmp_path / "m"
    folder.mkdir()
    for image in images:
        shutil.copy(image.path, folder)
    manifest = write_manifest(
        folder,
        "jobs:\n  - {name: key, prompt: 'A red disc turns blue.', width: 64, height: 64, num_frames: 9,"
        " audio: false, images: [{path: first.png, frame_idx: 0}, {path: last.png, frame_idx: 8}]}\n",
    )
    assert run(app_factory(f"manifest={manifest}"), REPO_ROOT) == 0
    rows = pq.read_table(tmp_path / "outputs" / "m" / "ledger.parquet").to_pylist()
    [row] = [r for r in rows if r["row_kind"] == "job" and r["status"] == "done"]
    backend = json.loads(Path(row["sidecar_path"]).read_text())["backend"]
    assert backend["pipeline"] == row["pipeline"] == "keyframe"
    assert (row["recipe_steps"], row["recipe_guidance"], row["recipe_stage_2_lora"]) == (
        STAGE_1,
        False,
        False,
    )
