"""Every setting is validated before any model work: each refusal names the setting, the value and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.cli import run
from ltx2_batch.errors import ConfigError
from ltx2_batch.run.checks import check_settings, settings_problems
from tests.conftest import compose_app


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["output.video_crf=99"], "output.video_crf=99 is outside libx264's 0..51"),
        (["output.video_crf=-1"], "e.g. output.video_crf=18"),
        (["output.thumbnail_width=0"], "output.thumbnail_width must be >= 1 pixel, got 0: e.g. 320"),
        (["chaining.blend=-1"], "chaining.blend must be 0..3"),
        (["output.run_name=a/b"], "output.run_name='a/b' must be a plain folder name"),
        (["output.run_name=.."], "put folders in output.root instead"),
        (["chaining.chunk_frames=100"], "chaining.chunk_frames=100 with model=tiny: 100 is not 8k+1 frames"),
        (["chaining.overlap_frames=0"], "chaining.overlap_frames must be >= 1, got 0"),
        (["chaining.chunk_frames=25", "chaining.overlap_frames=30"], "chaining.overlap_frames=30 aligns to"),
        (["model.device=gpu"], "model.device='gpu': expected auto, cpu, cuda, cuda:N or mps"),
        (["model.dtype=fp64"], "model.dtype='fp64': expected auto, bf16, fp16 or fp32"),
        (["model.prompt_cache_size=-1"], "model.prompt_cache_size must be >= 0 (0: no cache), got -1"),
        (["export.samples_per_shard=0"], "export.samples_per_shard must be >= 1, got 0"),
        (["batch_jobs=0"], "batch_jobs must be >= 1, got 0: e.g. batch_jobs=10000"),
        (["shard=3/2"], "shard='3/2': need 0 <= i < n"),
        (["shard=half"], "shard must look like 'i/n'"),
        (["engine=ray", "engine.num_workers=0"], "engine.num_workers must be >= 1"),
        (["engine=ray", "engine.start_timeout_s=0"], "engine.start_timeout_s must be > 0 seconds"),
        (["engine=ray", "engine.address=http://head:8265"], "is a dashboard (job submission) address"),
        (
            ["paths.allowed_roots=[/nonexistent/shared]"],
            "paths.allowed_roots[0]=/nonexistent/shared does not exist",
        ),
    ],
)
def test_each_bad_setting_is_refused_with_its_fix(
    overrides: list[str], expected: str, tmp_path: Path
) -> None:
    problems = settings_problems(compose_app(*overrides), tmp_path)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_folder_settings_that_name_a_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    app = compose_app(
        "output.root=taken", "export.dir=taken", "paths.projects_root=taken", "model.root=taken"
    )
    problems = settings_problems(app, tmp_path)
    settings = [p.split("=")[0] for p in problems]
    assert settings == ["output.root", "export.dir", "paths.projects_root", "model.root"]
    assert all("is a file" in p for p in problems)


def test_defaults_pass_and_all_problems_come_at_once(tmp_path: Path) -> None:
    check_settings(compose_app(), tmp_path)
    with pytest.raises(ConfigError, match=r"^3 invalid setting\(s\):") as err:
        check_settings(compose_app("output.video_crf=60", "batch_jobs=0", "model.dtype=x"), tmp_path)
    assert str(err.value).count("\n  ") == 3


def test_a_bad_crf_fails_a_run_before_any_file_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(compose_app("output.video_crf=99"), tmp_path) == 2  # the CLI's exit code
    err = capsys.readouterr().err
    assert "error: 1 invalid setting(s):\n  output.video_crf=99 is outside libx264's 0..51" in err
    assert list(tmp_path.iterdir()) == []  # no outputs/, no models built, no ledger
