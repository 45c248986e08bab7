"""Job ids and seeds from manifests: same manifest -> same ids; any parameter change -> a new id."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.jobs import RenderJob, derive_seed
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS
from ltx2_batch.manifest.load import open_manifest
from tests.conftest import write_input_files
from tests.manifests import manifest_jobs

REPO = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "name": "j",
    "prompt": "a cat",
    "negative_prompt": "blur",
    "width": 64,
    "height": 64,
    "num_frames": 145,
    "frame_rate": 24,
    "seed": 5,
    "num_inference_steps": 4,
    "video_guider_params": {"cfg_scale": 3.0, "stg_blocks": [29]},
    "audio_guider_params": {"cfg_scale": 7.0},
    "pipeline": "ti2vid",
    "images": [{"path": "a.png", "frame_idx": 0, "strength": 1.0}],
    "loras": [{"path": "style.safetensors", "strength": 0.8}],
    "audio": True,
    "enhance_prompt": False,
    "upscale": {"spatial": True, "temporal": False},
    "chunk_prompts": ["one", "two"],
    "chunk_images": [[], [{"path": "b.png", "frame_idx": 0}]],
    "tags": {"shot": "1"},
}

# (dotted path, new value): each must change the job id
CHANGES = [
    ("prompt", "a dog"),
    ("negative_prompt", ""),
    ("width", 128),
    ("height", 128),
    ("num_frames", 153),
    ("frame_rate", 25),
    ("seed", 6),
    ("num_inference_steps", 8),
    ("video_guider_params.cfg_scale", 3.5),
    ("video_guider_params.stg_blocks", [28]),
    ("audio_guider_params.cfg_scale", 6.0),
    ("pipeline", "distilled"),
    ("images.0.frame_idx", 8),
    ("images.0.strength", 0.9),
    ("images.0.path", "b.png"),  # other bytes
    ("loras.0.strength", 0.7),
    ("audio", False),
    ("enhance_prompt", True),
    ("upscale.spatial", False),
    ("chunk_prompts", ["one", "three"]),
    ("chunk_images.1.0.frame_idx", 8),
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_input_files(tmp_path, ("a.png", "b.png", "style.safetensors"))
    shutil.copy(tmp_path / "a.png", tmp_path / "copy_of_a.png")  # same bytes as a.png, another path
    return tmp_path


def plan(
    folder: Path,
    jobs: list[dict],
    name: str = "m.yaml",
    *,
    base_seed: int = 1,
    chaining: ChainingConfig | None = None,
    fingerprint: str = "fp",
    seed_override: int | None = None,
) -> tuple[RenderJob, ...]:
    path = folder / name
    path.write_text(yaml.safe_dump({"base_seed": base_seed, "jobs": jobs}))
    return manifest_jobs(path, chaining=chaining, model_fingerprint=fingerprint, seed_override=seed_override)


def _set(doc: Any, dotted: str, value: Any) -> None:
    *head, last = dotted.split(".")
    for part in head:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


def test_same_manifest_same_ids(folder: Path) -> None:
    first = plan(folder, [BASE])
    again = plan(folder, [copy.deepcopy(BASE)], name="other.yaml")
    assert first[0].job_id == again[0].job_id
    one, other = (
        open_manifest(folder / name, chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="fp")
        for name in ("m.yaml", "other.yaml")
    )
    assert one.sha256 == other.sha256
    assert one.source != other.source


def test_temporal_upscale_changes_the_id_of_a_one_window_job(folder: Path) -> None:
    short = {**copy.deepcopy(BASE), "num_frames": 9}
    for key in ("chunk_prompts", "chunk_images"):
        short.pop(key, None)
    base_id = plan(folder, [short])[0].job_id
    assert plan(folder, [{**short, "upscale": {"temporal": True}}])[0].job_id != base_id


@pytest.mark.parametrize(("dotted", "value"), CHANGES)
def test_any_parameter_change_changes_the_id(folder: Path, dotted: str, value: Any) -> None:
    base_id = plan(folder, [BASE])[0].job_id
    changed = copy.deepcopy(BASE)
    _set(changed, dotted, value)
    assert plan(folder, [changed])[0].job_id != base_id


def test_input_bytes_change_the_id_but_paths_do_not(folder: Path) -> None:
    base_id = plan(folder, [BASE])[0].job_id
    moved = copy.deepcopy(BASE)
    moved["images"][0]["path"] = "copy_of_a.png"
    assert plan(folder, [moved])[0].job_id == base_id
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "a.png")  # edited
    assert plan(folder, [BASE])[0].job_id != base_id


def test_model_and_chaining_are_part_of_identity(folder: Path) -> None:
    base_id = plan(folder, [BASE])[0].job_id
    assert plan(folder, [BASE], fingerprint="other")[0].job_id != base_id
    assert plan(folder, [BASE], chaining=ChainingConfig(overlap_frames=16))[0].job_id != base_id


def test_name_and_tags_are_metadata(folder: Path) -> None:
    base_id = plan(folder, [BASE])[0].job_id
    renamed = {**copy.deepcopy(BASE), "name": "other", "tags": {"x": "y"}}
    assert plan(folder, [renamed])[0].job_id == base_id


def test_derived_seeds_are_stable_distinct_and_follow_base_seed(folder: Path) -> None:
    jobs = [
        {"name": f"j{i}", "prompt": f"prompt {i}", "width": 64, "height": 64, "num_frames": 9}
        for i in range(20)
    ]
    seeds = [j.seed for j in plan(folder, jobs)]
    assert seeds == [j.seed for j in plan(folder, jobs)]
    assert len(set(seeds)) == 20
    assert all(0 <= s < 2**31 for s in seeds)
    assert seeds != [j.seed for j in plan(folder, jobs, base_seed=2)]
    # documented derivation: base seed + the job's fields without name/tags/seed
    params = {k: v for k, v in jobs[0].items() if k != "name"}
    assert seeds[0] == derive_seed(1, params)
    # renaming does not change a derived seed (names are metadata)
    renamed = [{**jobs[0], "name": "zzz"}]
    assert plan(folder, renamed)[0].seed == seeds[0]


def test_a_seed_override_replaces_the_base_seed_and_leaves_explicit_seeds_alone(folder: Path) -> None:
    """`seed=N` (docs/behaviour.md, "Seeds"): a job named `a__seed=1` renders with seed 1 under any
    override; a job without a seed gets the seed `base_seed: N` would give it."""
    swept = {
        **{k: v for k, v in BASE.items() if k != "seed"},
        "name": "j",
        "sweep": {"grid": {"seed": [1, 2]}},
    }
    derived = {k: v for k, v in BASE.items() if k != "seed"} | {"name": "derived"}
    plain = plan(folder, [{**BASE, "name": "j0"}, swept, derived])
    over = plan(folder, [{**BASE, "name": "j0"}, swept, derived], seed_override=7)
    assert [(j.name, j.seed) for j in over[:3]] == [("j0", 5), ("j__seed=1", 1), ("j__seed=2", 2)]
    assert [j.job_id for j in over[:3]] == [j.job_id for j in plain[:3]]
    assert over[3].seed != plain[3].seed
    assert over[3].seed == plan(folder, [derived], base_seed=7)[0].seed
    assert plan(folder, [derived], seed_override=1)[0].seed == plan(folder, [derived])[0].seed  # base 1


def test_index_is_position_and_ids_unique_over_a_sweep(folder: Path) -> None:
    swept = {**copy.deepcopy(BASE), "sweep": {"grid": {"seed": [1, 2, 3]}, "zip": {"prompt": ["a", "b"]}}}
    jobs = plan(folder, [swept])
    assert [j.index for j in jobs] == list(range(6))
    assert len({j.job_id for j in jobs}) == 6
    assert jobs[0].images[0].sha256 == jobs[5].images[0].sha256


def test_demo_ids_are_the_ones_runs_already_wrote() -> None:
    """Output files are named by job id and resume finds done jobs by it: the demo's ids on the model it
    runs on (a distilled checkpoint), pinned from before the validation rewrite (issue 23) and before the
    demo lost the fields its recipe ignores (orange_disc keeps the seed it was derived to), and equal the
    reference text."""
    import hashlib

    from ltx2_batch.core.families import CheckpointKind
    from ltx2_batch.core.jobs import JOB_ID_LENGTH, identity_text
    from ltx2_batch.manifest.select import WeightsOffer

    demo = manifest_jobs(BUNDLED_MANIFESTS / "demo.yaml", weights=WeightsOffer(CheckpointKind.distilled))
    assert [(j.name, j.job_id) for j in demo] == [
        ("sunrise__seed=1", "750ace6641f455b4"),
        ("sunrise__seed=2", "9c0985ebe1f91d0b"),
        ("orange_disc", "c667c173a34a5ae4"),
        ("long_walk", "4f57da37bcec031a"),
        ("still_life", "ff824e481cd2fca3"),
    ]
    sweep = manifest_jobs(BUNDLED_MANIFESTS / "examples/sweep.yaml")
    for job in demo + sweep:
        reference = hashlib.sha256(identity_text(job, "fp").encode()).hexdigest()[:JOB_ID_LENGTH]
        assert job.job_id == reference


def test_a_prompt_holding_the_slot_text_still_gets_its_own_id() -> None:
    """The template's stand-ins are NUL-delimited: a prompt containing them falls back to the full text."""
    from ltx2_batch.core.jobs import JobIdentity, compute_job_id
    from ltx2_batch.core.jobs import PipelineKind as Kind
    from ltx2_batch.core.jobs import RenderMode as Mode

    slot = "\x00ltx2-prompt\x00"
    job = RenderJob("n", "x", 64, 64, 9, 24.0, 1, Kind.DISTILLED, Mode.VIDEO, chunk_prompts=(slot,))
    identity = JobIdentity(job, "fp")
    assert identity.job_id("x", 1) == compute_job_id(job, "fp")
    assert identity.job_id("y", 1) != identity.job_id("x", 1)
