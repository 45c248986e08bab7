"""WebDataset shards in video2dataset's layout, so its tools (and anything that reads its output) read ours.

    webdataset/<kind>/00000.tar          <key>.mp4 (or .png) + <key>.txt (caption) + <key>.json per sample
    webdataset/<kind>/00000.parquet      one row per sample: `key`, `status`, `error_message`, then the
                                         sample's .json fields that are not objects
    webdataset/<kind>/00000_stats.json   count, successes, failed_*, status_dict, bytes_downloaded,
                                         start_time, end_time, duration, plus our frames and clip_seconds
    webdataset/index.json                the layout version and each shard's content digest

What matches video2dataset (its `data_writer.py`, `logger.write_stats`, `workers/download_worker.py`
`compute_key`, the `oom_shard_count: 5` default): shard names are the shard number zero-padded to 5 digits;
a sample's key is `shard * 10**d + position` zero-padded to `d + 5` digits, `d` being the digits of
samples-per-shard (their `ceil(log10(n))`); the stats file has their fields with their meanings
(`duration` is `end_time - start_time`); the Parquet's columns are a subset of the .json's keys (their
subset worker rewrites a shard's Parquet from its samples' .json); a shard folder holds nothing but shard
files (they parse every `*.json` name there as a shard number). What differs on purpose: start and end are
the samples' render times from the ledger, not the export's clock (a re-export stays byte-identical); a shard
holds done clips only (`status` is always "success": failed jobs stay in the run's ledger); the .json has
sorted keys and no `url`/`yt_meta_dict` (a rendered clip has no source URL).

Shards are written whole and atomically and skipped when their digest (members' keys, clip hashes and
.json bytes, and the layout version) is unchanged; tars are byte-deterministic (USTAR, mtime 0, owner 0).
Shards of the earlier layout (`shard-000000.tar`, or tars straight under webdataset/) are removed before
any new shard is written, so a folder never holds both. Must not decide which samples exist or what their
metadata says (dataset.py does).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ltx2_batch.export.files import DatasetStore, FileRef, is_temporary

FOLDER = "webdataset"
INDEX = f"{FOLDER}/index.json"
LAYOUT = 2  # 1: shard-000000.tar names, job ids as keys (before video2dataset's layout)
SHARD_DIGITS = 5  # video2dataset's default `oom_shard_count`
_SHARD_FILE = re.compile(r"^\d{%d,}(\.tar|\.parquet|_stats\.json)$" % SHARD_DIGITS)  # noqa: UP031 - a regex
_SUFFIXES = (".tar", ".parquet", "_stats.json")
_USTAR = tarfile.USTAR_FORMAT


@dataclass(frozen=True)
class ShardSample:
    """One sample as a shard holds it."""

    key: str
    media: FileRef  # the clip (or still) whose bytes go into the tar
    media_bytes: int
    media_sha256: str
    suffix: str  # ".mp4" or ".png"
    caption: str
    record: dict[str, Any]  # the .json (JSON types only; paths relative to the shard's folder)
    frames: int
    seconds: float
    started: datetime | None  # the render's start and finish, from the ledger
    finished: datetime | None


@dataclass(frozen=True)
class Shard:
    """One shard of one kind: its number and the samples it holds, in order."""

    kind: str  # video | image
    number: int
    samples: tuple[ShardSample, ...]

    @property
    def stem(self) -> str:
        """The shard's file stem (`00000`)."""
        return shard_stem(self.number)

    @property
    def files(self) -> tuple[str, ...]:
        """The shard's three files (tar, Parquet, stats), relative to the dataset root."""
        return tuple(f"{FOLDER}/{self.kind}/{self.stem}{suffix}" for suffix in _SUFFIXES)


def shard_stem(number: int) -> str:
    """The shard number zero-padded to 5 digits, as video2dataset names its shards."""
    return f"{number:0{SHARD_DIGITS}d}"


def key_digits(per_shard: int) -> int:
    """video2dataset's `oom_sample_per_shard`, ceil(log10(n)), in integers (no float rounding)."""
    digits = 0
    while 10**digits < per_shard:
        digits += 1
    return digits


def sample_key(position: int, per_shard: int) -> str:
    """The key of the `position`-th sample of a kind (0-based), as video2dataset's `compute_key` names it."""
    shard, within = divmod(position, per_shard)
    digits = key_digits(per_shard)
    return f"{shard * 10**digits + within:0{digits + SHARD_DIGITS}d}"


def shard_path(kind: str, position: int, per_shard: int) -> str:
    """The tar that holds the `position`-th sample of a kind, relative to the dataset folder."""
    return f"{FOLDER}/{kind}/{shard_stem(position // per_shard)}.tar"


def remove_other_layouts(store: DatasetStore, kinds: Iterable[str]) -> int:
    """Remove shard files of an earlier layout (before any new shard is written) and temporary files;
    returns how many of the former."""
    doomed = [f"{FOLDER}/{name}" for name in store.listing(FOLDER) if name != _name(INDEX)]
    for kind in kinds:
        folder = f"{FOLDER}/{kind}"
        doomed += [f"{folder}/{name}" for name in store.listing(folder) if not _SHARD_FILE.match(name)]
    for rel in doomed:
        store.remove(rel)
    return sum(not is_temporary(_name(rel)) for rel in doomed)  # a killed export's temporary is not counted


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def write_shards(
    store: DatasetStore, shards: list[Shard], kinds: Iterable[str], schema: pa.Schema
) -> tuple[int, int]:
    """Write the shards whose content changed (`schema`: their Parquet's), remove the ones no longer
    planned, then the index; returns (written, kept)."""
    index = _read_index(store)
    digests: dict[str, str] = {}
    present = {kind: store.listing(f"{FOLDER}/{kind}") for kind in kinds}
    written = kept = 0
    for shard in shards:
        digest = _digest(shard)
        name = f"{shard.kind}/{shard.stem}.tar"
        digests[name] = digest
        there = present.get(shard.kind, {})
        if index.get(name) == digest and all(_name(f) in there for f in shard.files):
            kept += 1
            continue
        _write_shard(store, shard, schema)
        written += 1
    planned = {rel for shard in shards for rel in shard.files}
    for kind, names in present.items():
        for rel in (f"{FOLDER}/{kind}/{name}" for name in names):
            if rel not in planned:
                store.remove(rel)  # a shard past the new last one, or a temporary file of a killed export
    body = {"layout": LAYOUT, "shards": dict(sorted(digests.items()))}
    store.write_bytes(INDEX, (json.dumps(body, indent=1) + "\n").encode())
    return written, kept


def _read_index(store: DatasetStore) -> dict[str, str]:
    raw = store.read_bytes(INDEX)
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(body, dict) or body.get("layout") != LAYOUT:
        return {}  # an earlier layout's index: every shard is written again
    shards = body.get("shards")
    return shards if isinstance(shards, dict) else {}


def sample_json(sample: ShardSample) -> bytes:
    """A sample's .json bytes: sorted keys and fixed indent, so an unchanged sample gives identical bytes."""
    return json.dumps(sample.record, indent=4, sort_keys=True, ensure_ascii=False).encode()


def _digest(shard: Shard) -> str:
    members = [
        (s.key, s.media_sha256, s.suffix, hashlib.sha256(s.caption.encode()).hexdigest(),
         hashlib.sha256(sample_json(s)).hexdigest())
        for s in shard.samples
    ]  # fmt: skip
    return hashlib.sha256(json.dumps([LAYOUT, members]).encode()).hexdigest()


def _write_shard(store: DatasetStore, shard: Shard, schema: pa.Schema) -> None:
    tar_name, parquet_name, stats_name = shard.files
    with store.writing(tar_name) as handle, tarfile.open(fileobj=handle, mode="w", format=_USTAR) as tar:
        for sample in shard.samples:
            with sample.media.fs.open(sample.media.path, "rb") as media:
                _add(tar, f"{sample.key}{sample.suffix}", media, sample.media_bytes)
            caption = sample.caption.encode()
            _add(tar, f"{sample.key}.txt", io.BytesIO(caption), len(caption))
            meta = sample_json(sample)
            _add(tar, f"{sample.key}.json", io.BytesIO(meta), len(meta))
    with store.writing(parquet_name) as handle:
        pq.write_table(shard_table(shard.samples, schema), handle)
    stats = json.dumps(shard_stats(shard.samples), indent=4, sort_keys=True) + "\n"
    store.write_bytes(stats_name, stats.encode())


def _add(tar: tarfile.TarFile, name: str, data: Any, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    tar.addfile(info, data)


def shard_table(samples: Iterable[ShardSample], schema: pa.Schema) -> pa.Table:
    """The shard's Parquet: `schema`'s columns of each sample's .json (they must all be in it)."""
    return pa.Table.from_pylist([{n: s.record[n] for n in schema.names} for s in samples], schema=schema)


def shard_stats(samples: tuple[ShardSample, ...]) -> dict[str, object]:
    """`<shard>_stats.json` with video2dataset's fields and meanings, from the ledger's render times."""
    started = [s.started or s.finished for s in samples]
    finished = [s.finished or s.started for s in samples]
    start = min((t.timestamp() for t in started if t is not None), default=0.0)
    end = max((t.timestamp() for t in finished if t is not None), default=start)
    count = len(samples)
    return {
        "count": count,
        "successes": count,
        "failed_to_download": 0,
        "failed_to_subsample": 0,
        "status_dict": {"success": count} if count else {},
        "bytes_downloaded": sum(s.media_bytes for s in samples),  # bytes of the clips the shard holds
        "start_time": start,
        "end_time": end,
        "duration": end - start,
        "frames": sum(s.frames for s in samples),
        "clip_seconds": sum(s.seconds for s in samples),
    }
