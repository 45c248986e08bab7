"""The wheel works anywhere: built from this checkout, installed into a fresh venv, it renders the demo
from a directory outside the repository, writing nothing to the launch dir but its outputs; outside a
checkout its models home is the per-user cache. Its dependencies resolve from the package index with the CPU
constraint (`pip install --dry-run --report`: the resolution a user's install does, without the install).
(The render itself takes the session's tiny set through $LTX2_BATCH_MODELS: the build is the same code from
the wheel as from the checkout, and is not repeated.)

The fresh venv gets the heavy dependencies from the project's venv through a .pth line (no network here).
A directory added by a .pth line does not have its own .pth files processed, so the project venv's
editable-install finder is never loaded: `ltx2_batch` can only come from the wheel (checked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ltx2_batch.core.tool_paths import MODELS_ENV
from ltx2_batch.media.probe import probe
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (it would put the checkout, and its egg-info, in front of the wheel)."""
    drop = ("PYTHONPATH", "LTX2_BATCH_MODELS", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _fresh_venv(where: Path, wheel: Path) -> Path:
    """A venv holding only the wheel, then a .pth line to the project venv's packages (added after the
    install, so pip never sees the project's own editable ltx2_batch there and touches nothing of it)."""
    venv.EnvBuilder(with_pip=False).create(where)
    py = where / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel],
        check=True,
        timeout=300,
        env=_clean_env(),
    )
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            dist,
            REPO_ROOT,
        ],
        check=True,
        timeout=300,
    )
    (built,) = dist.glob("ltx2_batch-*.whl")
    return built


def test_the_wheels_dependencies_resolve_from_the_index_with_the_cpu_constraint(
    wheel: Path, tmp_path: Path
) -> None:
    """What `pip install -c constraints-cpu.txt <wheel>` would install: every pin meets (ltx-core 1.0.0,
    transformers < 5, the CPU torch), nothing conflicts. Reads the registry; installs nothing."""
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
            "--report", report, "-c", REPO_ROOT / "constraints-cpu.txt", wheel,
        ],
        capture_output=True, text=True, timeout=600, env=_clean_env(), check=False,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    versions = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert versions["ltx2-batch"] == "0.1.0" and versions["ltx-core"] == versions["ltx-pipelines"] == "1.0.0"
    assert versions["torch"].startswith("2.13.0")  # the constraint's CPU build, not the newest CUDA one
    assert int(versions["transformers"].split(".")[0]) < 5
    assert not any(name.startswith("nvidia-") for name in versions)  # no CUDA stack on a CPU machine


def test_wheel_installs_and_renders_the_demo_outside_the_repo(
    wheel: Path, tmp_path: Path, tiny_root: Path
) -> None:
    py = _fresh_venv(tmp_path / "venv", wheel)
    env = _clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [
            py,
            "-c",
            "import ltx2_batch, sys; from ltx2_batch.core.tool_paths import models_home;"
            "print(ltx2_batch.__file__); print('__editable__' in str(sys.modules)); print(models_home())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
        env=env,
    ).stdout.split()
    assert where[0].startswith(str(tmp_path / "venv")), where  # the wheel's copy, not the checkout
    assert where[1] == "False"  # the editable finder was not loaded
    assert where[2] == str(tmp_path / "cache" / "ltx2_batch" / "models")  # no checkout: the user cache

    tool = str(tmp_path / "venv" / "bin" / "ltx2-batch")
    assert subprocess.run(
        [tool, "--version"], capture_output=True, text=True, cwd=work, env=env, check=False
    ).stdout.startswith("ltx2-batch ")
    done = subprocess.run(
        [tool, "engine.num_cpus=2"],
        capture_output=True,
        text=True,
        cwd=work,
        env={**env, MODELS_ENV: str(tiny_root.parent)},
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    out = work / "outputs" / "demo"
    rows = pq.read_table(out / "ledger.parquet").to_pandas()
    jobs = rows[(rows.row_kind == "job") & (rows.status == "done")]
    assert len(set(jobs.job_id)) == len(jobs) == 5
    for _, row in jobs.iterrows():
        assert Path(row.output_path).is_file() and Path(row.output_path).is_relative_to(out)
        if row.output_path.endswith(".mp4"):
            assert probe(row.output_path).frame_count == row.num_frames
    # nothing but the outputs in the launch dir
    assert sorted(p.name for p in work.iterdir()) == ["outputs"]
    # the run's composed config and overrides are kept beside its outputs
    assert yaml.safe_load((out / "config.yaml").read_text())["manifest"] == "demo"
    assert yaml.safe_load((out / "overrides.yaml").read_text()) == ["engine.num_cpus=2"]
