"""Dataset export: a run's done clips as a training dataset in the layouts readers expect, idempotent
and resumable.

    <dest>/metadata.parquet                     every sample, one row each (HF `parquet`; `file_name`)
    <dest>/video/<job_id>.mp4                   clips: hard links to (or copies of) the rendered files
    <dest>/video/metadata.parquet               HF `videofolder` metadata (`file_name` relative to video/)
    <dest>/image/<job_id>.png                   one-frame jobs, apart from the videos (HF `imagefolder`)
    <dest>/image/metadata.parquet
    <dest>/thumbnails/<job_id>.jpg              with `thumbnails=True`
    <dest>/webdataset/video/shard-000000.tar    <job_id>.mp4 + <job_id>.txt (caption) + <job_id>.json
    <dest>/webdataset/video/shard-000000.parquet        that shard's samples (as video2dataset writes it)
    <dest>/webdataset/video/shard-000000_stats.json     that shard's counts, frames, seconds and bytes
    <dest>/webdataset/image/shard-000000.tar    the stills' own shards: a shard holds one kind only
    <dest>/webdataset/index.json                each shard's content digest (what makes re-export skip it)

Every path written into the dataset is relative to `<dest>` (or, in a folder's own metadata, to that
folder), so the folder can be moved or uploaded as is (the bookkeeping column `source_path` names the
rendered file relative to it on one disk, else by its URL or path). All I/O goes through export/files.py:
the run dir and `<dest>` may each be a local folder or a bucket URL (clips are then copied server-side,
uploaded or downloaded).
A sample's `.json` holds its parameters as JSON objects (`params`, `tags`), not as strings. Stills never
share a shard or a folder with videos (HF's `webdataset` loader needs every sample to have the same
extensions); `stills=StillsPolicy.exclude` leaves them out altogether.

Samples are the jobs whose latest ledger state is `done` and whose files pass their checks (`verify_files`
on a disk, their objects' recorded sizes and ETags in a bucket: a 0-byte or truncated clip, or a sidecar
that is not JSON or disagrees with the ledger, is left out and counted in `ExportReport.rejected`).
Order is stable: samples already in metadata.parquet keep their `sample_index`, new ones are appended (by
finish time), so adding jobs only adds samples (and rewrites only the last, partial shard of their kind).
Re-exporting an unchanged run writes nothing but the metadata; a killed export redoes only what it had not
finished: files land under a temporary name and are renamed (in a bucket: one PUT each), a clip already in
place is kept (same inode, or same bytes), shards are written whole, and metadata.parquet is written last.
Tars are byte-deterministic (fixed mtime/owner), and so are the shard metadata files. Must not render,
and reads the ledger without changing it. Just over 300 lines: the three reader layouts share one sample
list.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltx2_batch.config import StillsPolicy, VerifyMode
from ltx2_batch.errors import ConfigError
from ltx2_batch.export.files import Folder, RunSource

METADATA_NAME = "metadata.parquet"
KINDS = ("video", "image")  # sub-folder names; a still (one-frame job) is an image
THUMBNAILS = "thumbnails"


_S, _I, _F = pa.string(), pa.int64(), pa.float64()
DATASET_SCHEMA = pa.schema(
    [
        ("sample_index", _I),
        ("file_name", _S),  # relative to the dataset folder: video/<job_id>.mp4 or image/<job_id>.png
        ("kind", _S),  # video | image
        ("job_id", _S),
        ("job_name", _S),
        ("caption", _S),
        ("negative_prompt", _S),
        ("seed", _I),
        ("width", _I),
        ("height", _I),
        ("resolution", _S),
        ("fps", _F),
        ("num_frames", _I),
        ("frames", _I),
        ("duration_s", _F),
        ("pipeline", _S),
        ("mode", _S),
        ("num_inference_steps", _I),
        ("audio", pa.bool_()),
        ("params_json", _S),
        ("tags_json", _S),
        ("clip_sha256", _S),
        ("clip_bytes", _I),
        ("thumbnail", _S),  # relative, when thumbnails are exported
        ("source_path", _S),  # the rendered file, relative to the dataset folder (across stores: its URL)
        ("source_mtime_ns", _I),
        ("model_name", _S),
        ("model_fingerprint", _S),
        ("run_id", _S),
        ("finished_at", pa.timestamp("us", "UTC")),
        ("wds_shard", _S),
    ]
)
# Bookkeeping of the export itself: in the top-level metadata only, not in a folder's or a sample's.
_PRIVATE = ("source_path", "source_mtime_ns", "wds_shard", "params_json", "tags_json")
_LEDGER_COLUMNS = (
    "job_name",
    "prompt",
    "seed",
    "width",
    "height",
    "frame_rate",
    "num_frames",
    "frames_written",
    "duration_s",
    "pipeline",
    "mode",
    "params_json",
    "tags_json",
    "output_path",
    "thumbnail_path",
    "sidecar_path",
    "error",
    "model_name",
    "model_fingerprint",
    "run_id",
    "finished_at",
    "files_json",
)


@dataclass(frozen=True)
class ExportReport:
    dest: Path | str  # a path, or a URL
    metadata: Path | str
    samples: int
    clips_placed: int  # linked or copied by this export
    clips_kept: int  # already in place
    shards_written: int
    shards_kept: int
    rejected: tuple[tuple[str, str], ...] = ()  # (job id, reason): recorded done, files failed verification


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
    scratch: str | None = None,
) -> ExportReport:
    """Export `output_dir`'s done clips to `dest` (default `<output_dir>/dataset`); see the module doc.
    Either may be a local folder or a bucket URL (export/files.py; `endpoint_url`: an S3-compatible store;
    `scratch`: where a bucket's ledger and checked files are read locally, as `output.scratch`)."""
    if samples_per_shard < 1:
        raise ConfigError(f"export.samples_per_shard must be >= 1, got {samples_per_shard}")
    run = RunSource(output_dir, endpoint_url, scratch)
    out = Folder(dest, endpoint_url) if dest else run.folder.child("dataset")
    previous = _previous(out)
    rejected: list[tuple[str, str]] = []
    rows = _done_rows(run, out, previous, StillsPolicy(stills), thumbnails, verify, rejected)
    placed = 0
    for row in rows:
        placed += _place_clip(row, run, out, previous.get(row["job_id"]), link)
        row.pop("_source", None)
        thumb = row.pop("_thumbnail_source", None)
        if row["thumbnail"] and not _in_place(run.folder, thumb, out, row["thumbnail"]):
            out.place(run.folder, thumb, row["thumbnail"], link)
    _remove_stale(out, rows)
    written = kept = 0
    if webdataset:
        written, kept = _write_shards(rows, out, samples_per_shard)
    table = pa.Table.from_pylist(rows, schema=DATASET_SCHEMA)
    for kind in KINDS:
        _write_folder_metadata(out, kind, table)
    out.write(METADATA_NAME, lambda tmp: pq.write_table(table, tmp))  # last: it marks the export done
    return ExportReport(
        out.text,
        out.locate(METADATA_NAME),
        len(rows),
        placed,
        len(rows) - placed,
        written,
        kept,
        tuple(rejected),
    )


def _previous(out: Folder) -> dict[str, dict[str, Any]]:
    data = out.read(METADATA_NAME)
    if data is None:
        return {}
    table = pq.read_table(pa.BufferReader(data))
    if "file_name" not in table.column_names:  # an export in the earlier layout: start afresh
        return {}
    return {row["job_id"]: row for row in table.to_pylist()}


def _done_rows(
    run: RunSource,
    out: Folder,
    previous: dict[str, dict[str, Any]],
    stills: StillsPolicy,
    thumbnails: bool,
    mode: VerifyMode,
    rejected: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    table = run.latest_rows(_LEDGER_COLUMNS)
    table = table.filter(pc.equal(table["status"], "done"))
    rows = []
    for row in table.to_pylist():
        problem = run.problem(row, mode)
        if problem:
            rejected.append((row["job_id"], problem))
        else:
            rows.append(row)
    if stills is StillsPolicy.exclude:
        rows = [r for r in rows if _kind(r) == "video"]
    old = [r for r in rows if r["job_id"] in previous]
    old.sort(key=lambda r: previous[r["job_id"]]["sample_index"])
    new = [r for r in rows if r["job_id"] not in previous]
    new.sort(key=lambda r: (r["finished_at"], r["job_id"]))
    return [_sample(i, r, run, out, thumbnails) for i, r in enumerate(old + new)]


def _kind(r: dict[str, Any]) -> str:
    return "image" if r["mode"] == "image" else "video"


def _sample(index: int, r: dict[str, Any], run: RunSource, out: Folder, thumbnails: bool) -> dict[str, Any]:
    params = json.loads(r["params_json"] or "{}")
    source = run.rel(r["output_path"])
    kind = _kind(r)
    thumb = run.rel(r["thumbnail_path"]) if thumbnails and r["thumbnail_path"] else None
    if thumb and run.folder.stat(thumb) is None:
        thumb = None
    return {
        "sample_index": index,
        "file_name": f"{kind}/{r['job_id']}{Path(source).suffix}",
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
        "thumbnail": f"{THUMBNAILS}/{r['job_id']}{Path(thumb).suffix}" if thumb else None,
        "_thumbnail_source": thumb,  # relative to the run dir
        "_source": source,  # relative to the run dir
        "source_path": _source_path(run.folder, source, out),
        "source_mtime_ns": None,
        "model_name": r["model_name"],
        "model_fingerprint": r["model_fingerprint"],
        "run_id": r["run_id"],
        "finished_at": r["finished_at"],
        "wds_shard": None,
    }


def _place_clip(
    row: dict[str, Any], run: RunSource, out: Folder, before: dict[str, Any] | None, link: bool
) -> bool:
    """Fill the row's sha256/size and put the clip in place; True when a file was linked or copied."""
    source, target = row["_source"], row["file_name"]
    stat = run.folder.stat(source)
    if stat is None:
        raise FileNotFoundError(run.folder.locate(source))
    row["clip_bytes"], row["source_mtime_ns"] = stat.size, stat.token
    unchanged = bool(
        before is not None
        and before["source_mtime_ns"] == stat.token
        and before["clip_bytes"] == stat.size
        and before["clip_sha256"]
    )
    row["clip_sha256"] = before["clip_sha256"] if unchanged and before else run.folder.sha256(source)
    there = out.stat(target)
    if there is not None and (
        _same_inode(run.folder, source, out, target)
        or (there.size == stat.size and (unchanged or out.sha256(target) == row["clip_sha256"]))
    ):
        return False
    out.place(run.folder, source, target, link)
    return True


def _source_path(run: Folder, source: str, out: Folder) -> str:
    """The rendered file as the dataset's bookkeeping names it: relative to the dataset folder on one disk,
    else by its URL (or path)."""
    if run.local is not None and out.local is not None:
        return os.path.relpath(run.local / source, out.local)
    return run.locate(source)


def _same_inode(source: Folder, source_rel: str, out: Folder, rel: str) -> bool:
    if source.local is None or out.local is None:
        return False
    with contextlib.suppress(OSError):
        return (out.local / rel).samefile(source.local / source_rel)
    return False


def _in_place(source: Folder, source_rel: str | None, out: Folder, rel: str) -> bool:
    """Same inode, or a copy of the same size (thumbnails are rewritten only with their clip)."""
    there, here = out.stat(rel), source.stat(source_rel) if source_rel else None
    return there is not None and (
        _same_inode(source, source_rel or "", out, rel) or (here is not None and there.size == here.size)
    )


def _remove_stale(out: Folder, rows: list[dict[str, Any]]) -> None:
    """Files of jobs no longer done (a re-render failed, the ledger was reset), or left out now."""
    keep = {r["file_name"] for r in rows} | {r["thumbnail"] for r in rows if r["thumbnail"]}
    for folder in (*KINDS, THUMBNAILS):
        for name in out.names(folder):
            if name != METADATA_NAME and f"{folder}/{name}" not in keep:
                out.remove(f"{folder}/{name}")


def _write_folder_metadata(out: Folder, kind: str, table: pa.Table) -> None:
    """`<dest>/<kind>/metadata.parquet` for HF's videofolder/imagefolder: `file_name` relative to it."""
    mine = table.filter(pc.equal(table["kind"], kind))
    target = f"{kind}/{METADATA_NAME}"
    if mine.num_rows == 0:
        out.remove(target)
        return
    names = pc.utf8_slice_codeunits(mine["file_name"], len(kind) + 1)
    public = mine.drop_columns(list(_PRIVATE)).set_column(1, "file_name", names)
    out.write(target, lambda tmp: pq.write_table(public, tmp))


def _write_shards(rows: list[dict[str, Any]], out: Folder, per_shard: int) -> tuple[int, int]:
    root = out.child("webdataset")
    index_data = root.read("index.json")
    index = json.loads(index_data) if index_data else {}
    new_index: dict[str, str] = {}
    written = kept = 0
    for kind in KINDS:
        samples = [row for row in rows if row["kind"] == kind]
        for start in range(0, len(samples), per_shard):
            stem = f"shard-{start // per_shard:06d}"
            members = samples[start : start + per_shard]
            for row in members:
                row["wds_shard"] = f"webdataset/{kind}/{stem}.tar"
            payloads = [(row, _sample_json(row)) for row in members]
            digest = hashlib.sha256(
                json.dumps(
                    [(r["job_id"], r["clip_sha256"], hashlib.sha256(j).hexdigest()) for r, j in payloads]
                ).encode()
            ).hexdigest()
            name = f"{kind}/{stem}"
            new_index[name] = digest
            files = [f"{kind}/{stem}{suffix}" for suffix in (".tar", ".parquet", "_stats.json")]
            if index.get(name) == digest and all(root.stat(f) is not None for f in files):
                kept += 1
                continue
            root.write(files[0], functools.partial(_tar, payloads=payloads, dest=out))
            shard_rows = pa.Table.from_pylist(members, schema=DATASET_SCHEMA).drop_columns(list(_PRIVATE))
            root.write(files[1], functools.partial(_parquet_into, table=shard_rows))
            stats = json.dumps(_stats(members), indent=1, sort_keys=True) + "\n"
            root.write(files[2], functools.partial(_text_into, text=stats))
            written += 1
        stems = {name.split("/")[1] for name in new_index if name.startswith(f"{kind}/")}
        for stale in root.names(kind):
            if stale.split(".")[0].removesuffix("_stats") not in stems:
                root.remove(f"{kind}/{stale}")
    for stale in root.names(""):  # shards of the earlier one-folder layout
        if stale.startswith("shard-") and stale.endswith(".tar"):
            root.remove(stale)
    text = json.dumps(new_index, indent=1, sort_keys=True) + "\n"
    root.write("index.json", functools.partial(_text_into, text=text))
    return written, kept


def _stats(members: list[dict[str, Any]]) -> dict[str, object]:
    """Per-shard stats in the shape video2dataset's `<shard>_stats.json` has (counts and totals)."""
    return {
        "count": len(members),
        "successes": len(members),
        "failed_to_download": 0,
        "failed_to_subsample": 0,
        "status_dict": {"success": len(members)},
        "frames": sum(r["frames"] or 0 for r in members),
        "duration": sum(r["duration_s"] or 0.0 for r in members),
        "bytes": sum(r["clip_bytes"] or 0 for r in members),
    }


def _sample_json(row: dict[str, Any]) -> bytes:
    """The sample's `<job_id>.json`: parameters and tags as objects, paths relative to the dataset."""
    plain = {
        k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if k not in _PRIVATE
    }
    plain["params"] = json.loads(row["params_json"] or "{}")
    plain["tags"] = json.loads(row["tags_json"] or "{}")
    return json.dumps(plain, sort_keys=True, ensure_ascii=False).encode()


def _tar(path: Path, payloads: list[tuple[dict[str, Any], bytes]], dest: Folder) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row, meta in payloads:
            key = row["job_id"]
            clip_info = tarfile.TarInfo(f"{key}{Path(row['file_name']).suffix}")
            clip_info.size, clip_info.mtime, clip_info.mode = row["clip_bytes"], 0, 0o644
            with dest.open(row["file_name"]) as clip:  # streamed: a shard may hold gigabytes
                tar.addfile(clip_info, clip)
            for member, data in ((f"{key}.txt", (row["caption"] or "").encode()), (f"{key}.json", meta)):
                info = tarfile.TarInfo(member)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))


def _parquet_into(tmp: Path, table: pa.Table) -> None:
    pq.write_table(table, tmp)


def _text_into(tmp: Path, text: str) -> None:
    tmp.write_text(text)
