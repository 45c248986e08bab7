"""The command as a process: what only a launch of `python -m ltx2_batch` shows. `--version` and `--help`
(argv handling before Hydra), a key added with `+` refused by the Hydra shell (exit 2, nothing written), and
the `status` verb. Everything `run(cfg)` decides is tested in process (tests/unit, the other integration
tests); each launch here costs a second of imports and no model (plan, status and refusals load none)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ltx2_batch import __version__
from ltx2_batch.cli import run
from tests.conftest import REPO_ROOT, compose_app, write_manifest


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ltx2_batch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_cli_refuses_an_added_typo_before_any_work(tmp_path: Path) -> None:
    out = _cli("plan=true", "+output.video_cfr=30", cwd=tmp_path)
    assert out.returncode == 2
    assert (
        "+output.video_cfr=30: no setting 'output.video_cfr' (did you mean output.video_crf?)" in out.stderr
    )
    assert "Traceback" not in out.stderr + out.stdout
    assert list(tmp_path.iterdir()) == []  # no outputs/, no Hydra run dir


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


def test_the_status_verb_prints_the_job_table(tmp_path: Path) -> None:
    """`ltx2-batch status manifest=...` is `status=true` (argv rewritten before Hydra sees it)."""
    manifest = write_manifest(
        tmp_path / "m",
        "defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}}\n"
        "jobs:\n  - {name: a, prompt: a lemon, seed: 1}\n",
    )
    out = tmp_path / "outputs"
    app = compose_app(f"manifest={manifest}", f"output.root={out}", "model=fake", "progress=false")
    assert run(app, REPO_ROOT) == 0
    status = _cli("status", f"manifest={manifest}", f"output.root={out}", "model=fake", cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-2000:]
    assert "1 jobs (done 1)" in status.stdout and "generated/" in status.stdout
