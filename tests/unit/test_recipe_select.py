"""`pipeline: auto` by checkpoint kind, and the requests the model's files cannot serve, refused at validation
(through `open_manifest`, and from the preset on the driver: `planning.weights_offer`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.families import CheckpointKind, ModelFamily, RecipeKind, auto_recipe
from ltx2_batch.core.jobs import LoraKind, PipelineKind, RenderJob
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer, select_pipeline, weights_problems
from ltx2_batch.run.planning import weights_offer
from tests.conftest import write_input_files
from tests.manifests import manifest_jobs

DISTILLED = WeightsOffer(CheckpointKind.distilled, True, ModelFamily.ltx2, "tiny")
DISTILLED_NO_LORA = WeightsOffer(
    CheckpointKind.distilled, False, ModelFamily.ltx23, "ltx23_distilled", "checkpoints/lora.safetensors"
)
DEV = WeightsOffer(CheckpointKind.dev, True, ModelFamily.ltx23, "ltx23_dev")
DEV_NO_LORA = WeightsOffer(CheckpointKind.dev, False, ModelFamily.ltx2, "ltx2_dev")
AUTO = PipelineKind.AUTO


def test_auto_follows_the_checkpoint_kind() -> None:
    assert select_pipeline(AUTO, (), (), DISTILLED) is PipelineKind.DISTILLED
    assert select_pipeline(AUTO, (), (), DEV) is PipelineKind.TI2VID
    assert select_pipeline(AUTO, (), ()) is PipelineKind.TI2VID  # a caller that says nothing: dev
    # conditioning still decides first: keyframes and IC-LoRAs have their own pipelines on any checkpoint
    assert select_pipeline(AUTO, (0, 8), (), DISTILLED) is PipelineKind.KEYFRAME
    assert select_pipeline(AUTO, (), (LoraKind.IC_LORA,), DISTILLED) is PipelineKind.IC_LORA
    assert select_pipeline(PipelineKind.TI2VID, (), (), DISTILLED) is PipelineKind.TI2VID


def test_guided_without_the_distilled_lora_is_refused() -> None:
    [(field, message)] = weights_problems(PipelineKind.TI2VID, PipelineKind.TI2VID, DISTILLED_NO_LORA)
    assert field == "pipeline"
    assert "model=ltx23_distilled" in message and "checkpoints/lora.safetensors" in message
    assert "use pipeline: distilled" in message
    [(_, keyframe)] = weights_problems(AUTO, PipelineKind.KEYFRAME, DEV_NO_LORA)
    assert keyframe.startswith("pipeline keyframe (auto-selected)")
    assert "keyframe on a dev checkpoint has no recipe without it" in keyframe
    assert weights_problems(PipelineKind.DISTILLED, PipelineKind.DISTILLED, DISTILLED_NO_LORA) == []
    assert weights_problems(PipelineKind.TI2VID, PipelineKind.TI2VID, DEV) == []
    assert weights_problems(PipelineKind.TI2VID, PipelineKind.TI2VID, ANY_WEIGHTS) == []


def test_keyframe_on_a_distilled_checkpoint_needs_no_distilled_lora() -> None:
    """On a distilled checkpoint keyframe runs the distilled recipe (no LoRA in stage 2): neither `auto` nor
    an explicit request is refused for a missing LoRA file, as `distilled` and `retake` are not."""
    for requested in (AUTO, PipelineKind.KEYFRAME):
        assert weights_problems(requested, PipelineKind.KEYFRAME, DISTILLED_NO_LORA) == []
    assert select_pipeline(AUTO, (0, 8), (), DISTILLED_NO_LORA) is PipelineKind.KEYFRAME
    assert select_pipeline(AUTO, (0, 8), (), DEV_NO_LORA) is PipelineKind.KEYFRAME
    random = weights_offer(ModelConfig(name="ltx2_random", source=ModelSource.random), Path("/"))
    assert weights_problems(AUTO, PipelineKind.KEYFRAME, random) == []
    assert weights_problems(AUTO, PipelineKind.TI2VID, random) != []  # ti2vid has no recipe without it


def test_auto_recipe_says_what_keyframe_runs() -> None:
    for family in ModelFamily:
        distilled = auto_recipe(family, CheckpointKind.distilled, keyframes=True)
        dev = auto_recipe(family, CheckpointKind.dev, keyframes=True)
        assert distilled.pipeline is dev.pipeline is PipelineKind.KEYFRAME
        assert (distilled.kind, distilled.stage_1_steps, distilled.guidance) == (
            RecipeKind.distilled,
            8,
            False,
        )
        assert not distilled.stage_2_distilled_lora
        assert (dev.kind, dev.guidance, dev.stage_2_distilled_lora) == (
            RecipeKind.guided_two_stage,
            True,
            True,
        )
        assert dev.stage_1_steps == auto_recipe(family, CheckpointKind.dev).stage_1_steps


def _load(folder: Path, jobs: list[dict], weights: WeightsOffer) -> tuple[RenderJob, ...]:
    path = folder / "m.yaml"
    base = {"prompt": "a cat", "width": 64, "height": 64, "num_frames": 9}
    path.write_text(yaml.safe_dump({"jobs": [{**base, **j} for j in jobs]}))
    return manifest_jobs(path, weights=weights)


def test_refusal_names_job_and_field(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, [{"name": "guided", "pipeline": "ti2vid"}, {"name": "ok"}], DISTILLED_NO_LORA)
    [problem] = caught.value.problems
    assert (problem.job_name, problem.field) == ("guided", "pipeline")
    assert "no distilled LoRA" in problem.render()


def test_explicit_ids_do_not_depend_on_the_weights_auto_ids_do(tmp_path: Path) -> None:
    write_input_files(tmp_path, ("a.png",))
    jobs = [{"name": "explicit", "pipeline": "ti2vid"}, {"name": "auto", "pipeline": "auto"}]
    on_dev, on_distilled = _load(tmp_path, jobs, ANY_WEIGHTS), _load(tmp_path, jobs, DISTILLED)
    assert on_dev[0].job_id == on_distilled[0].job_id
    assert [j.pipeline for j in on_dev] == [PipelineKind.TI2VID, PipelineKind.TI2VID]
    assert on_distilled[1].pipeline is PipelineKind.DISTILLED
    assert on_dev[1].job_id != on_distilled[1].job_id


def test_weights_offer_from_the_preset(tmp_path: Path) -> None:
    tiny = weights_offer(ModelConfig(), tmp_path)
    assert (tiny.kind, tiny.distilled_lora) == (CheckpointKind.distilled, True)
    dev = weights_offer(ModelConfig(checkpoint_kind=CheckpointKind.dev), tmp_path)
    assert dev.kind is CheckpointKind.dev
    random = weights_offer(ModelConfig(name="ltx23_random", source=ModelSource.random), tmp_path)
    assert (random.kind, random.distilled_lora) == (CheckpointKind.distilled, False)
    # real files: the kind from Lightricks' file name, the LoRA only when it exists
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ltx-2-19b-dev.safetensors").write_bytes(b"")
    real = ModelConfig(
        name="ltx2_dev",
        source=ModelSource.checkpoint,
        root=str(tmp_path),
        checkpoints=["checkpoints/ltx-2-19b-dev.safetensors"],
    )
    offer = weights_offer(real, tmp_path)
    assert (offer.kind, offer.distilled_lora) == (CheckpointKind.dev, False)
    assert offer.distilled_lora_path == real.distilled_lora
    (tmp_path / real.distilled_lora).write_bytes(b"")
    assert weights_offer(real, tmp_path).distilled_lora


def test_demo_on_the_tiny_set_runs_distilled() -> None:
    """The bundled demo says `pipeline: auto`: on the (distilled) tiny set every job is now `distilled`,
    so its ids differ from the ones a dev checkpoint gives (the pinned ones in test_manifest_identity)."""
    demo = BUNDLED_MANIFESTS / "demo.yaml"
    tiny = manifest_jobs(demo, weights=weights_offer(ModelConfig(), Path("/")))
    dev = manifest_jobs(demo)
    assert {j.pipeline for j in tiny} == {PipelineKind.DISTILLED}
    assert {j.pipeline for j in dev} == {PipelineKind.TI2VID}
    assert not {j.job_id for j in tiny} & {j.job_id for j in dev}


def test_hq_needs_the_lora_and_two_stages(tmp_path: Path) -> None:
    assert "in both stages" in weights_problems(PipelineKind.HQ, PipelineKind.HQ, DISTILLED_NO_LORA)[0][1]
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, [{"name": "one_stage", "pipeline": "hq", "upscale": {"spatial": False}}], DISTILLED)
    [problem] = caught.value.problems
    assert (problem.job_name, problem.field) == ("one_stage", "upscale.spatial")
    [job] = _load(tmp_path, [{"name": "hq", "pipeline": "hq", "num_inference_steps": 4}], DISTILLED)
    assert job.pipeline is PipelineKind.HQ and job.num_inference_steps == 4
