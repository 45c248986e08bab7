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
folder), so the folder can be moved or uploaded as is. A sample's `.json` holds its parameters as JSON
objects (`params`, `tags`), not as strings. Stills never share a shard or a folder with videos (HF's
`webdataset` loader needs every sample to have the same extensions); `stills=StillsPolicy.exclude`
leaves them out altogether.

Samples are the jobs whose latest ledger state is `done` and whose files pass `verify_files` (a 0-byte
or truncated clip, or a sidecar that is not JSON or disagrees with the ledger, is left out and counted in
`ExportReport.rejected`). Order is stable:
samples already in metadata.parquet keep their `sample_index`, new ones are appended (by finish time),
so adding jobs only adds samples (and rewrites only the last, partial shard of their kind). Re-exporting
an unchanged run writes nothing but the metadata; a killed export redoes only what it had not finished:
files land under a temporary name and are renamed, a clip already in place is kept (same inode, or same
bytes), shards are written whole and renamed, and metadata.parquet is written last. Tars are
byte-deterministic (fixed mtime/owner), and so are the shard metadata files. Must not render, and reads
the ledger without changing it. Just over 300 lines: the three reader layouts share one sample list.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltx2_batch.config import StillsPolicy, VerifyMode
from ltx2_batch.core.jobs import file_sha256
from ltx2_batch.errors import ConfigError
from ltx2_batch.ledger.store import latest_rows
from ltx2_batch.storage.verify import DoneRecord, Expected, verify_files

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
        ("source_path", _S),  # the rendered file, relative to the dataset folder (what re-export checks)
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
)


@dataclass(frozen=True)
class ExportReport:
    dest: Path
    metadata: Path
    samples: int
    clips_placed: int  # linked or copied by this export
    clips_kept: int  # already in place
    shards_written: int
    shards_kept: int
    rejected: tuple[tuple[str, str], ...] = ()  # (job id, reason): recorded done, files failed verification


def export_dataset(
    output_dir: Path,
    dest: Path | None = None,
    *,
    webdataset: bool = False,
    samples_per_shard: int = 1000,
    link: bool = True,
    thumbnails: bool = False,
    stills: StillsPolicy = StillsPolicy.separate,
    verify: VerifyMode = VerifyMode.cheap,
) -> ExportReport:
    """Export `output_dir`'s done clips to `dest` (default `<output_dir>/dataset`); see the module doc."""
    if samples_per_shard < 1:
        raise ConfigError(f"export.samples_per_shard must be >= 1, got {samples_per_shard}")
    output_dir = Path(output_dir)
    dest = Path(dest) if dest else output_dir / "dataset"
    dest.mkdir(parents=True, exist_ok=True)
    previous = _previous(dest / METADATA_NAME)
    rejected: list[tuple[str, str]] = []
    rows = _done_rows(output_dir, dest, previous, StillsPolicy(stills), thumbnails, verify, rejected)
    placed = 0
    for row in rows:
        placed += _place_clip(row, dest, previous.get(row["job_id"]), link)
        if row["thumbnail"]:
            _place_file(_abs(dest, row.pop("_thumbnail_source")), dest / row["thumbnail"], link)
        row.pop("_thumbnail_source", None)
    _remove_stale(dest, rows)
    written = kept = 0
    if webdataset:
        written, kept = _write_shards(rows, dest, samples_per_shard)
    table = pa.Table.from_pylist(rows, schema=DATASET_SCHEMA)
    for kind in KINDS:
        _write_folder_metadata(dest, kind, table)
    _atomic(dest / METADATA_NAME, lambda tmp: pq.write_table(table, tmp))  # last: it marks the export done
    return ExportReport(
        dest, dest / METADATA_NAME, len(rows), placed, len(rows) - placed, written, kept, tuple(rejected)
    )


def _previous(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    table = pq.read_table(path)
    if "file_name" not in table.column_names:  # an export in the earlier layout: start afresh
        return {}
    return {row["job_id"]: row for row in table.to_pylist()}


def _verified(
    output_dir: Path, row: dict[str, Any], mode: VerifyMode, rejected: list[tuple[str, str]]
) -> bool:
    if not row["output_path"]:
        rejected.append((row["job_id"], "the done row names no output file"))
        return False
    sidecar = Path(row["sidecar_path"] or output_dir / "metadata" / f"{row['job_id']}.json")
    record = DoneRecord(row["run_id"], row["frames_written"], row["error"])
    expected = Expected.from_params(row["job_id"], row["params_json"] or "")
    if expected is None:
        rejected.append((row["job_id"], "the done row holds no job parameters to check its file against"))
        return False
    problem = verify_files(Path(row["output_path"]), sidecar, expected, record, mode)
    if problem:
        rejected.append((row["job_id"], problem))
    return problem is None


def _done_rows(
    output_dir: Path,
    dest: Path,
    previous: dict[str, dict[str, Any]],
    stills: StillsPolicy,
    thumbnails: bool,
    mode: VerifyMode,
    rejected: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    table = latest_rows(output_dir, columns=_LEDGER_COLUMNS)
    table = table.filter(pc.equal(table["status"], "done"))
    rows = [r for r in table.to_pylist() if _verified(output_dir, r, mode, rejected)]
    if stills is StillsPolicy.exclude:
        rows = [r for r in rows if _kind(r) == "video"]
    old = [r for r in rows if r["job_id"] in previous]
    old.sort(key=lambda r: previous[r["job_id"]]["sample_index"])
    new = [r for r in rows if r["job_id"] not in previous]
    new.sort(key=lambda r: (r["finished_at"], r["job_id"]))
    return [_sample(i, r, dest, thumbnails) for i, r in enumerate(old + new)]


def _kind(r: dict[str, Any]) -> str:
    return "image" if r["mode"] == "image" else "video"


def _sample(index: int, r: dict[str, Any], dest: Path, thumbnails: bool) -> dict[str, Any]:
    params = json.loads(r["params_json"] or "{}")
    source = Path(r["output_path"])
    kind = _kind(r)
    thumb = r["thumbnail_path"] if thumbnails and r["thumbnail_path"] else None
    if thumb and not Path(thumb).is_file():
        thumb = None
    return {
        "sample_index": index,
        "file_name": f"{kind}/{r['job_id']}{source.suffix}",
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
        "_thumbnail_source": os.path.relpath(thumb, dest) if thumb else None,
        "source_path": os.path.relpath(source, dest),
        "source_mtime_ns": None,
        "model_name": r["model_name"],
        "model_fingerprint": r["model_fingerprint"],
        "run_id": r["run_id"],
        "finished_at": r["finished_at"],
        "wds_shard": None,
    }


def _abs(dest: Path, relative: str) -> Path:
    return Path(os.path.normpath(dest / relative))


def _place_clip(row: dict[str, Any], dest: Path, before: dict[str, Any] | None, link: bool) -> bool:
    """Fill the row's sha256/size and put the clip in place; True when a file was linked or copied."""
    source, target = _abs(dest, row["source_path"]), dest / row["file_name"]
    stat = source.stat()
    row["clip_bytes"], row["source_mtime_ns"] = stat.st_size, stat.st_mtime_ns
    unchanged = bool(
        before is not None
        and before["source_mtime_ns"] == stat.st_mtime_ns
        and before["clip_bytes"] == stat.st_size
        and before["clip_sha256"]
    )
    row["clip_sha256"] = before["clip_sha256"] if unchanged and before else file_sha256(str(source))
    if target.exists() and (
        target.samefile(source) or _same(target, stat.st_size, row["clip_sha256"], unchanged)
    ):
        return False
    _place_file(source, target, link, check=False)
    return True


def _place_file(source: Path, target: Path, link: bool, check: bool = True) -> None:
    """Hard-link (or copy) `source` to `target` under a temporary name, then rename it into place."""
    if check and _in_place(source, target):
        return  # a thumbnail already there
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy requested")
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copyfile(source, tmp)
    tmp.replace(target)


def _in_place(source: Path, target: Path) -> bool:
    """Same inode, or a copy of the same size (thumbnails are rewritten only with their clip)."""
    return target.exists() and (target.samefile(source) or target.stat().st_size == source.stat().st_size)


def _same(path: Path, size: int, sha256: str, trust_size: bool) -> bool:
    """A copied file matches: same size, and same bytes unless the source is unchanged since last export."""
    return path.stat().st_size == size and (trust_size or file_sha256(str(path)) == sha256)


def _remove_stale(dest: Path, rows: list[dict[str, Any]]) -> None:
    """Files of jobs no longer done (a re-render failed, the ledger was reset), or left out now."""
    keep = {r["file_name"] for r in rows} | {r["thumbnail"] for r in rows if r["thumbnail"]}
    for folder in (*KINDS, THUMBNAILS):
        if not (dest / folder).is_dir():
            continue
        for path in (dest / folder).iterdir():
            if path.name != METADATA_NAME and f"{folder}/{path.name}" not in keep:
                path.unlink()


def _write_folder_metadata(dest: Path, kind: str, table: pa.Table) -> None:
    """`<dest>/<kind>/metadata.parquet` for HF's videofolder/imagefolder: `file_name` relative to it."""
    mine = table.filter(pc.equal(table["kind"], kind))
    target = dest / kind / METADATA_NAME
    if mine.num_rows == 0:
        target.unlink(missing_ok=True)
        return
    names = pc.utf8_slice_codeunits(mine["file_name"], len(kind) + 1)
    public = mine.drop_columns(list(_PRIVATE)).set_column(1, "file_name", names)
    _atomic(target, lambda tmp: pq.write_table(public, tmp))


def _write_shards(rows: list[dict[str, Any]], dest: Path, per_shard: int) -> tuple[int, int]:
    root = dest / "webdataset"
    root.mkdir(exist_ok=True)
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    new_index: dict[str, str] = {}
    written = kept = 0
    for kind in KINDS:
        samples = [row for row in rows if row["kind"] == kind]
        folder = root / kind
        if samples:
            folder.mkdir(exist_ok=True)
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
            files = [folder / f"{stem}{suffix}" for suffix in (".tar", ".parquet", "_stats.json")]
            if index.get(name) == digest and all(f.is_file() for f in files):
                kept += 1
                continue
            _atomic(files[0], functools.partial(_tar_into, payloads=payloads, dest=dest))
            shard_rows = pa.Table.from_pylist(members, schema=DATASET_SCHEMA).drop_columns(list(_PRIVATE))
            _atomic(files[1], functools.partial(_parquet_into, table=shard_rows))
            stats = json.dumps(_stats(members), indent=1, sort_keys=True) + "\n"
            _atomic(files[2], functools.partial(_text_into, text=stats))
            written += 1
        stems = {name.split("/")[1] for name in new_index if name.startswith(f"{kind}/")}
        for stale in folder.iterdir() if folder.is_dir() else ():
            if stale.name.split(".")[0].removesuffix("_stats") not in stems:
                stale.unlink()
    for stale in root.glob("shard-*.tar"):  # shards of the earlier one-folder layout
        stale.unlink()
    _atomic(index_path, lambda tmp: tmp.write_text(json.dumps(new_index, indent=1, sort_keys=True) + "\n"))
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


def _tar(path: Path, payloads: list[tuple[dict[str, Any], bytes]], dest: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row, meta in payloads:
            clip = dest / row["file_name"]
            key = row["job_id"]
            members = (
                (f"{key}{clip.suffix}", clip.read_bytes()),
                (f"{key}.txt", (row["caption"] or "").encode()),
                (f"{key}.json", meta),
            )
            for member, data in members:
                info = tarfile.TarInfo(member)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))


def _tar_into(tmp: Path, payloads: list[tuple[dict[str, Any], bytes]], dest: Path) -> None:
    _tar(tmp, payloads, dest)


def _parquet_into(tmp: Path, table: pa.Table) -> None:
    pq.write_table(table, tmp)


def _text_into(tmp: Path, text: str) -> None:
    tmp.write_text(text)


def _atomic(target: Path, write: Callable[[Path], object]) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    write(tmp)
    tmp.replace(target)
