"""Every validation rule, through `open_manifest` (the run path) on small manifests in a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ltx2_batch.config import ChainingConfig
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode
from ltx2_batch.errors import FieldProblem, ManifestError
from tests.conftest import write_input_files
from tests.manifests import manifest_jobs

INPUTS = ("a.png", "b.png", "style.safetensors", "ic.safetensors", "ref.mp4")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest folder with the input files the manifests below name; cwd is the temp dir."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "manifests"
    folder.mkdir()
    write_input_files(folder, INPUTS)
    return folder


def load(folder: Path, doc: dict | str, chaining: ChainingConfig | None = None) -> tuple[RenderJob, ...]:
    path = folder / "m.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return manifest_jobs(path, chaining=chaining)


def job(folder: Path, **fields: object) -> RenderJob:
    return load(
        folder,
        {"jobs": [{"name": "j", "prompt": "a cat", "width": 64, "height": 64, "num_frames": 9, **fields}]},
    )[0]


def problems(folder: Path, **fields: object) -> dict[str, str]:
    """field -> message for a one-job manifest that must fail."""
    with pytest.raises(ManifestError) as info:
        job(folder, **fields)
    found: list[FieldProblem] = info.value.problems
    for p in found:
        assert p.source.endswith("m.yaml")
    return {p.field: p.message for p in found}


def test_a_valid_job_has_every_field_resolved(folder: Path) -> None:
    j = job(
        folder,
        seed=3,
        images=[{"path": "a.png", "frame_idx": 0, "strength": 0.5}],
        loras=[{"path": "style.safetensors", "strength": -1.5}],
        video_guider_params={"cfg_scale": 3, "stg_blocks": [29]},
        tags={"shot": 1, "who": "me"},
    )
    assert (j.width, j.height, j.num_frames, j.frame_rate, j.seed) == (64, 64, 9, 24.0, 3)
    assert j.pipeline is PipelineKind.TI2VID
    assert j.mode is RenderMode.VIDEO
    assert j.images[0].path == str((folder / "a.png").resolve())
    assert len(j.images[0].sha256) == 64
    assert j.loras[0].strength == -1.5
    assert j.video_guider_params.cfg_scale == 3.0
    assert j.video_guider_params.stg_blocks == (29,)
    assert j.tags == (("shot", "1"), ("who", "me"))
    assert len(j.job_id) == 16


@pytest.mark.parametrize(
    ("fields", "field", "needle"),
    [
        ({"width": 96}, "width", "multiple of 64"),
        ({"width": 96}, "width", "64 or 128"),
        ({"height": 0}, "height", "positive"),
        ({"width": 80, "upscale": {"spatial": False}}, "width", "multiple of 32 for one-stage"),
        ({"num_frames": 10}, "num_frames", "9 or 17"),
        ({"num_frames": 0}, "num_frames", ">= 1"),
        ({"frame_rate": 0}, "frame_rate", "> 0"),
        ({"frame_rate": "fast"}, "frame_rate", "must be a finite number"),
        ({"width": "64"}, "width", "must be an integer, got string"),
        ({"width": 64.0}, "width", "must be an integer"),
        ({"audio": "yes"}, "audio", "true or false"),
        ({"seed": -1}, "seed", "[0, 2**63 - 1]"),
        ({"num_inference_steps": 0}, "num_inference_steps", ">= 1"),
        ({"prompt": "   "}, "prompt", "is empty"),
        ({"prompt": None}, "prompt", "must be a string"),
        ({"pipeline": "keyframes"}, "pipeline", "did you mean 'keyframe'"),
        ({"images": [{"path": "a.png", "frame_idx": 9}]}, "images[0].frame_idx", "[0, 8]"),
        ({"images": [{"path": "a.png", "strength": 1.5}]}, "images[0].strength", "[0, 1]"),
        ({"images": [{"path": "a.png", "frame": 0}]}, "images[0].frame", "did you mean 'frame_idx'"),
        ({"images": [{"frame_idx": 0}]}, "images[0].path", "is required"),
        ({"images": ["a.png"]}, "images[0]", "must be a mapping"),
        ({"images": [{"path": "missing.png"}]}, "images[0].path", "file not found"),
        ({"images": [{"path": "."}]}, "images[0].path", "not a regular file"),
        ({"loras": [{"path": "style.safetensors", "strength": 2.5}]}, "loras[0].strength", "[-2, 2]"),
        ({"loras": [{"path": "style.safetensors", "type": "ic-lora"}]}, "loras[0].type", "lora, ic_lora"),
        ({"loras": [{"path": "nope.safetensors"}]}, "loras[0].path", "file not found"),
        (
            {"video_conditioning": [{"path": "ref.mp4", "strength": -0.1}]},
            "video_conditioning[0].strength",
            "[0, 1]",
        ),
        ({"video_guider_params": {"cfg": 3}}, "video_guider_params.cfg", "did you mean 'cfg_scale'"),
        (
            {"video_guider_params": {"stg_blocks": [1, "x"]}},
            "video_guider_params.stg_blocks",
            "non-negative integers",
        ),
        ({"audio_guider_params": [1]}, "audio_guider_params", "must be a mapping"),
        ({"upscale": {"spatial": "no"}}, "upscale.spatial", "true or 2 (x2 two-stage), false"),
        ({"tags": ["x"]}, "tags", "must be a mapping"),
    ],
)
def test_rule(folder: Path, fields: dict, field: str, needle: str) -> None:
    found = problems(folder, **fields)
    assert field in found, found
    assert needle in found[field]


def test_sizes_valid_for_one_stage_only(folder: Path) -> None:
    assert job(folder, width=96, height=160, upscale={"spatial": False}).width == 96


def test_keyframe_rules(folder: Path) -> None:
    two = [{"path": "a.png", "frame_idx": 0}, {"path": "b.png", "frame_idx": 8}]
    assert job(folder, images=two).pipeline is PipelineKind.KEYFRAME
    same = [{"path": "a.png", "frame_idx": 0}, {"path": "b.png", "frame_idx": 0}]
    assert job(folder, images=same).pipeline is PipelineKind.TI2VID
    assert "2 images at different" in problems(folder, pipeline="keyframe", images=same)["images"]
    long = problems(folder, num_frames=129, images=[{"path": "a.png"}, {"path": "b.png", "frame_idx": 128}])
    assert "keyframe (auto-selected) renders at most 121" in long["num_frames"]


def test_ic_lora_rules(folder: Path) -> None:
    ic = [{"path": "ic.safetensors", "type": "ic_lora"}]
    j = job(folder, loras=ic, video_conditioning=[{"path": "ref.mp4"}])
    assert j.pipeline is PipelineKind.IC_LORA
    assert j.video_conditioning[0].sha256
    assert (
        "type: ic_lora"
        in problems(folder, pipeline="ic_lora", loras=[{"path": "style.safetensors"}])["loras"]
    )
    assert "needs pipeline ic_lora" in problems(folder, pipeline="distilled", loras=ic)["loras"]
    assert (
        "only used by pipeline ic_lora"
        in problems(folder, video_conditioning=[{"path": "ref.mp4"}])["video_conditioning"]
    )
    assert "at most 121" in problems(folder, loras=ic, num_frames=129)["num_frames"]


def test_long_jobs_chain_and_chunk_fields(folder: Path) -> None:
    j = job(folder, num_frames=145, chunk_prompts=["one", "two"], chunk_images=[[], [{"path": "a.png"}]])
    assert j.mode is RenderMode.CHAINED
    assert j.chunk_prompts == ("one", "two")
    assert j.chunk_images[1][0].path.endswith("a.png")
    assert job(folder, num_frames=145, pipeline="distilled").mode is RenderMode.CHAINED
    assert "only 2 chunks" in problems(folder, num_frames=145, chunk_prompts=["1", "2", "3"])["chunk_prompts"]
    assert "only 2 chunks" in problems(folder, num_frames=145, chunk_images=[[], [], []])["chunk_images"]
    assert "only applies to chained" in problems(folder, chunk_prompts=["x"])["chunk_prompts"]
    assert "only applies to chained" in problems(folder, chunk_images=[[]])["chunk_images"]
    bad_idx = problems(folder, num_frames=145, chunk_images=[[{"path": "a.png", "frame_idx": 121}]])
    assert "frame of chunk 0 (it renders 121 frames)" in bad_idx["chunk_images[0][0].frame_idx"]
    # 145 frames: the last chunk renders only 49 frames (25 overlap + 24 new), so frame 60 is not in it
    short_last = problems(folder, num_frames=145, chunk_images=[[], [{"path": "a.png", "frame_idx": 60}]])
    assert "frame of chunk 1 (it renders 49 frames)" in short_last["chunk_images[1][0].frame_idx"]
    assert "non-empty strings" in problems(folder, num_frames=145, chunk_prompts=["", "b"])["chunk_prompts"]


def test_chunk_count_follows_the_chaining_config(folder: Path) -> None:
    doc = {
        "jobs": [
            {
                "name": "j",
                "prompt": "p",
                "width": 64,
                "height": 64,
                "num_frames": 145,
                "chunk_prompts": ["a", "b", "c"],
            }
        ]
    }
    with pytest.raises(ManifestError, match="only 2 chunks"):
        load(folder, doc)
    jobs = load(folder, doc, ChainingConfig(chunk_frames=65, overlap_frames=16))  # 1 + ceil(80/49) = 3
    assert jobs[0].chunking.chunk_frames == 65
    assert jobs[0].mode is RenderMode.CHAINED


def test_bad_chaining_config_is_reported(folder: Path) -> None:
    with pytest.raises(ManifestError, match="overlap_frames"):
        load(folder, {"jobs": [{"prompt": "p"}]}, ChainingConfig(chunk_frames=121, overlap_frames=121))


def test_chained_length_need_not_be_8k_plus_1(folder: Path) -> None:
    j = job(folder, num_frames=300, chunk_prompts=["a", "b", "c"])
    assert j.mode is RenderMode.CHAINED
    assert j.num_frames == 300
    assert "8k+1" in problems(folder, num_frames=120)["num_frames"]


def test_single_frame_is_an_image(folder: Path) -> None:
    assert job(folder, num_frames=1, width=128).mode is RenderMode.IMAGE  # 64x64 x 1: refused (two-stage)


def test_every_problem_is_reported_at_once(folder: Path) -> None:
    doc = {
        "jobs": [
            {"name": "a", "prompt": "", "width": 100, "num_frames": 10},
            {
                "name": "b",
                "prompt": "ok",
                "width": 64,
                "height": 64,
                "num_frames": 9,
                "images": [{"path": "x.png"}],
            },
            {"name": "a", "prompt": "dup", "width": 64, "height": 64, "num_frames": 9},
        ]
    }
    with pytest.raises(ManifestError) as info:
        load(folder, doc)
    found = {(p.job_index, p.field) for p in info.value.problems}
    assert found == {(0, "prompt"), (0, "width"), (0, "num_frames"), (1, "images[0].path"), (2, "name")}
    text = str(info.value)
    assert "job 1 ('b'): field 'images[0].path': file not found" in text
    assert "job 2 ('a'): field 'name': duplicate job name (also job 0)" in text
    assert text.startswith("5 problem(s)")


def test_duplicate_names_and_duplicate_renders(folder: Path) -> None:
    base = {"prompt": "p", "width": 64, "height": 64, "num_frames": 9}
    with pytest.raises(ManifestError, match="duplicate job name") as info:
        load(folder, {"jobs": [{"name": "a", **base, "seed": 1}, {"name": "a", **base, "seed": 2}]})
    assert info.value.problems[0].job_index == 1
    with pytest.raises(ManifestError, match="renders exactly the same clip as 'a'"):
        load(folder, {"jobs": [{"name": "a", **base}, {"name": "b", **base}]})


def test_problems_repeated_by_a_sweep_are_collapsed(folder: Path) -> None:
    doc = {"jobs": [{"name": "a", "prompt": "p", "width": 100, "sweep": {"grid": {"seed": list(range(50))}}}]}
    with pytest.raises(ManifestError) as info:
        load(folder, doc)
    widths = [p for p in info.value.problems if p.field == "width"]
    assert len(widths) == 1
    assert "and 49 more expanded job(s)" in widths[0].message
    assert widths[0].job_name == "a__seed=0"


def test_top_level_problems(folder: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load(folder, {"job": [], "base_seed": "x", "defaults": {"widht": 1}})
    found = {p.field: p.message for p in info.value.problems}
    assert "did you mean 'jobs'" in found["job"]
    assert "must be an integer" in found["base_seed"]
    assert "did you mean 'width'" in found["defaults.widht"]
    assert "non-empty list" in found["jobs"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("jobs: [", "not valid YAML"),
        ("", "got an empty file"),
        ("- a\n- b\n", "must be a mapping"),
        ("jobs:\n  - prompt: a\n    prompt: b\n", "duplicate key 'prompt'"),
        ("jobs: [{prompt: x, seed: !!python/object:os.system x}]", "not valid YAML"),
    ],
)
def test_yaml_level_problems(folder: Path, text: str, needle: str) -> None:
    with pytest.raises(ManifestError, match="problem") as info:
        load(folder, text)
    assert needle in str(info.value)
