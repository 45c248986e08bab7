"""The dataset export read by the libraries people train with: HF `datasets` (webdataset, videofolder,
imagefolder and parquet forms, and the folder by name through its card) and `webdataset`, on a run with both
videos and a still (the fake model: the readers read files, whatever rendered them); every relative path in
every metadata file resolving; the shards read the way video2dataset's code reads them; an export in the
earlier layout migrated."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ltx2_batch.cli import run
from ltx2_batch.export.dataset import export_dataset
from tests.conftest import REPO_ROOT, write_manifest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local files only; read before `datasets` is imported

MANIFEST = """
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled, tags: {set: readers}}
jobs:
  - {name: fox, prompt: "A red fox runs through snow.", seed: 1}
  - {name: sea, prompt: "Waves break on a rocky shore.", seed: 2, num_frames: 17}
  - {name: apple, prompt: "A red apple on a table.", seed: 3, num_frames: 1, width: 128, audio: false}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import compose_app

    tmp = tmp_path_factory.mktemp("readers")
    manifest = write_manifest(tmp / "m", MANIFEST)
    app = compose_app(
        f"manifest={manifest}",
        f"output.root={tmp / 'outputs'}",
        "export.webdataset=true",
        "export.thumbnails=true",
        "export.samples_per_shard=1",
        "progress=false",
        "model=fake",
    )
    assert run(app, REPO_ROOT) == 0
    return tmp / "outputs" / "m" / "dataset"


def _load(datasets: Any, builder: str, cache: str, **where: Any) -> Any:
    return datasets.load_dataset(builder, split="train", cache_dir=cache, **where)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_layout_keeps_kinds_apart_with_relative_paths(exported: Path) -> None:
    table = pq.read_table(exported / "metadata.parquet").to_pylist()
    assert sorted((r["job_name"], r["kind"], r["file_name"].split("/")[0]) for r in table) == [
        ("apple", "image", "image"),
        ("fox", "video", "video"),
        ("sea", "video", "video"),
    ]
    for row in table:
        assert (exported / row["file_name"]).is_file() and (exported / row["thumbnail"]).is_file()
        assert _sha((exported / row["file_name"]).read_bytes()) == row["clip_sha256"]
        assert not any(isinstance(v, str) and v.startswith("/") for v in row.values())  # all relative
    for kind, count in (("video", 2), ("image", 1)):
        shards = sorted((exported / "webdataset" / kind).glob("*.tar"))
        assert [s.name for s in shards] == [f"{i:05d}.tar" for i in range(count)]  # never mixes kinds
        for shard in shards:
            stem = shard.name.removesuffix(".tar")
            rows = pq.read_table(shard.with_name(f"{stem}.parquet")).to_pylist()
            stats = json.loads(shard.with_name(f"{stem}_stats.json").read_text())
            assert len(rows) == stats["count"] == stats["successes"] == 1  # one sample per shard here
            assert stats["bytes_downloaded"] == rows[0]["clip_bytes"] and rows[0]["key"] == stem


def test_hf_datasets_loads_the_webdataset_shards(exported: Path, tmp_path: Path) -> None:
    import datasets

    cache = str(tmp_path / "hf")
    shards = {kind: {"train": str(exported / f"webdataset/{kind}/*.tar")} for kind in ("video", "image")}
    videos = _load(datasets, "webdataset", cache, data_files=shards["video"])
    assert isinstance(videos.features["mp4"], datasets.Video) and len(videos) == 2
    raw = videos.cast_column("mp4", datasets.Video(decode=False))
    by_name = {row["json"]["job_name"]: row for row in raw}
    assert set(by_name) == {"fox", "sea"}
    fox = by_name["fox"]
    assert fox["txt"] == "A red fox runs through snow."
    assert fox["json"]["params"]["num_frames"] == 9 and fox["json"]["tags"] == {"set": "readers"}
    assert _sha(fox["mp4"]["bytes"]) == fox["json"]["clip_sha256"]
    stills = _load(datasets, "webdataset", cache, data_files=shards["image"])
    (apple,) = list(stills)
    assert apple["png"].size == (128, 64) and apple["txt"] == "A red apple on a table."


def test_hf_datasets_loads_the_folders_and_the_parquet(exported: Path, tmp_path: Path) -> None:
    import datasets

    cache = str(tmp_path / "hf")
    clips = _load(datasets, "videofolder", cache, data_dir=str(exported / "video"))
    clips = clips.cast_column("video", datasets.Video(decode=False))
    assert sorted(clips["job_name"]) == ["fox", "sea"] and "caption" in clips.column_names
    for row in clips:
        assert Path(row["video"]["path"]).is_file()
    images = _load(datasets, "imagefolder", cache, data_dir=str(exported / "image"))
    assert images[0]["image"].size == (128, 64) and images[0]["caption"] == "A red apple on a table."
    table = _load(datasets, "parquet", cache, data_files=str(exported / "metadata.parquet"))
    assert len(table) == 3 and all((exported / name).is_file() for name in table["file_name"])


def test_webdataset_iterates_the_shards(exported: Path) -> None:
    import webdataset as wds

    urls = sorted(str(p) for p in (exported / "webdataset" / "video").glob("*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    members = [set(s) - {"__key__", "__url__", "__local_path__"} for s in samples]
    assert members == [{"mp4", "txt", "json"}] * 2
    assert [s["__key__"] for s in samples] == ["00000", "00001"]  # one sample per shard: 0 key digits
    for sample in samples:
        meta = sample["json"]
        assert sample["__key__"] == meta["key"] and sample["txt"] == meta["caption"]
        assert isinstance(meta["params"], dict) and _sha(sample["mp4"]) == meta["clip_sha256"]


def test_stills_can_be_left_out(exported: Path, tmp_path: Path) -> None:
    report = export_dataset(exported.parent, tmp_path / "videos_only", webdataset=True, stills="exclude")
    assert report.samples == 2
    assert not (tmp_path / "videos_only" / "image").exists()
    assert not (tmp_path / "videos_only" / "webdataset" / "image").exists()


# Columns that name files. Every other string is checked not to look like a relative file path.
PATH_COLUMNS = ("file_name", "thumbnail", "source_path", "wds_shard")
_LOOKS_LIKE_A_FILE = re.compile(r"^[\w.-]+(/[\w.-]+)*\.(mp4|png|jpg|tar|parquet|json)$")


def _metadata_records(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(the folder paths resolve from, row) for every row of every metadata file, tars' .json included."""
    found = []
    for table_path in root.rglob("*.parquet"):
        found += [(table_path.parent, row) for row in pq.read_table(table_path).to_pylist()]
    for tar_path in root.rglob("*.tar"):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    found.append((tar_path.parent, json.loads(data)))
    return found


def test_every_relative_path_resolves_from_the_file_that_holds_it(exported: Path) -> None:
    records = _metadata_records(exported)
    assert len(records) == 3 + 2 + 1 + 3 + 3  # top level, video/, image/, shard Parquets, shard .jsons
    checked = 0
    for folder, row in records:
        for column, value in row.items():
            if column in PATH_COLUMNS and value is not None:
                assert not Path(value).is_absolute() and (folder / value).resolve().is_file(), (folder, value)
                checked += 1
            elif isinstance(value, str):
                assert not _LOOKS_LIKE_A_FILE.match(value), f"{folder}: {column}={value} is an unchecked path"
    assert checked >= 3 * 4 + 3 * 2 * 3
    index = json.loads((exported / "webdataset" / "index.json").read_text())
    assert index["layout"] == 2 and all((exported / "webdataset" / n).is_file() for n in index["shards"])
    card = yaml.safe_load((exported / "README.md").read_text().split("---\n")[1])
    for config in card["configs"]:
        assert all(list(exported.glob(f["path"])) for f in config["data_files"])


def test_hf_datasets_loads_the_folder_by_name_through_its_card(exported: Path, tmp_path: Path) -> None:
    import datasets

    cache = str(tmp_path / "hf")
    videos = datasets.load_dataset(str(exported), split="train", cache_dir=cache)  # the `default` config
    videos = videos.cast_column("mp4", datasets.Video(decode=False))
    assert sorted(row["json"]["job_name"] for row in videos) == ["fox", "sea"]
    assert all(_sha(row["mp4"]["bytes"]) == row["json"]["clip_sha256"] for row in videos)
    stills = datasets.load_dataset(str(exported), "images", split="train", streaming=True)
    (apple,) = list(stills)
    assert apple["png"].size == (128, 64) and apple["__key__"] == "00000"
    # without shards the card names the clips folder (videofolder), its metadata joined to each clip
    export_dataset(exported.parent, tmp_path / "folders", thumbnails=True)
    clips = datasets.load_dataset(str(tmp_path / "folders"), split="train", cache_dir=cache)
    clips = clips.cast_column("video", datasets.Video(decode=False))
    assert sorted(clips["job_name"]) == ["fox", "sea"]
    for row in clips:
        folder = Path(row["video"]["path"]).parent
        assert (folder / row["thumbnail"]).resolve().is_file()  # relative to video/, as its file_name is
        assert _sha(Path(row["video"]["path"]).read_bytes()) == row["clip_sha256"]


def test_shards_read_the_way_video2dataset_reads_them(exported: Path) -> None:
    """What video2dataset's own code does with a shard folder, step by step (its code is not installed
    here; each step names the file it comes from)."""
    folder = exported / "webdataset" / "video"
    tars = sorted(str(p) for p in folder.glob("*.tar"))
    assert [int(Path(t).name[: -len(".tar")]) for t in tars] == [0, 1]  # output_sharder.py: int(shard id)
    done = {int(p.name.split("_")[0]) for p in folder.glob("*.json")}  # main.py: incremental mode
    assert done == {0, 1}
    for tar_path in tars:
        stats = json.loads(Path(tar_path[: -len(".tar")] + "_stats.json").read_text())
        for field in ("count", "successes", "failed_to_download", "failed_to_subsample"):
            assert isinstance(stats[field], int)  # logger.py LoggerProcess reads these ...
        for field in ("bytes_downloaded", "start_time", "end_time"):
            assert isinstance(stats[field], int | float)  # ... and these
        assert stats["duration"] == pytest.approx(stats["end_time"] - stats["start_time"])
        # workers/subset_worker.py: the shard's Parquet schema (same stem) is the writer's schema, and each
        # sample's .json must fill it (data_writer.py BufferedParquetWriter takes sample[k] per column)
        schema = pq.read_schema(tar_path[: -len(".tar")] + ".parquet")
        assert schema.names[:3] == ["key", "status", "error_message"]
        with tarfile.open(tar_path) as tar:
            metas = [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]  # type: ignore[union-attr]
        rebuilt = pa.Table.from_pydict({n: [m[n] for m in metas] for n in schema.names}, schema=schema)
        assert rebuilt.equals(pq.read_table(tar_path[: -len(".tar")] + ".parquet").select(schema.names))
        assert all(m["status"] == "success" and m["error_message"] is None for m in metas)


def test_an_export_in_the_earlier_layout_is_migrated_without_a_mix(exported: Path, tmp_path: Path) -> None:
    dest = tmp_path / "old"
    export_dataset(exported.parent, dest, webdataset=True, samples_per_shard=1, thumbnails=True)
    # turn it into what the earlier layout wrote: shard-NNNNNN names, an unversioned index, and a tar
    # straight under webdataset/ (the one-folder layout before that)
    for path in sorted((dest / "webdataset").rglob("0000*")):
        path.rename(path.with_name(f"shard-0{path.name}"))
    (dest / "webdataset" / "index.json").write_text(json.dumps({"video/shard-000000": "x"}))
    (dest / "webdataset" / "shard-000000.tar").write_bytes(b"")
    before = {p.name: p.stat().st_ino for p in (dest / "video").glob("*.mp4")}

    report = export_dataset(exported.parent, dest, webdataset=True, samples_per_shard=1, thumbnails=True)
    assert report.old_layout_removed == 3 * 3 + 1 and report.shards_written == 3 and report.clips_placed == 0
    names = sorted(str(p.relative_to(dest / "webdataset")) for p in (dest / "webdataset").rglob("*.*"))
    stems = ("00000", "00001")
    assert names == sorted(
        ["index.json"]
        + [f"video/{s}{x}" for s in stems for x in (".tar", ".parquet", "_stats.json")]
        + [f"image/00000{x}" for x in (".tar", ".parquet", "_stats.json")]
    )
    assert {p.name: p.stat().st_ino for p in (dest / "video").glob("*.mp4")} == before  # clips untouched
    same = {p: p.read_bytes() for p in (dest / "webdataset").rglob("*.tar")}
    again = export_dataset(exported.parent, dest, webdataset=True, samples_per_shard=1, thumbnails=True)
    assert (again.old_layout_removed, again.shards_written, again.shards_kept) == (0, 0, 3)
    assert {p: p.read_bytes() for p in same} == same
    assert same[dest / "webdataset/video/00000.tar"] == (exported / "webdataset/video/00000.tar").read_bytes()
