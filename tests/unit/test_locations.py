"""Where the tool finds its files: manifest names, the models home, the bundled configs; a plan from any
directory. The CLI process's face (`--version`, `--help`, keys added with `+`/`++` refused) is
tests/integration/test_cli_process.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.backends.models import model_root
from ltx2_batch.backends.weights import TinyWeights
from ltx2_batch.cli import run
from ltx2_batch.config import AppConfig, ModelConfig
from ltx2_batch.core import tool_paths
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS, CONF_DIR, manifest_dirs, models_home
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.run.overrides import added_key_problems
from tests.conftest import compose_app


def test_configs_and_examples_live_inside_the_package() -> None:
    package = Path(__file__).resolve().parents[2] / "ltx2_batch"
    assert package / "conf" == CONF_DIR and (CONF_DIR / "config.yaml").is_file()
    assert {p.stem for p in (CONF_DIR / "model").glob("*.yaml")} >= {"tiny", "ltx2_distilled"}
    assert (BUNDLED_MANIFESTS / "demo.yaml").is_file()
    assert (BUNDLED_MANIFESTS / "assets" / "demo_orange_disc.png").is_file()


def test_manifest_names_try_the_launch_dir_then_the_bundled_examples(tmp_path: Path) -> None:
    dirs = manifest_dirs(tmp_path)
    assert resolve_manifest_path("demo", dirs) == BUNDLED_MANIFESTS / "demo.yaml"
    assert resolve_manifest_path("examples/sweep", dirs) == BUNDLED_MANIFESTS / "examples" / "sweep.yaml"
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "demo.yaml").write_text("jobs: []")
    assert resolve_manifest_path("demo", dirs) == tmp_path / "manifests" / "demo.yaml"
    (tmp_path / "demo.yml").write_text("jobs: []")
    assert resolve_manifest_path("demo", dirs) == tmp_path / "demo.yml"  # the launch dir itself wins
    with pytest.raises(ManifestError, match="did you mean 'demo'") as err:
        resolve_manifest_path("dmeo", dirs)
    assert str(BUNDLED_MANIFESTS) in str(err.value) or "did you mean" in str(err.value)


def test_models_home_is_the_variable_else_a_checkout_else_the_user_cache(tmp_path: Path) -> None:
    assert models_home({"LTX2_BATCH_MODELS": str(tmp_path / "w")}) == tmp_path / "w"
    repo = Path(__file__).resolve().parents[2]
    assert models_home({}) == repo / "models"  # this checkout: its own models/ (make demo, the tests)


def test_models_home_outside_a_checkout_is_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tool_paths, "source_checkout", lambda: None)  # as an installed wheel sees it
    assert models_home({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "ltx2_batch" / "models"
    assert models_home({}) == Path.home() / ".cache" / "ltx2_batch" / "models"


def test_unset_model_root_is_the_models_home_whatever_the_launch_dir(tmp_path: Path) -> None:
    cfg = ModelConfig()
    assert cfg.root is None
    assert model_root(cfg, tmp_path) == models_home() == model_root(cfg, Path("/"))
    assert TinyWeights(cfg, tmp_path).root == models_home() / "tiny"
    assert (
        model_root(ModelConfig(root="mine"), tmp_path) == tmp_path / "mine"
    )  # explicit: from the launch dir


def test_added_keys_are_held_to_the_schema() -> None:
    schema = AppConfig()
    assert added_key_problems(["seed=3", "++output.video_crf=20", "+hydra.job.env_set.X=1"], schema) == []
    problems = added_key_problems(["+output.video_cfr=30", "++verbos=true", "+seed.x=1"], schema)
    assert len(problems) == 3
    assert "did you mean output.video_crf?" in problems[0]
    assert "did you mean verbose?" in problems[1]
    assert "seed is a value, not a section" in problems[2]


def test_typos_and_missing_group_choices_are_refused_with_a_suggestion() -> None:
    """What Hydra would refuse with exit 1 and its own text is the tool's refusal (exit 2, did you mean)."""
    from ltx2_batch.cli import config_groups
    from ltx2_batch.run.overrides import override_problems

    groups = config_groups()
    assert "tiny" in groups["model"] and "ray" in groups["engine"]
    good = [
        "engine.num_workers=2",
        "model=ltx2_distilled",
        "-m",
        "seed=1,2",
        "model=tiny,fake",
        "--cfg",
        "job",
    ]
    good += ["paths.allowed_roots=[a,b]", "hydra.verbose=true", "limits.max_jobs=10", "+output.video_crf=1"]
    assert override_problems(good, AppConfig(), groups) == []
    problems = override_problems(
        ["engine.num_wrkers=2", "model=ltx2_distiled", "output.video_crf.x=1", "+verbos=true"],
        AppConfig(),
        groups,
    )
    assert problems == [
        "+verbos=true: no setting 'verbos' (did you mean verbose?); `+`/`++` cannot add settings",
        "engine.num_wrkers=2: no setting 'engine.num_wrkers' (did you mean engine.num_workers?)",
        "model=ltx2_distiled: no model 'ltx2_distiled' (did you mean model=ltx2_distilled?)",
        "output.video_crf.x=1: no setting 'output.video_crf.x' (output.video_crf is a value, not a section)",
    ]


def test_values_a_setting_cannot_hold_are_refused_with_a_suggestion() -> None:
    """A value of the wrong kind (an enum's typo, a word for a number) is refused before Hydra, which would
    exit 1 with "Error merging override"; sweeps, interpolations, null, and a float for a float setting whose
    default is written as an int, pass."""
    from ltx2_batch.cli import config_groups
    from ltx2_batch.run.overrides import override_problems

    good = ["verify=full", "verify=cheap,full", "seed=null", "seed=1,2", "output.lease_ttl_s=0.5"]
    good += ["progress=false", "seed=range(1,3)", "output.video_crf=${seed}", "engine.pool_idle_s=null"]
    assert override_problems(good, AppConfig(), config_groups()) == []
    bad = ["verify=ful", "output.video_crf=abc", "seed=1,x", "progress=maybe", "output.lease_ttl_s=soon"]
    assert override_problems(bad, AppConfig(), config_groups()) == [
        "verify=ful: verify is one of cheap, full, not 'ful' (did you mean verify=full?)",
        "output.video_crf=abc: output.video_crf is a whole number, not 'abc'",
        "seed=1,x: seed is a whole number, not 'x'",
        "progress=maybe: progress is true or false, not 'maybe'",
        "output.lease_ttl_s=soon: output.lease_ttl_s is a number, not 'soon'",
    ]


def test_plan_runs_from_any_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The launch dir is the project root (the CLI passes its cwd): the bundled demo, outputs under it."""
    assert run(compose_app("plan=true"), tmp_path) == 0
    assert f"5 jobs (5 pending, 0 already done), 6 pipeline calls, 189 frames -> {tmp_path}/outputs/demo" in (
        capsys.readouterr().out
    )
    assert list(tmp_path.iterdir()) == []  # a plan writes nothing
