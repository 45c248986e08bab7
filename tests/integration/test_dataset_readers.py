"""The dataset export read by the libraries people train with: HF `datasets` (webdataset, videofolder,
imagefolder and parquet forms) and `webdataset`, on a run with both videos and a still (the fake model: the
readers read files, whatever rendered them)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

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
