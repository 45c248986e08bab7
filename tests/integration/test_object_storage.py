"""Runs into a bucket, against a real S3 API (moto's server on loopback, tests/fixtures/s3.py; s3fs and
botocore talk HTTP to it as to S3), on the fake model in this process: what lands in the bucket and in what
shape, resume and `status` and `plan=true` read from it, the contact sheet, the writer rules as leases (a
second writer refused, shards, a stale lease taken over), and multipart uploads confirmed by their ETag.
Crashes (kill -9 of the driver, a store that goes away, secrets in files) are test_object_storage_crash.py;
a chained job resumed on another Ray node is test_object_storage_cluster.py."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.core.shard import Shard
from ltx2_batch.errors import ConfigError, StorageError
from ltx2_batch.export.dataset import export_dataset
from ltx2_batch.media.probe import decode_frame_index, read_frames
from ltx2_batch.storage import lease as lease_module
from ltx2_batch.storage.checksum import digest
from ltx2_batch.storage.lease import WRITER, Holder, hold_bucket_dir, read_lease
from ltx2_batch.storage.objects import ObjectStore
from ltx2_batch.storage.scratch_temp import this_host
from tests.conftest import compose_app, write_manifest
from tests.fixtures.s3 import bucket_objects

MANIFEST = """
defaults: {width: 32, height: 32, num_frames: 9, upscale: {spatial: false}, pipeline: distilled}
jobs:
  - {name: cat, prompt: "A cat walks on a sunny street.", seed: 1}
  - {name: hills, prompt: "Green hills under drifting clouds.", seed: 2}
  - {name: walk, prompt: "A long walk along the beach", num_frames: 60, seed: 3}
"""
CHAINING = ("chaining.chunk_frames=25", "chaining.overlap_frames=8")  # 60 frames: four 25-frame windows


def _launch(tmp_path: Path, root: str, *extra: str) -> list[str]:
    manifest = write_manifest(tmp_path / "m", MANIFEST, "clips.yaml")
    return [
        f"manifest={manifest}",
        "model=fake",
        f"output.root={root}",
        f"output.scratch={tmp_path / 'scratch'}",
        "progress=false",
        *CHAINING,
        *extra,
    ]


def _ledger(objects: dict[str, bytes]) -> list[dict[str, object]]:
    return pq.read_table(io.BytesIO(objects["ledger.parquet"])).to_pylist()


def test_a_run_publishes_to_the_bucket_and_resumes_from_it(
    s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = f"{s3_bucket}/runs"
    export = ("export.webdataset=true", f"export.dir={s3_bucket}/datasets/clips")
    url = f"{root}/clips"
    ObjectStore(url).write("contact_sheet-9.html", b"a page of an earlier, longer sheet")
    assert run(compose_app(*_launch(tmp_path, root), *export), tmp_path) == 0
    objects = bucket_objects(url)
    kinds = {name.split("/")[0] for name in objects}
    assert kinds == {
        "generated",
        "thumbnails",
        "metadata",
        "ledger.parquet",
        "jobs.parquet",
        "contact_sheet.html",
        "contact_sheet.png",
    }  # fmt: skip  (no journal part, lease or chunk state is left once the run closed)
    assert not (tmp_path / "s3:").exists() and not list(tmp_path.glob("**/s3:*"))

    done = _check_the_done_rows(url, objects, tmp_path)

    _check_the_exports(url, f"{s3_bucket}/datasets/clips", objects, tmp_path / "local-dataset")

    sheet = objects["contact_sheet.html"].decode()
    assert sheet.count("<figure") == 3 and 'src="thumbnails/' in sheet and 'href="generated/' in sheet
    assert pq.read_table(io.BytesIO(objects["jobs.parquet"])).num_rows == 3

    capsys.readouterr()
    assert run(compose_app(*_launch(tmp_path, root), "status=true"), tmp_path) == 0
    status = capsys.readouterr().out
    assert f"{url}: 3 jobs (done 3)" in status and "generated/" in status

    assert run(compose_app(*_launch(tmp_path, root), "plan=true"), tmp_path) == 0
    assert (
        f"3 jobs (0 pending, 3 already done), 6 pipeline calls, 78 frames -> {url}" in capsys.readouterr().out
    )

    assert run(compose_app(*_launch(tmp_path, root)), tmp_path) == 0  # resumed: nothing to render
    assert re.search(r"skipped \(already done\) \|\s+3 \|", capsys.readouterr().out)
    assert bucket_objects(url)["ledger.parquet"] == objects["ledger.parquet"]  # not even a skipped row

    # Done jobs are checked against their objects (sizes and ETags recorded at upload): a video replaced
    # or deleted in the bucket is rendered again, the others are not.
    store = ObjectStore(url)
    cat, hills = (str(done[name]["output_path"]).removeprefix(f"{url}/") for name in ("cat", "hills"))
    store.write(cat, b"not a video")
    store.remove([hills])
    assert run(compose_app(*_launch(tmp_path, root)), tmp_path) == 0
    rows = _ledger(bucket_objects(url))
    retried = {str(r["job_name"]): str(r["error"]) for r in rows if r["status"] == "retried"}
    assert sorted(retried) == ["cat", "hills"]
    assert "bytes in the bucket" in retried["cat"] and "missing from the bucket" in retried["hills"]
    assert len(store.read(hills) or b"") > 0
    assert sum(r["status"] == "running" and r["job_name"] == "walk" for r in rows) == 1
    driver = tmp_path / "scratch" / "driver"  # the driver's mirror and snapshots are gone once uploaded
    assert [p.name for p in driver.iterdir()] == []
    assert [p for p in (tmp_path / "scratch" / "runs").rglob("*") if p.is_file()] == []  # and the jobs'


def _check_the_done_rows(url: str, objects: dict[str, bytes], tmp_path: Path) -> dict[str, dict[str, object]]:
    """Each done row names its objects, with the size, sha256 and ETag the store confirmed (the sidecar
    says the same); the chained job's file is frames 0..59 exactly; its chunk rows name objects."""
    rows = _ledger(objects)
    done = {str(r["job_name"]): r for r in rows if r["row_kind"] == "job" and r["status"] == "done"}
    assert sorted(done) == ["cat", "hills", "walk"]
    for row in done.values():
        rel = str(row["output_path"]).removeprefix(f"{url}/")
        data = objects[rel]
        assert row["output_bytes"] == len(data) and row["output_sha256"] == hashlib.sha256(data).hexdigest()
        files = json.loads(str(row["files_json"]))
        assert files[rel]["etag"] == hashlib.md5(data).hexdigest()  # confirmed by the store's ETag
        sidecar = json.loads(objects[f"metadata/{row['job_id']}.json"])
        assert sidecar["files"][rel] == {"bytes": len(data), "sha256": row["output_sha256"]}
        assert float(row["upload_s"]) >= 0  # type: ignore[arg-type]
    local = tmp_path / "walk.mp4"
    local.write_bytes(objects[str(done["walk"]["output_path"]).removeprefix(f"{url}/")])
    assert [decode_frame_index(f) for f in read_frames(local)] == list(range(60))  # stitched exactly
    chunk_rows = [r for r in rows if r["row_kind"] == "chunk" and r["latent_path"]]
    assert chunk_rows and all(str(r["latent_path"]).startswith(f"{url}/chunks/") for r in chunk_rows)
    return done


def _check_the_exports(run_url: str, dataset_url: str, run_objects: dict[str, bytes], local: Path) -> None:
    """The dataset exported from the bucket run into the bucket (clips copied server-side) holds the run's
    clips byte for byte, in its metadata and its WebDataset shard; exported again to a local folder, the
    same samples."""
    dataset = bucket_objects(dataset_url)
    table = pq.read_table(io.BytesIO(dataset["metadata.parquet"])).to_pylist()
    assert len(table) == 3
    for row in table:
        clip = dataset[row["file_name"]]
        assert clip == run_objects[row["source_path"].removeprefix(f"{run_url}/")]
        assert row["clip_sha256"] == hashlib.sha256(clip).hexdigest() and row["clip_bytes"] == len(clip)
    with tarfile.open(fileobj=io.BytesIO(dataset["webdataset/video/00000.tar"])) as tar:
        first = table[0]
        member = tar.extractfile(f"{first['wds_key']}.mp4")  # video2dataset's sample key
        assert member is not None and member.read() == dataset[first["file_name"]]
    report = export_dataset(run_url, local)
    assert (report.samples, report.clips_placed, report.rejected) == (3, 3, ())
    assert sorted(p.name for p in (local / "video").glob("*.mp4")) == sorted(
        Path(r["file_name"]).name for r in table
    )


def test_a_second_writer_is_refused_by_the_lease_as_on_a_disk(
    s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = f"{s3_bucket}/runs"
    store = ObjectStore(f"{root}/clips")
    driver = tmp_path / "scratch" / "driver"
    # a snapshot left by a launch of this host killed with -9, and one of another host sharing the folder
    killed, elsewhere = (driver / f"read-4194305@{host}-abcd1234" for host in (this_host(), "elsewhere"))
    (killed / "ledger").mkdir(parents=True)
    elsewhere.mkdir()
    with hold_bucket_dir(store, None, "another-run", 60):
        assert run(compose_app(*_launch(tmp_path, root)), tmp_path) == 2
        err = capsys.readouterr().err
        assert f"another ltx2-batch run is writing {root}/clips (pid {os.getpid()} on" in err
        assert "one run per output dir" in err and "its lease lapses at" in err
        assert [p.name for p in driver.iterdir()] == [elsewhere.name]  # its reads dropped, the orphan too
        with pytest.raises(ConfigError, match="an unsharded run holds it"), _held(store, Shard(0, 2)):
            pass
    with _held(store, Shard(0, 2)):
        with pytest.raises(ConfigError, match="shard 0/2 is already running"), _held(store, Shard(0, 2)):
            pass
        with (
            pytest.raises(ConfigError, match=r"launches with shard=i/2 are writing"),
            _held(store, Shard(1, 3)),
        ):
            pass
        with _held(store, Shard(1, 2)):  # another shard of the same count
            assert sorted(store.listing("leases")) == ["leases/shard-0-of-2.json", "leases/shard-1-of-2.json"]
        with pytest.raises(ConfigError, match="one run per output dir"), _held(store, None):
            pass
    assert store.listing("leases") == {}  # released: deleted


def _held(store: ObjectStore, shard: Shard | None) -> contextlib.AbstractContextManager[object]:
    return hold_bucket_dir(store, shard, f"run-{shard}", 60)


def test_a_stale_lease_is_taken_over(s3_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    """A lease whose holder stopped renewing it for a whole TTL (another machine), or whose holder was a
    process of this machine that is gone (a launch killed with -9), no longer binds; a live one does."""
    store = ObjectStore(f"{s3_bucket}/runs/clips")
    lapsed = Holder("elsewhere", "boot", 4242, "1", "old-run", None, 0.001, "2026-01-01 00:00:00 UTC")
    store.write(WRITER, lapsed.body())
    time.sleep(1.1)  # the store's clock counts whole seconds (Last-Modified, Date): one passes
    with _held(store, None) as lease:
        assert "took over the stale writer lease" in caplog.text and "pid 4242 on elsewhere" in caplog.text
        assert Holder.parse(store.read(WRITER)) == lease.holder  # type: ignore[attr-defined]

    ended = subprocess.Popen(["true"])  # a process of this machine that has ended (a launch killed with -9)
    ended.wait()
    me = Holder.me("dead-run", None, 600.0)
    store.write(WRITER, Holder(me.host, me.boot, ended.pid, "1", "dead-run", None, 600.0, me.started).body())
    with _held(store, None):  # at once, though its TTL is ten minutes
        pass
    store.write(WRITER, Holder("elsewhere", "boot", 1, "1", "live-run", None, 600.0, me.started).body())
    with (
        pytest.raises(ConfigError, match=r"\(pid 1 on elsewhere, started .*, its lease lapses at"),
        _held(store, None),
    ):
        pass


def test_a_lease_is_judged_by_the_stores_clock_not_the_readers(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader whose clock runs an hour fast sees a live lease live, and one an hour slow sees a lapsed
    lease lapsed: both ends of the comparison are the store's (Last-Modified, and the Date of its answer)."""
    store = ObjectStore(f"{s3_bucket}/runs/clips")
    live = Holder("elsewhere", "boot", 1, "1", "live-run", None, 60.0, "2026-01-01 00:00:00 UTC")
    lapsed = Holder("elsewhere", "boot", 2, "1", "old-run", None, 0.5, "2026-01-01 00:00:00 UTC")
    store.write("leases/live.json", live.body())
    store.write("leases/lapsed.json", lapsed.body())
    time.sleep(1.5)  # the store's clocks count whole seconds: past the lapsed one's half-second TTL
    for skew_s, name, binds in ((3600.0, "live", True), (-3600.0, "lapsed", False)):

        class SkewedClock(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return datetime.now(tz) + timedelta(seconds=skew_s)  # noqa: B023 - read in this turn only

        monkeypatch.setattr(lease_module, "datetime", SkewedClock)
        state = read_lease(store, f"leases/{name}.json", 60.0)
        assert state is not None and state.live is binds, (skew_s, name)


def test_large_files_go_up_in_parts_and_are_confirmed(s3_bucket: str, tmp_path: Path) -> None:
    """11 MiB in 5 MiB parts (the server's smallest part): a multipart upload, whose ETag the store reports
    as the MD5 of the parts' MD5s; an upload the store does not confirm is an error naming the object."""
    store = ObjectStore(f"{s3_bucket}/big")
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 << 20))
    found = digest(path, 5 << 20)
    info = store.put_file(path, "generated/big.bin", found)
    assert (
        found.multipart and info.etag == found.s3_etag and info.etag is not None and info.etag.endswith("-3")
    )
    assert info.size == 11 << 20
    small = digest(path, 16 << 20)  # the same bytes as one PUT: another ETag
    assert not small.multipart and store.put_file(path, "single.bin", small).etag == found.md5
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * 100)
    wrong = digest(other, 5 << 20)
    with pytest.raises(StorageError, match=r"big\.bin to s3://.*/big/generated/big\.bin: the store holds"):
        store.put_file(path, "generated/big.bin", wrong)


@pytest.mark.usefixtures("s3_server")
def test_a_missing_bucket_or_a_silent_store_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket that does not exist, a store that does not answer, and an export bucket that does not exist:
    each a one-line error (exit 2) before anything renders, not a library traceback mid-launch or after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries: the dead endpoint answers at once
    cases = {
        "does not exist": _launch(tmp_path, "s3://no-such-bucket/runs"),
        "did not answer": [*_launch(tmp_path, "s3://any/runs"), "output.endpoint_url=http://127.0.0.1:9"],
        "export": [
            *_launch(tmp_path, str(tmp_path / "out")),
            "export.dataset=true",
            "export.dir=s3://no-such-bucket/datasets",
        ],
    }
    for expected, args in cases.items():
        assert run(compose_app(*args), tmp_path) == 2, expected
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert ("does not exist" if expected == "export" else expected) in err, err
    assert not list((tmp_path / "out").rglob("*.mp4"))  # the export's bucket was checked before the renders
