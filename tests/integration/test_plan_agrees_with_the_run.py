"""One truth for settings: what a run would refuse, `plan=true` refuses too, with the fix that fits this
machine, and nothing is written. (Where only the workers can know, a Ray worker refuses before loading
anything: tests/integration/test_run_ray.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.cli import run
from ltx2_batch.run.progress import RunStats, summary_table
from tests.conftest import REPO_ROOT, compose_app

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("override", "fix"),
    [
        ("model.quantization=fp8_scaled", "use model.quantization=none"),
        ("model.quantization=fp8_cast", "use model.quantization=none"),
        ("model=ltx2_fp8", "a full-precision preset (model=ltx2_distilled)"),
    ],
)
def test_fp8_on_a_cpu_is_refused_by_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, fix: str
) -> None:
    out = tmp_path / "outputs"
    app = compose_app("manifest=demo", override, "plan=true", f"output.root={out}")
    assert run(app, REPO_ROOT) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA" in err and fix in err
    assert "fp8_cast (fp8 storage" not in err  # a fix that cannot work here is not offered
    assert not out.exists()


def test_an_output_root_that_cannot_be_written_is_refused_by_the_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = compose_app("manifest=demo", "model=fake", "plan=true", "output.root=/proc/ltx2-batch-test")
    assert run(app, REPO_ROOT) == 2
    err = capsys.readouterr().err
    assert "output.root=/proc/ltx2-batch-test: cannot write there" in err and "Traceback" not in err
    assert not Path("/proc/ltx2-batch-test").exists()


def test_the_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "outputs"
    app = compose_app("manifest=demo", "model=fake", "plan=true", f"output.root={out}")
    assert run(app, REPO_ROOT) == 0
    assert not (tmp_path / "a").exists()  # the folders made to prove the root writable are gone again


def test_the_summary_says_why_jobs_failed_even_without_progress() -> None:
    stats = RunStats(total=7)
    for i in range(7):
        stats.statuses["failed"] += 1
        stats.failed_because(f"job{i}", f"OSError: [Errno 28] No space left on device ({i})\nTraceback ...")
    text = summary_table(stats)
    assert "failed: job0: OSError: [Errno 28] No space left on device (0)" in text
    assert "Traceback" not in text  # the reason's first line only
    assert "... and 2 more failed job(s)" in text  # bounded: five reasons, then a count


def test_a_truncated_checkpoint_is_named_by_the_plan(
    tmp_path: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cut download is found from its header on the driver, before any job (every job failed with
    'SafetensorError: incomplete metadata', never naming the file)."""
    import shutil

    root = tmp_path / "models"
    shutil.copytree(tiny_root, root)
    checkpoint = root / "checkpoints" / "ltx-2-tiny-distilled.safetensors"
    with checkpoint.open("r+b") as handle:
        handle.truncate(checkpoint.stat().st_size - 4096)
    out = tmp_path / "outputs"
    app = compose_app(
        "manifest=demo", "model.source=checkpoint", f"model.root={root}", "plan=true", f"output.root={out}"
    )
    assert run(app, REPO_ROOT) == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: " in err and "the file is incomplete" in err and "download it again" in err


def test_a_model_that_cannot_load_stops_the_run_once(
    tmp_path: Path, tiny_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Damage the headers cannot show (a tokenizer that is not JSON) fails in the worker: the first job's
    load stops the run once, with the reason, instead of every job failing the same way."""
    import shutil

    import pyarrow.parquet as pq

    root = tmp_path / "models"
    shutil.copytree(tiny_root, root)
    (root / "text_encoders" / "gemma3" / "tokenizer.json").write_text("{not json")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "defaults: {width: 64, height: 64, num_frames: 9}\n"
        "jobs: [{name: a, prompt: one, seed: 1}, {name: b, prompt: two, seed: 2},"
        " {name: c, prompt: three, seed: 3}]\n"
    )
    out = tmp_path / "outputs"
    app = compose_app(
        f"manifest={manifest}", "model.source=checkpoint", f"model.root={root}", f"output.root={out}"
    )
    assert run(app, REPO_ROOT) == 2
    printed = capsys.readouterr().out
    assert printed.count("error: the run stopped: the model could not be loaded") == 1
    rows = pq.read_table(out / "m" / "ledger.parquet").to_pandas()
    finals = rows[(rows.row_kind == "job") & (rows.status != "running")]
    assert finals.status.tolist() == ["failed"]  # one job tried; the other two never started
