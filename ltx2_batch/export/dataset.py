"""Dataset export: a run's done clips as a training dataset in the layouts readers expect, idempotent and
resumable, into a local folder or a bucket (`s3://bucket/ds`: files.py does the I/O through fsspec, one
code path for both).

    <dest>/README.md                            dataset card: HF `configs:`, so the folder loads by name
    <dest>/metadata.parquet                     every sample, one row each (HF `parquet`; `file_name`)
    <dest>/video/<job_id>.mp4                   clips: hard links to (or copies of) the rendered files
    <dest>/video/metadata.parquet               HF `videofolder` metadata (`file_name` relative to video/)
    <dest>/image/<job_id>.png                   one-frame jobs, apart from the videos (HF `imagefolder`)
    <dest>/image/metadata.parquet
    <dest>/thumbnails/<job_id>.jpg              with `thumbnails=True`
    <dest>/webdataset/video/00000.tar           video2dataset's shard layout (webdataset.py): <key>.mp4 +
    <dest>/webdataset/video/00000.parquet       <key>.txt (caption) + <key>.json; the shard's samples;
    <dest>/webdataset/video/00000_stats.json    its counts, bytes and render times
    <dest>/webdataset/image/00000.tar           the stills' own shards: a shard holds one kind only
    <dest>/webdataset/index.json                the layout version and each shard's content digest

Every relative path in a metadata file resolves from the folder of the file that holds it: `file_name`
is `video/<id>.mp4` in metadata.parquet, `<id>.mp4` in video/metadata.parquet and `../../video/<id>.mp4` in
a shard's Parquet and .json; `thumbnail` likewise. So the folder can be moved or uploaded as is.
`source_path` (bookkeeping, top-level only) is relative where the run dir and the dataset share a file
system, else the rendered file's full path or URL. A sample's `.json` holds its parameters as JSON objects
(`params`, `tags`). Stills never share a shard or a folder with videos (HF's `webdataset` loader needs every
sample to have the same extensions); `stills=StillsPolicy.exclude` leaves them out altogether.

Samples are the jobs whose latest ledger state is `done` and whose files pass `verify_files` (a 0-byte
or truncated clip, or a sidecar that is not JSON or disagrees with the ledger, is left out and counted in
`ExportReport.rejected`). Order is stable: samples already in metadata.parquet keep their `sample_index`,
new ones are appended (by finish time), so adding jobs only adds samples (and rewrites only the last,
partial shard of their kind). Re-exporting an unchanged run writes nothing but the metadata and the card;
a killed export redoes only what it had not finished: every file is written whole (renamed into place, or
uploaded whole), a clip already in place is kept (same inode, or same size and bytes), and
metadata.parquet is written last. The run dir may be a URL too (source.py reads it); the schema is
schema.py's. Must not render, and reads the ledger without changing it.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltx2_batch.config import StillsPolicy, VerifyMode
from ltx2_batch.errors import ConfigError
from ltx2_batch.export import webdataset as wds
from ltx2_batch.export.card import CardFacts, render_card
from ltx2_batch.export.files import DatasetStore, FileRef, sha256_of
from ltx2_batch.export.schema import DATASET_SCHEMA, LEDGER_COLUMNS, PRIVATE, SHARD_SCHEMA
from ltx2_batch.export.source import RunSource
from ltx2_batch.storage.location import is_url
from ltx2_batch.storage.objects import check_store

METADATA_NAME = "metadata.parquet"
CARD_NAME = "README.md"
KINDS = ("video", "image")  # sub-folder names; a still (one-frame job) is an image
THUMBNAILS = "thumbnails"
_PATH_COLUMNS = ("file_name", "thumbnail")  # dataset-relative in metadata.parquet, re-based elsewhere


@dataclass(frozen=True)
class ExportReport:
    """What one export did: where it wrote, its samples, what it placed or kept, and what it left out."""

    dest: str  # a local path or a URL
    metadata: str
    samples: int
    clips_placed: int  # linked, copied or uploaded by this export
    clips_kept: int  # already in place
    shards_written: int
    shards_kept: int
    rejected: tuple[tuple[str, str], ...] = ()  # (job id, reason): recorded done, files failed verification
    old_layout_removed: int = 0  # shard files of an earlier layout, removed before the new ones


def export_dataset(
    output_dir: Path | str,
    dest: Path | str | None = None,
    *,
    webdataset: bool = False,
    samples_per_shard: int = 1000,
    link: bool = True,
    thumbnails: bool = False,
    stills: StillsPolicy = StillsPolicy.separate,
    verify: VerifyMode = VerifyMode.cheap,
    endpoint_url: str | None = None,
) -> ExportReport:
    """Export the done clips of the run dir `output_dir` (a folder or an fsspec URL) to `dest` (either;
    default `<output_dir>/dataset`); see the module doc. `endpoint_url`: an S3-compatible store's."""
    if samples_per_shard < 1:
        raise ConfigError(f"export.samples_per_shard must be >= 1, got {samples_per_shard}")
    if dest is not None and is_url(str(dest)):
        check_store(str(dest), endpoint_url)
    with RunSource(output_dir, endpoint_url) as run:  # the files rows name stay readable after
        store = DatasetStore(dest if dest is not None else run.join("dataset").url, endpoint_url)
        previous = _previous(store)
        rejected: list[tuple[str, str]] = []
        rows = _done_rows(run, store, previous, StillsPolicy(stills), thumbnails, verify, rejected)
    placed = _place_files(rows, store, previous, link)
    removed = wds.remove_other_layouts(store, KINDS)  # on every export: old shards are never left beside new
    written = kept = 0
    shards = _plan_shards(rows, samples_per_shard) if webdataset else []
    if webdataset:
        written, kept = wds.write_shards(store, shards, KINDS, SHARD_SCHEMA)
    table = pa.Table.from_pylist([_public_row(r) for r in rows], schema=DATASET_SCHEMA)
    for kind in KINDS:
        _write_folder_metadata(store, kind, table)
    store.write_bytes(CARD_NAME, render_card(_card_facts(rows, shards, thumbnails)).encode())
    with store.writing(METADATA_NAME) as handle:  # last: it marks the export done
        pq.write_table(table, handle)
    return ExportReport(
        store.url,
        store.ref(METADATA_NAME).url,
        len(rows),
        placed,
        len(rows) - placed,
        written,
        kept,
        tuple(rejected),
        removed,
    )


def _previous(store: DatasetStore) -> dict[str, dict[str, Any]]:
    raw = store.read_bytes(METADATA_NAME)
    if raw is None:
        return {}
    table = pq.read_table(pa.BufferReader(raw))
    if "file_name" not in table.column_names:  # an export in the earliest layout: start afresh
        return {}
    return {row["job_id"]: row for row in table.to_pylist()}


def _done_rows(
    run: RunSource,
    store: DatasetStore,
    previous: dict[str, dict[str, Any]],
    stills: StillsPolicy,
    thumbnails: bool,
    mode: VerifyMode,
    rejected: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    rows = run.done_rows(LEDGER_COLUMNS, mode, rejected)
    if stills is StillsPolicy.exclude:
        rows = [r for r in rows if _kind(r) == "video"]
    old = [r for r in rows if r["job_id"] in previous]
    old.sort(key=lambda r: previous[r["job_id"]]["sample_index"])
    new = [r for r in rows if r["job_id"] not in previous]
    new.sort(key=lambda r: (r["finished_at"], r["job_id"]))
    return [_sample(i, r, run, store, thumbnails) for i, r in enumerate(old + new)]


def _kind(r: dict[str, Any]) -> str:
    return "image" if r["mode"] == "image" else "video"


def _sample(
    index: int, r: dict[str, Any], run: RunSource, store: DatasetStore, thumbnails: bool
) -> dict[str, Any]:
    """One sample row (DATASET_SCHEMA), with the files it is made from under `_`-prefixed keys."""
    params = json.loads(r["params_json"] or "{}")
    source = run.ref(r["output_path"])
    kind = _kind(r)
    thumb = run.ref(r["thumbnail_path"]) if thumbnails and r["thumbnail_path"] else None
    if thumb is not None and not thumb.is_file():
        thumb = None
    return {
        "sample_index": index,
        "file_name": f"{kind}/{r['job_id']}{posixpath.splitext(source.path)[1]}",
        "kind": kind,
        "job_id": r["job_id"],
        "job_name": r["job_name"],
        "caption": r["prompt"],
        "negative_prompt": params.get("negative_prompt"),
        "seed": r["seed"],
        "width": r["width"],
        "height": r["height"],
        "resolution": f"{r['width']}x{r['height']}",
        "fps": r["frame_rate"],
        "num_frames": r["num_frames"],
        "frames": r["frames_written"],
        "duration_s": r["duration_s"],
        "pipeline": r["pipeline"],
        "mode": r["mode"],
        "num_inference_steps": params.get("num_inference_steps"),
        "audio": params.get("audio"),
        "params_json": r["params_json"],
        "tags_json": r["tags_json"],
        "clip_sha256": None,
        "clip_bytes": None,
        "thumbnail": f"{THUMBNAILS}/{r['job_id']}{posixpath.splitext(thumb.path)[1]}" if thumb else None,
        "source_path": _source_name(source, store),
        "source_mtime_ns": None,
        "model_name": r["model_name"],
        "model_fingerprint": r["model_fingerprint"],
        "run_id": r["run_id"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
        "wds_shard": None,
        "wds_key": None,
        "_source": source,
        "_thumbnail_source": thumb,
    }


def _source_name(source: FileRef, store: DatasetStore) -> str:
    """Relative to the dataset where both are on one file system, else the file's full path or URL."""
    if source.local and store.local:
        return os.path.relpath(source.path, store.root)
    return source.url


def _public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _place_files(
    rows: list[dict[str, Any]], store: DatasetStore, previous: dict[str, dict[str, Any]], link: bool
) -> int:
    """Fill each row's clip hash and size and put its clip (and thumbnail) in place; remove files of
    samples no longer exported. Returns how many clips were placed."""
    present = {folder: store.listing(folder) for folder in (*KINDS, THUMBNAILS)}
    placed = 0
    for row in rows:
        placed += _place_clip(row, store, previous.get(row["job_id"]), link, present)
        thumb = row["_thumbnail_source"]
        if thumb is not None:
            folder, name = row["thumbnail"].split("/")
            if present[folder].get(name) != thumb.stat()[0]:  # a same-size thumbnail is kept as it is
                store.place(thumb, row["thumbnail"], link)
    keep = {r["file_name"] for r in rows} | {r["thumbnail"] for r in rows if r["thumbnail"]}
    for folder, names in present.items():
        for name in names:
            if name != METADATA_NAME and f"{folder}/{name}" not in keep:
                store.remove(f"{folder}/{name}")  # a job no longer done or left out, or a temporary file
    return placed


def _place_clip(
    row: dict[str, Any],
    store: DatasetStore,
    before: dict[str, Any] | None,
    link: bool,
    present: dict[str, dict[str, int]],
) -> bool:
    """Fill the row's sha256/size and put the clip in place; True when a file was placed."""
    source: FileRef = row["_source"]
    size, mtime_ns = source.stat()
    row["clip_bytes"], row["source_mtime_ns"] = size, mtime_ns
    unchanged = bool(
        before is not None
        and before["source_mtime_ns"] == mtime_ns
        and before["clip_bytes"] == size
        and before["clip_sha256"]
    )
    row["clip_sha256"] = before["clip_sha256"] if unchanged and before else sha256_of(source)
    folder, name = row["file_name"].split("/")
    if present[folder].get(name) == size and (
        store.holds_source(source, row["file_name"])
        or unchanged
        or sha256_of(store.ref(row["file_name"])) == row["clip_sha256"]
    ):
        return False
    store.place(source, row["file_name"], link)
    return True


def _relative_to(folder: str, rel: str | None) -> str | None:
    """A dataset-relative path as seen from `folder` (itself dataset-relative)."""
    return None if rel is None else posixpath.relpath(rel, folder)


def _write_folder_metadata(store: DatasetStore, kind: str, table: pa.Table) -> None:
    """`<dest>/<kind>/metadata.parquet` for HF's videofolder/imagefolder: paths relative to `<kind>/`."""
    mine = table.filter(pc.equal(table["kind"], kind))
    target = f"{kind}/{METADATA_NAME}"
    if mine.num_rows == 0:
        store.remove(target)
        return
    public = mine.drop_columns(list(PRIVATE))
    for column in _PATH_COLUMNS:
        rebased = [_relative_to(kind, p) for p in public[column].to_pylist()]
        public = public.set_column(
            public.schema.get_field_index(column), column, pa.array(rebased, pa.string())
        )
    with store.writing(target) as handle:
        pq.write_table(public, handle)


def _plan_shards(rows: list[dict[str, Any]], per_shard: int) -> list[wds.Shard]:
    """Group each kind's samples (in sample order) into shards and name their keys; fills `wds_*`."""
    shards: list[wds.Shard] = []
    for kind in KINDS:
        mine = [row for row in rows if row["kind"] == kind]
        for start in range(0, len(mine), per_shard):
            members = []
            for position, row in enumerate(mine[start : start + per_shard], start):
                row["wds_shard"] = wds.shard_path(kind, position, per_shard)
                row["wds_key"] = wds.sample_key(position, per_shard)
                members.append(_shard_sample(row))
            shards.append(wds.Shard(kind, start // per_shard, tuple(members)))
    return shards


def _shard_sample(row: dict[str, Any]) -> wds.ShardSample:
    folder = posixpath.dirname(row["wds_shard"])
    record: dict[str, Any] = {"key": row["wds_key"], "status": "success", "error_message": None}
    for name, value in _public_row(row).items():
        if name in PRIVATE:
            continue
        record[name] = value.isoformat() if hasattr(value, "isoformat") else value
    for column in _PATH_COLUMNS:
        record[column] = _relative_to(folder, row[column])
    record["params"] = json.loads(row["params_json"] or "{}")
    record["tags"] = json.loads(row["tags_json"] or "{}")
    return wds.ShardSample(
        key=row["wds_key"],
        media=row["_source"],
        media_bytes=row["clip_bytes"],
        media_sha256=row["clip_sha256"],
        suffix=posixpath.splitext(row["file_name"])[1],
        caption=row["caption"] or "",
        record=record,
        frames=row["frames"] or 0,
        seconds=row["duration_s"] or 0.0,
        started=row["started_at"],
        finished=row["finished_at"],
    )


def _card_facts(rows: list[dict[str, Any]], shards: list[wds.Shard], thumbnails: bool) -> CardFacts:
    counts = {kind: sum(1 for r in rows if r["kind"] == kind) for kind in KINDS}
    per_kind = {kind: sum(1 for s in shards if s.kind == kind) for kind in KINDS}
    return CardFacts(
        videos=counts["video"],
        images=counts["image"],
        shards={kind: n for kind, n in per_kind.items() if n},
        models=tuple(sorted({r["model_name"] for r in rows if r["model_name"]})),
        seconds=sum(r["duration_s"] or 0.0 for r in rows if r["kind"] == "video"),
        thumbnails=thumbnails and any(r["thumbnail"] for r in rows),
    )
