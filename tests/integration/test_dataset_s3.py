"""The dataset export into a bucket, over the real S3 API on loopback (moto's server, tests/fixtures/s3.py),
and read back from there: the same files, byte for byte, as a local export of the same run; a re-export
that uploads nothing; a lost object put back alone; a failed write that leaves no object; HF `datasets`
and `webdataset` reading the bucket's URLs; a run dir in a bucket (a local run copied there, its ledger
naming its files by URL: the run side writes runs to buckets) exported into the bucket and onto disk; and
`export.dir=s3://...` on the command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ltx2_batch.cli import run
from ltx2_batch.export.dataset import export_dataset
from ltx2_batch.export.files import DatasetStore
from tests.conftest import REPO_ROOT, compose_app, write_manifest

MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: fox, prompt: "A red fox runs through snow.", seed: 1}
  - {name: sea, prompt: "Waves break on a rocky shore.", seed: 2, num_frames: 17}
  - {name: owl, prompt: "An owl turns its head.", seed: 3}
  - {name: apple, prompt: "A red apple on a table.", seed: 4, num_frames: 1, width: 128, audio: false}
"""
OPTIONS: dict[str, Any] = {"webdataset": True, "samples_per_shard": 2, "thumbnails": True}


@pytest.fixture
def datasets_online(monkeypatch: pytest.MonkeyPatch) -> Any:
    """HF `datasets` allowed to reach URLs: other test modules set HF_DATASETS_OFFLINE (no Hub here), which
    also refuses s3:// data files. Nothing here names a Hub repo."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    return datasets


@pytest.fixture(scope="module")
def local_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake-model run with its dataset exported locally (the reference the bucket is compared with)."""
    tmp = tmp_path_factory.mktemp("s3export")
    manifest = write_manifest(tmp / "m", MANIFEST)
    app = compose_app(
        f"manifest={manifest}", f"output.root={tmp / 'outputs'}", "progress=false", "model=fake"
    )
    assert run(app, REPO_ROOT) == 0
    out = tmp / "outputs" / "m"
    export_dataset(out, out / "dataset", **OPTIONS)
    return out / "dataset"


def _objects(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    return {name[len(root) + 1 :]: info for name, info in fs.find(root, detail=True).items()}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_export_to_a_bucket_is_the_local_export_and_resumes(local_export: Path, s3_bucket: str) -> None:
    url = f"{s3_bucket}/ds"
    report = export_dataset(local_export.parent, url, **OPTIONS)
    assert (report.dest, report.samples, report.clips_placed, report.shards_written) == (url, 4, 4, 3)
    fs, root = fsspec.core.url_to_fs(url)
    objects = _objects(fs, root)
    local = {str(p.relative_to(local_export)): p for p in local_export.rglob("*") if p.is_file()}
    assert sorted(objects) == sorted(local)
    for name, path in local.items():
        if name != "metadata.parquet":  # the only file naming the run dir (source_path): see below
            assert fs.cat_file(f"{root}/{name}") == path.read_bytes(), name
    remote = pq.read_table(f"{root}/metadata.parquet", filesystem=fs)
    assert remote.drop_columns(["source_path"]).equals(
        pq.read_table(local_export / "metadata.parquet").drop_columns(["source_path"])
    )
    assert all(p.startswith(str(local_export.parent)) for p in remote["source_path"].to_pylist())  # full

    # re-export: nothing uploaded again (every clip and shard object keeps its ETag and time)
    again = export_dataset(local_export.parent, url, **OPTIONS)
    assert (again.clips_placed, again.clips_kept, again.shards_written, again.shards_kept) == (0, 4, 0, 3)
    after = _objects(fs, root)
    for name in (n for n in objects if n.endswith((".mp4", ".png", ".jpg", ".tar"))):
        assert (after[name]["ETag"], after[name]["LastModified"]) == (
            objects[name]["ETag"],
            objects[name]["LastModified"],
        )

    # resumable: a lost clip and a lost shard are put back, and only they
    clip = next(n for n in objects if n.startswith("video/") and n.endswith(".mp4"))
    fs.rm_file(f"{root}/{clip}")
    fs.rm_file(f"{root}/webdataset/video/00001.tar")
    fixed = export_dataset(local_export.parent, url, **OPTIONS)
    assert (fixed.clips_placed, fixed.shards_written, fixed.shards_kept) == (1, 1, 2)
    assert fs.cat_file(f"{root}/{clip}") == local[clip].read_bytes()


def test_a_failed_write_to_a_bucket_leaves_no_object(s3_bucket: str) -> None:
    store = DatasetStore(f"{s3_bucket}/ds")

    def killed_mid_write() -> None:
        with store.writing("metadata.parquet") as handle:
            handle.write(b"x" * 1024)
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()
    assert store.read_bytes("metadata.parquet") is None and store.listing("") == {}


def test_readers_read_the_bucket(
    local_export: Path, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, datasets_online: Any
) -> None:
    import webdataset as wds

    datasets = datasets_online
    url = f"{s3_bucket}/ds"
    export_dataset(local_export.parent, url, **OPTIONS)
    fs, _ = fsspec.core.url_to_fs(url)
    cache = str(tmp_path / "hf")
    expected = {
        r["job_name"]: r["clip_sha256"] for r in pq.read_table(local_export / "metadata.parquet").to_pylist()
    }
    videos = {name: sha for name, sha in expected.items() if name != "apple"}

    # HF `datasets`, from the bucket's URLs: the shards, the clips folder (streamed), the metadata (streamed)
    shards = datasets.load_dataset(
        "webdataset", data_files={"train": f"{url}/webdataset/video/*.tar"}, split="train", cache_dir=cache
    ).cast_column("mp4", datasets.Video(decode=False))
    assert {r["json"]["job_name"]: _sha(r["mp4"]["bytes"]) for r in shards} == videos
    clips = datasets.load_dataset("videofolder", data_files=f"{url}/video/*", split="train", streaming=True)
    clips = clips.cast_column("video", datasets.Video(decode=False))
    read = {r["job_name"]: (r["video"]["path"], r["caption"]) for r in clips}
    assert {n: _sha(fs.cat_file(p)) for n, (p, _) in read.items()} == videos  # paths are the bucket's URLs
    table = datasets.load_dataset(
        "parquet", data_files=f"{url}/metadata.parquet", split="train", streaming=True
    )
    assert {r["job_name"]: r["clip_sha256"] for r in table} == expected

    # the folder downloaded as is (as from a Hub repo) loads by name through its card
    fs.get(fs._strip_protocol(url), str(tmp_path / "copy"), recursive=True)
    by_name = datasets.load_dataset(str(tmp_path / "copy"), split="train", cache_dir=cache)
    by_name = by_name.cast_column("mp4", datasets.Video(decode=False))
    assert {r["json"]["job_name"]: _sha(r["mp4"]["bytes"]) for r in by_name} == videos

    # `webdataset` straight from the bucket: its URL scheme table, given an fsspec opener for s3://
    monkeypatch.setitem(wds.gopen_schemes, "s3", lambda u, mode, bufsize, **kw: fsspec.open(u, mode).open())  # noqa: ARG005 - gopen's handler signature
    urls = sorted(f"s3://{p}" for p in fs.glob(f"{url}/webdataset/video/*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["000000", "000001", "000010"]
    assert {json.loads(s["json"])["job_name"]: _sha(s["mp4"]) for s in samples} == videos


_NO_S3_TAR_STREAM = (
    "datasets 4.8 streams tars with xopen(block_size=0), which fsspec hands to S3FileSystem's "
    "constructor, and aiobotocore's AioSession rejects it"
)


@pytest.mark.xfail(raises=TypeError, strict=True, reason=_NO_S3_TAR_STREAM)
def test_hf_datasets_cannot_stream_webdataset_tars_from_s3_yet(
    local_export: Path, s3_bucket: str, datasets_online: Any
) -> None:
    datasets = datasets_online
    url = f"{s3_bucket}/ds"
    export_dataset(local_export.parent, url, webdataset=True, samples_per_shard=2)
    stream = datasets.load_dataset(
        "webdataset", data_files={"train": f"{url}/webdataset/video/*.tar"}, split="train", streaming=True
    )
    list(stream.cast_column("mp4", datasets.Video(decode=False)))


def _run_in_bucket(run_dir: Path, url: str) -> None:
    """A copy of a local run dir in a bucket, its ledger naming its files by URL (what a run written to
    a bucket records; the run side itself is another change)."""
    fs, root = fsspec.core.url_to_fs(url)
    for path in run_dir.rglob("*"):
        if path.is_file() and "dataset" not in path.relative_to(run_dir).parts:
            fs.put_file(str(path), f"{root}/{path.relative_to(run_dir)}")
    ledger = pq.read_table(run_dir / "ledger.parquet")
    for column in ("output_path", "thumbnail_path", "sidecar_path"):
        urls = pc.replace_substring(ledger[column], f"{run_dir}/", f"{url}/")
        ledger = ledger.set_column(ledger.schema.get_field_index(column), column, urls)
    with fs.open(f"{root}/ledger.parquet", "wb") as handle:
        pq.write_table(ledger, handle)


def test_a_run_dir_in_a_bucket_exports_to_the_bucket_and_to_disk(
    local_export: Path, s3_bucket: str, tmp_path: Path
) -> None:
    run_url = f"{s3_bucket}/run"
    _run_in_bucket(local_export.parent, run_url)
    fs, root = fsspec.core.url_to_fs(run_url)
    shards = sorted(str(p.relative_to(local_export)) for p in local_export.rglob("*.tar"))
    in_bucket = export_dataset(run_url, **OPTIONS)  # default dest: <run>/dataset, copied server-side
    on_disk = export_dataset(run_url, tmp_path / "ds", **OPTIONS)
    assert in_bucket.dest == f"{run_url}/dataset" and in_bucket.samples == on_disk.samples == 4
    for name in [*shards, "README.md", "video/metadata.parquet", "webdataset/index.json"]:
        reference = (local_export / name).read_bytes()
        assert fs.cat_file(f"{root}/dataset/{name}") == reference == (tmp_path / "ds" / name).read_bytes()
    sources = pq.read_table(tmp_path / "ds" / "metadata.parquet")["source_path"].to_pylist()
    assert all(s.startswith(f"{run_url}/generated/") for s in sources)

    # files in the bucket are checked as on disk: a truncated clip is left out, with the reason
    clip = next(s for s in sources if s.endswith(".mp4"))
    fs.pipe_file(fs._strip_protocol(clip), fs.cat_file(clip)[:-100])
    checked = export_dataset(run_url, tmp_path / "ds", **OPTIONS)
    (job_id, reason), *others = checked.rejected
    assert checked.samples == 3 and not others and clip.endswith(f"/{job_id}.mp4"), reason
    assert reason.startswith(f"output {job_id}.mp4 is truncated"), reason


def test_the_command_line_exports_to_a_bucket(
    tmp_path: Path, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(
        tmp_path / "m", "jobs:\n  - {name: fox, prompt: A fox., width: 64, height: 64}\n"
    )
    settings = [f"manifest={manifest}", f"output.root={tmp_path / 'outputs'}", "progress=false", "model=fake"]
    app = compose_app(*settings, "export.webdataset=true", f"export.dir={s3_bucket}/ds")
    assert run(app, tmp_path) == 0
    assert f"dataset: {s3_bucket}/ds/metadata.parquet (1 samples, 1 clip(s) placed" in capsys.readouterr().out
    fs, root = fsspec.core.url_to_fs(f"{s3_bucket}/ds")
    assert {"README.md", "metadata.parquet", "webdataset/video/00000.tar"} <= set(_objects(fs, root))
    assert not (tmp_path / "outputs" / "m" / "dataset").exists()
