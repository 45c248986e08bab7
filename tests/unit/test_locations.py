"""Where the tool finds its files: manifest names, the models home, the bundled configs; the CLI's face
(`--version`, `--help`) and its refusal of keys added with `+`/`++`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ltx2_batch import __version__
from ltx2_batch.backends.models import model_root
from ltx2_batch.backends.weights import TinyWeights
from ltx2_batch.config import AppConfig, ModelConfig
from ltx2_batch.core.tool_paths import BUNDLED_MANIFESTS, CONF_DIR, manifest_dirs, models_home
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.run.overrides import added_key_problems


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltx2_batch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


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


def test_models_home_outside_a_checkout_is_the_user_cache(tmp_path: Path) -> None:
    code = (
        "import ltx2_batch.core.tool_paths as L; L.source_checkout = lambda: None;"
        f"print(L.models_home({{'XDG_CACHE_HOME': {str(tmp_path)!r}}})); print(L.models_home({{}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    xdg, default = out.stdout.split()
    assert Path(xdg) == tmp_path / "ltx2_batch" / "models"
    assert Path(default) == Path.home() / ".cache" / "ltx2_batch" / "models"


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


def test_cli_refuses_an_added_typo_before_any_work(tmp_path: Path) -> None:
    out = _cli("plan=true", "+output.video_cfr=30", cwd=tmp_path)
    assert out.returncode == 2
    assert (
        "+output.video_cfr=30: no setting 'output.video_cfr' (did you mean output.video_crf?)" in out.stderr
    )
    assert not (tmp_path / "outputs").exists()


def test_version_is_ours_and_help_names_the_tool(tmp_path: Path) -> None:
    version = _cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"ltx2-batch {__version__}"
    text = _cli("--help", cwd=tmp_path).stdout
    assert text.startswith(f"ltx2-batch {__version__}: declarative batch rendering")
    assert "powered by Hydra" not in text
    section = text.split("== Config groups (group=option) ==")[1].split("== Main settings ==")[0]
    groups = dict(line.split(": ") for line in section.strip().splitlines())
    assert groups == {
        "engine": "local, ray",  # no schema entries among the choices
        "model": "fake, ltx23_dev, ltx23_distilled, ltx23_fp8, ltx23_random, ltx2_dev, ltx2_distilled, "
        "ltx2_fp8, ltx2_random, tiny, tiny23",
    }
    for setting in ("manifest=", "plan=true", "output.video_crf=0..51", "engine.address=", "verbose=true"):
        assert setting in text


def test_plan_runs_from_any_directory(tmp_path: Path) -> None:
    out = _cli("plan=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"5 jobs (5 pending, 0 already done), 6 pipeline calls, 189 frames -> {tmp_path}/outputs/demo" in (
        out.stdout
    )
