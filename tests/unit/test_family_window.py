"""The window of one pipeline call comes from the model family: `chaining.chunk_frames` defaults to it, is
refused beyond it (by name, with the fix, before any model work), and the planner chains by it. Torch-free:
the tiny presets' fingerprints need no build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ltx2_batch.cli import run
from ltx2_batch.config import ChainingConfig
from ltx2_batch.core.jobs import RenderMode
from ltx2_batch.errors import ConfigError
from ltx2_batch.run.planning import family_chaining, open_jobs
from tests.conftest import REPO_ROOT, compose_app, write_manifest

LONG = """
defaults: {width: 64, height: 64, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: long, prompt: "A long drive along the coast.", num_frames: 241, seed: 1}
  - {name: longest, prompt: "A longer drive along the coast.", num_frames: 481, seed: 2}
  - {name: short, prompt: "A short clip.", num_frames: 121, seed: 3}
"""


def test_unset_chunk_frames_takes_the_family_window() -> None:
    assert compose_app().chaining.chunk_frames is None
    ltx2 = compose_app("model=ltx2_distilled")
    ltx23 = compose_app("model=ltx23_distilled")
    assert family_chaining(ltx2.chaining, ltx2.model).chunk_frames == 121
    assert family_chaining(ltx23.chaining, ltx23.model).chunk_frames == 481
    assert family_chaining(ltx23.chaining, compose_app("model=tiny23").model).chunk_frames == 481


def test_chunk_frames_beyond_the_family_window_is_refused_by_name() -> None:
    app = compose_app("model=ltx2_distilled", "chaining.chunk_frames=241")
    with pytest.raises(ConfigError) as err:
        family_chaining(app.chaining, app.model)
    text = str(err.value)
    assert "chaining.chunk_frames=241" in text
    assert "model=ltx2_distilled" in text
    assert "LTX-2 window of 121 frames" in text
    assert "at most 121" in text
    fine = compose_app("model=ltx23_dev", "chaining.chunk_frames=241")
    assert family_chaining(fine.chaining, fine.model).chunk_frames == 241
    with pytest.raises(ConfigError, match=r"LTX-2\.3 window of 481"):
        family_chaining(ChainingConfig(chunk_frames=489), fine.model)
    with pytest.raises(ConfigError, match="not 8k\\+1"):
        family_chaining(ChainingConfig(chunk_frames=100), fine.model)


def test_unresolved_chaining_keeps_ltx2s_window() -> None:
    """Callers that load a manifest without a model (tests, tools) get the LTX-2 window, as before."""
    with pytest.raises(ConfigError, match="not resolved"):  # no silent fallback to one family's window
        _ = ChainingConfig().window
    assert ChainingConfig(chunk_frames=65).window == 65


@pytest.mark.parametrize(
    ("model", "modes", "chunks"),
    [
        ("tiny", {"long": RenderMode.CHAINED, "longest": RenderMode.CHAINED, "short": RenderMode.VIDEO}, 121),
        ("tiny23", {"long": RenderMode.VIDEO, "longest": RenderMode.VIDEO, "short": RenderMode.VIDEO}, 481),
    ],
)
def test_planner_chains_by_the_family_window(
    tmp_path: Path, model: str, modes: dict[str, RenderMode], chunks: int
) -> None:
    manifest = write_manifest(tmp_path / "m", LONG)
    app = compose_app(
        f"manifest={manifest}",
        f"model={model}",
        f"model.root={tmp_path / 'models'}",
        f"output.root={tmp_path}",
    )
    _stream, jobs, _out = open_jobs(app, REPO_ROOT, manifest)
    jobs = list(jobs)
    assert {job.name: job.mode for job in jobs} == modes
    assert {job.chunking.chunk_frames for job in jobs} == {chunks}
    assert not (tmp_path / "models").exists()  # planning built no model set


def test_an_ltx23_window_job_is_refused_on_ltx2_before_model_work(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m", LONG)
    app = compose_app(
        f"manifest={manifest}", "model=tiny", "chaining.chunk_frames=481", f"output.root={tmp_path}"
    )
    with pytest.raises(ConfigError, match="at most 121"):
        open_jobs(dataclasses.replace(app), REPO_ROOT, manifest)


def test_a_plan_reports_the_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "m", LONG)
    app = compose_app(
        f"manifest={manifest}",
        "model=ltx2_distilled",
        "chaining.chunk_frames=241",
        "plan=true",
        f"output.root={tmp_path / 'out'}",
    )
    assert run(app, REPO_ROOT) == 2
    err = capsys.readouterr().err
    assert "chaining.chunk_frames=241" in err and "at most 121" in err
