"""Object storage at the launch check, without the network: which URLs a run may write to, what is refused
(with the package to install, or why), where a node's scratch is, and the S3 ETag a file's bytes give.
The runs themselves, against a real S3 API, are tests/integration/test_object_storage.py."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from ltx2_batch.cli import run, sweep_record_root
from ltx2_batch.errors import ConfigError
from ltx2_batch.run.checks import RAY_JOB_ENV, settings_problems
from ltx2_batch.run.multirun import sweep_point_config
from ltx2_batch.run.planning import run_location
from ltx2_batch.run.rundir import LocalRunDir
from ltx2_batch.run.session import _rebuild
from ltx2_batch.storage.checksum import digest
from ltx2_batch.storage.location import SCRATCH_ENV, Location, parse_location, scratch_key, scratch_root
from tests.conftest import compose_app


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["output.root=foo://bucket/runs"], "output.root=foo://bucket/runs: unknown storage scheme 'foo'"),
        (["export.dir=http://host/data"], "http:// is not an object store every node of a cluster can write"),
        (["output.root=memory://runs"], "memory:// is not an object store"),
        (["output.root=s3://"], "output.root=s3:// names no bucket"),
        (
            ["output.root=s3://AKIA:hunter2@bucket/runs"],
            "credentials in the URL would be written to the ledger",
        ),
        (["output.endpoint_url=http://user:pw@minio:9000"], "output.endpoint_url holds credentials"),
        (["output.upload_part_mb=4"], "multipart parts of at least 5 MB"),
        (["output.lease_ttl_s=0"], "output.lease_ttl_s must be > 0 seconds"),
        (["model.root=s3://bucket/models"], "model.root=s3://bucket/models: only output.root and export.dir"),
    ],
)
def test_urls_that_cannot_hold_a_run_are_refused_with_the_reason(
    overrides: list[str], expected: str, tmp_path: Path
) -> None:
    problems = settings_problems(compose_app(*overrides), tmp_path)
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert "hunter2" not in problems[0] and "pw@" not in problems[0]  # a refusal never repeats a secret


def test_a_store_whose_package_is_missing_names_the_package_to_install(tmp_path: Path) -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    problems = settings_problems(compose_app("output.root=gs://bucket/runs", "export.dir=az://c/x"), tmp_path)
    assert "output.root=gs://bucket/runs needs the gcsfs package" in problems[0]
    assert "pip install 'ltx2-batch[gcs]'" in problems[0]
    if importlib.util.find_spec("adlfs") is None:
        assert "pip install 'ltx2-batch[azure]'" in problems[1]


def test_an_s3_url_passes_and_makes_no_local_folder(tmp_path: Path) -> None:
    app = compose_app("output.root=s3://bucket/runs/", "export.dir=s3://bucket/datasets")
    assert settings_problems(app, tmp_path) == []
    location = run_location(app, tmp_path / "clips.yaml", tmp_path)
    assert location == Location("s3://bucket/runs/clips", remote=True)
    assert list(tmp_path.iterdir()) == []  # nothing named s3: (or anything else) was made


def test_a_refused_url_stops_the_command_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(compose_app("output.root=foo://bucket/runs", "plan=true"), tmp_path) == 2
    assert "unknown storage scheme 'foo'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_locations_parse_paths_and_urls(tmp_path: Path) -> None:
    assert parse_location("out", tmp_path) == Location(str(tmp_path / "out"))
    assert parse_location("file:///data/runs", tmp_path) == Location("/data/runs")
    assert parse_location("S3://b/runs//", tmp_path) == Location("s3://b/runs", remote=True)
    assert parse_location("s3://b/runs", tmp_path).child("m").text == "s3://b/runs/m"
    with pytest.raises(ValueError, match="has no local path"):
        _ = Location("s3://b", remote=True).path


def test_a_relative_folder_inside_rays_copy_of_a_job_dir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `ray job submit` the launch dir is Ray's temporary copy of the working dir: outputs written
    there vanish with it. An absolute folder elsewhere, or a bucket, is fine."""
    job_copy = tmp_path / "session_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_1"
    job_copy.mkdir(parents=True)
    monkeypatch.setenv(RAY_JOB_ENV, "{}")
    problems = settings_problems(compose_app("output.root=outputs", "export.dir=data"), job_copy)
    assert [p.split("=")[0] for p in problems] == ["output.root", "export.dir"]
    assert f"resolves to {job_copy / 'outputs'}, inside the copy of the working dir Ray made" in problems[0]
    assert "output.root=s3://my-bucket/runs" in problems[0]
    elsewhere = compose_app(f"output.root={tmp_path / 'shared'}", "export.dir=s3://b/data")
    assert settings_problems(elsewhere, job_copy) == []
    monkeypatch.delenv(RAY_JOB_ENV)
    assert settings_problems(compose_app("output.root=outputs"), job_copy) == []  # not under a job


def test_scratch_is_the_setting_else_the_nodes_variable_else_the_system_temp(tmp_path: Path) -> None:
    assert scratch_root(str(tmp_path / "a"), {SCRATCH_ENV: "/x"}) == tmp_path / "a"
    assert scratch_root(None, {SCRATCH_ENV: str(tmp_path / "b")}) == tmp_path / "b"
    assert scratch_root(None, {}).name.startswith("ltx2-batch-scratch-")
    assert scratch_key("s3://b/runs/demo") != scratch_key("s3://other/runs/demo")
    assert scratch_key("s3://b/runs/demo").startswith("demo-")


@pytest.mark.parametrize(("size", "parts"), [(0, 1), (1000, 1), (5 << 20, 1), ((10 << 20) + 1, 3)])
def test_the_s3_etag_of_a_file_is_computed_as_s3_computes_it(tmp_path: Path, size: int, parts: int) -> None:
    """A single PUT's ETag is the MD5 of the bytes; from two parts' worth on, s3fs uploads in parts and the
    ETag is the MD5 of the parts' MD5s, then `-<parts>`."""
    path = tmp_path / "f"
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(data)
    found = digest(path, 5 << 20)
    assert (found.size, found.sha256) == (size, hashlib.sha256(data).hexdigest())
    if parts == 1:
        assert found.s3_etag == hashlib.md5(data).hexdigest()
    else:
        blocks = [data[i : i + (5 << 20)] for i in range(0, size, 5 << 20)]
        expected = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in blocks)).hexdigest()
        assert found.s3_etag == f"{expected}-{parts}"


def test_a_ledger_rebuild_is_refused_on_object_storage(tmp_path: Path) -> None:
    class Remote:
        location = Location("s3://b/runs/m", remote=True)

    with pytest.raises(ConfigError, match="ledger_rebuild=true works on a local output dir"):
        _rebuild(Remote(), None)  # type: ignore[arg-type]
    assert LocalRunDir(tmp_path).location.text == str(tmp_path)


def test_a_sweep_into_a_bucket_is_refused_and_hydra_writes_no_local_url_folder(tmp_path: Path) -> None:
    """Sweeps keep their sweep ledger on a disk. Hydra's own record of a sweep goes under output.root, so
    for a bucket it is sent to the system temp instead of a local folder named `s3:`."""
    app = compose_app("output.root=s3://bucket/runs")
    with pytest.raises(ConfigError, match="sweeps \\(-m\\) keep their sweep ledger on a disk"):
        sweep_point_config(app, ["seed=1"], 0, tmp_path, "demo")
    assert not sweep_record_root("s3://bucket/runs").startswith("s3:")
    assert sweep_record_root("outputs") == "outputs"
