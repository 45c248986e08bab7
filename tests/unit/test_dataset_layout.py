"""The dataset export's pure pieces: video2dataset's shard and key naming, the meaning of each `_stats.json`
field, which builder and configs the dataset card names, and the local store's atomic writes and placement.
The exports themselves (and their readers) are checked in tests/integration/test_dataset*.py."""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from ltx2_batch.export import webdataset as wds
from ltx2_batch.export.card import CardFacts, configs, render_card
from ltx2_batch.export.files import DatasetStore, FileRef


def _v2d_key(key: int, shard_id: int, per_shard: int, oom_shard_count: int = 5) -> str:
    """video2dataset's `compute_key` (workers/download_worker.py), with its float log10, as they run it."""
    oom_sample_per_shard = math.ceil(math.log10(per_shard))
    true_key = (10**oom_sample_per_shard) * shard_id + key
    return f"{true_key:0{oom_sample_per_shard + oom_shard_count}d}"


@pytest.mark.parametrize("per_shard", [1, 2, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 10_000, 12_345])
def test_keys_and_shard_names_are_video2datasets(per_shard: int) -> None:
    positions = {0, 1, per_shard - 1, per_shard, 3 * per_shard + per_shard // 2, 100_001 * per_shard}
    for position in sorted(positions):
        shard, within = divmod(position, per_shard)
        assert wds.sample_key(position, per_shard) == _v2d_key(within, shard, per_shard)
        assert wds.shard_path("video", position, per_shard) == f"webdataset/video/{shard:05d}.tar"
    assert wds.shard_stem(0) == "00000" and int(wds.shard_stem(123_456)) == 123_456  # wider, never cut


def test_keys_are_unique_and_sort_in_sample_order() -> None:
    keys = [wds.sample_key(i, 7) for i in range(200)]
    assert len(set(keys)) == 200 and keys == sorted(keys)


def _sample(key: str, size: int, start: datetime | None, seconds: float = 0.5) -> wds.ShardSample:
    end = None if start is None else start + timedelta(seconds=2)
    return wds.ShardSample(
        key, FileRef.of("/nonexistent"), size, "0" * 64, ".mp4", "c", {}, 12, seconds, start, end
    )


def test_stats_fields_mean_what_video2dataset_means() -> None:
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    samples = (_sample("000", 100, t0), _sample("001", 50, t0 + timedelta(seconds=10), 1.5))
    stats = wds.shard_stats(samples)
    assert stats["start_time"] == t0.timestamp() and stats["end_time"] == t0.timestamp() + 12
    assert stats["duration"] == 12  # end_time - start_time, as their write_stats computes it
    assert (stats["count"], stats["successes"], stats["status_dict"]) == (2, 2, {"success": 2})
    assert (stats["failed_to_download"], stats["failed_to_subsample"]) == (0, 0)
    assert stats["bytes_downloaded"] == 150 and stats["frames"] == 24 and stats["clip_seconds"] == 2.0
    # every field their logger reads from a stats file is there
    assert {"count", "successes", "failed_to_download", "failed_to_subsample", "bytes_downloaded"} <= set(
        stats
    )
    assert {"start_time", "end_time", "status_dict"} <= set(stats)


def test_stats_without_render_times() -> None:
    stats = wds.shard_stats((_sample("0", 1, None),))
    assert (stats["start_time"], stats["end_time"], stats["duration"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("facts", "builder", "expected"),
    [
        (CardFacts(2, 1, {"video": 2, "image": 1}), "webdataset",
         [("default", "webdataset/video/*.tar"), ("images", "webdataset/image/*.tar")]),
        (CardFacts(0, 3, {"image": 1}), "webdataset", [("default", "webdataset/image/*.tar")]),
        (CardFacts(2, 1), "videofolder", [("default", "video/*")]),
        (CardFacts(0, 1), "imagefolder", [("default", "image/*")]),
        (CardFacts(0, 0), "parquet", [("default", "metadata.parquet")]),
    ],
)  # fmt: skip
def test_card_names_one_builder_and_its_configs(
    facts: CardFacts, builder: str, expected: list[tuple[str, str]]
) -> None:
    found_builder, entries = configs(facts)
    assert found_builder == builder
    assert [(e["config_name"], e["data_files"][0]["path"]) for e in entries] == expected  # type: ignore[index]
    text = render_card(facts)
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["configs"] == entries and header["size_categories"] == ["n<1K"]


def test_store_writes_atomically_and_places_by_link_or_copy(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / ".metadata.parquet.k1ll3d.tmp").write_bytes(b"left by a killed export")
    store = DatasetStore(tmp_path / "ds")
    assert store.listing("") == {}  # swept when the store opens
    store.write_bytes("a/b.txt", b"one")

    def killed_mid_write() -> None:
        with store.writing("a/b.txt") as handle:
            handle.write(b"half")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()
    assert (tmp_path / "ds/a/b.txt").read_bytes() == b"one"
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "ds/a/b.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # readable as a shared dataset
    assert [p.name for p in (tmp_path / "ds/a").iterdir()] == ["b.txt"]  # no temporary file left
    assert store.listing("a") == {"b.txt": 3} and store.listing("missing") == {}
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"x" * 10)
    store.place(FileRef.of(source), "video/clip.mp4", link=True)
    assert store.holds_source(FileRef.of(source), "video/clip.mp4")
    store.place(FileRef.of(source), "video/copy.mp4", link=False)
    assert not store.holds_source(FileRef.of(source), "video/copy.mp4")
    assert (tmp_path / "ds/video/copy.mp4").read_bytes() == b"x" * 10
    assert sorted(store.listing("video")) == ["clip.mp4", "copy.mp4"]
    store.remove("video/copy.mp4")
    store.remove("video/copy.mp4")  # removing what is gone is not an error
    assert store.read_bytes("video/copy.mp4") is None and store.url == str(tmp_path / "ds")
