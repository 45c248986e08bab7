"""Dataset export: a run's done clips as a training dataset, idempotent and resumable.

    <dest>/clips/<job_id>.mp4                 hard link to (or copy of) the rendered clip (.png for stills)
    <dest>/metadata.parquet                   one row per sample: caption, every parameter, sha256, ...
    <dest>/webdataset/shard-000000.tar        optional: <job_id>.mp4 + <job_id>.json per sample
    <dest>/webdataset/index.json              each shard's content digest (what makes re-export skip it)

Samples are the jobs whose latest ledger state is `done` and whose files pass `verify_files` (a 0-byte
or truncated clip, or a sidecar that is not JSON or disagrees with the ledger, is left out and counted in
`ExportReport.rejected`). Order is stable:
samples already in metadata.parquet keep their `sample_index`, new ones are appended (by finish time),
so adding jobs only adds samples (and rewrites only the last, partial tar shard). Re-exporting an
unchanged run writes nothing but the metadata; a killed export redoes only what it had not finished:
clips land under a temporary name and are renamed, a clip already in place is kept (same inode, or same
bytes), tar shards are written whole and renamed, and metadata.parquet is written last. Tars are
byte-deterministic (fixed mtime/owner). Must not render, and reads the ledger without changing it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltx2_batch.config import VerifyMode
from ltx2_batch.errors import ConfigError
from ltx2_batch.jobs import file_sha256
from ltx2_batch.ledger.store import latest_rows
from ltx2_batch.verify import DoneRecord, verify_files

METADATA_NAME = "metadata.parquet"
_S, _I, _F = pa.string(), pa.int64(), pa.float64()
DATASET_SCHEMA = pa.schema(
    [
        ("sample_index", _I),
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
        ("clip_path", _S),
        ("clip_sha256", _S),
        ("clip_bytes", _I),
        ("source_path", _S),
        ("source_mtime_ns", _I),
        ("thumbnail_path", _S),
        ("model_name", _S),
        ("model_fingerprint", _S),
        ("run_id", _S),
        ("finished_at", pa.timestamp("us", "UTC")),
        ("wds_shard", _S),
    ]
)
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
    verify: VerifyMode = VerifyMode.cheap,
) -> ExportReport:
    """Export `output_dir`'s done clips to `dest` (default `<output_dir>/dataset`); see the module doc."""
    if samples_per_shard < 1:
        raise ConfigError(f"export.samples_per_shard must be >= 1, got {samples_per_shard}")
    output_dir = Path(output_dir)
    dest = Path(dest) if dest else output_dir / "dataset"
    (dest / "clips").mkdir(parents=True, exist_ok=True)
    previous = _previous(dest / METADATA_NAME)
    rejected: list[tuple[str, str]] = []
    rows = _done_rows(output_dir, previous, verify, rejected)
    placed = 0
    for row in rows:
        placed += _place_clip(row, dest, previous.get(row["job_id"]), link)
    keep = {Path(r["clip_path"]).name for r in rows}
    for stale in (dest / "clips").iterdir():  # a job no longer done (re-render failed, ledger reset)
        if stale.name not in keep:
            stale.unlink()
    written = kept = 0
    if webdataset:
        written, kept = _write_shards(rows, dest, samples_per_shard)
    table = pa.Table.from_pylist(rows, schema=DATASET_SCHEMA)
    _atomic(dest / METADATA_NAME, lambda tmp: pq.write_table(table, tmp))  # last: it marks the export done
    return ExportReport(
        dest, dest / METADATA_NAME, len(rows), placed, len(rows) - placed, written, kept, tuple(rejected)
    )


def _previous(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {row["job_id"]: row for row in pq.read_table(path).to_pylist()}


def _verified(output_dir: Path, row: dict, mode: VerifyMode, rejected: list[tuple[str, str]]) -> bool:
    if not row["output_path"]:
        rejected.append((row["job_id"], "the done row names no output file"))
        return False
    sidecar = Path(row["sidecar_path"] or output_dir / "metadata" / f"{row['job_id']}.json")
    record = DoneRecord(row["run_id"], row["frames_written"], row["error"])
    problem = verify_files(Path(row["output_path"]), sidecar, row["job_id"], record, mode)
    if problem:
        rejected.append((row["job_id"], problem))
    return problem is None


def _done_rows(
    output_dir: Path, previous: dict[str, dict], mode: VerifyMode, rejected: list[tuple[str, str]]
) -> list[dict]:
    table = latest_rows(output_dir, columns=_LEDGER_COLUMNS)
    table = table.filter(pc.equal(table["status"], "done"))
    rows = [r for r in table.to_pylist() if _verified(output_dir, r, mode, rejected)]
    old = [r for r in rows if r["job_id"] in previous]
    old.sort(key=lambda r: previous[r["job_id"]]["sample_index"])
    new = [r for r in rows if r["job_id"] not in previous]
    new.sort(key=lambda r: (r["finished_at"], r["job_id"]))
    return [_sample(i, r) for i, r in enumerate(old + new)]


def _sample(index: int, r: dict) -> dict:
    params = json.loads(r["params_json"] or "{}")
    source = Path(r["output_path"])
    return {
        "sample_index": index,
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
        "clip_path": f"clips/{r['job_id']}{source.suffix}",
        "clip_sha256": None,
        "clip_bytes": None,
        "source_path": str(source),
        "source_mtime_ns": None,
        "thumbnail_path": r["thumbnail_path"],
        "model_name": r["model_name"],
        "model_fingerprint": r["model_fingerprint"],
        "run_id": r["run_id"],
        "finished_at": r["finished_at"],
        "wds_shard": None,
    }


def _place_clip(row: dict, dest: Path, before: dict | None, link: bool) -> bool:
    """Fill the row's sha256/size and put the clip in place; True when a file was linked or copied."""
    source, target = Path(row["source_path"]), dest / row["clip_path"]
    stat = source.stat()
    row["clip_bytes"], row["source_mtime_ns"] = stat.st_size, stat.st_mtime_ns
    unchanged = bool(
        before is not None
        and before["source_mtime_ns"] == stat.st_mtime_ns
        and before["clip_bytes"] == stat.st_size
        and before["clip_sha256"]
    )
    row["clip_sha256"] = before["clip_sha256"] if unchanged else file_sha256(str(source))
    if target.exists() and (
        target.samefile(source) or _same(target, stat.st_size, row["clip_sha256"], unchanged)
    ):
        return False
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy requested")
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return True


def _same(path: Path, size: int, sha256: str, trust_size: bool) -> bool:
    """A copied clip matches: same size, and same bytes unless the source is unchanged since last export."""
    return path.stat().st_size == size and (trust_size or file_sha256(str(path)) == sha256)


def _write_shards(rows: list[dict], dest: Path, per_shard: int) -> tuple[int, int]:
    folder = dest / "webdataset"
    folder.mkdir(exist_ok=True)
    index_path = folder / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    new_index: dict[str, str] = {}
    written = kept = 0
    for start in range(0, len(rows), per_shard):
        name = f"shard-{start // per_shard:06d}.tar"
        members = rows[start : start + per_shard]
        for row in members:
            row["wds_shard"] = f"webdataset/{name}"
        payloads = [(row, _sample_json(row)) for row in members]
        digest = hashlib.sha256(
            json.dumps(
                [(r["job_id"], r["clip_sha256"], hashlib.sha256(j).hexdigest()) for r, j in payloads]
            ).encode()
        ).hexdigest()
        new_index[name] = digest
        if index.get(name) == digest and (folder / name).is_file():
            kept += 1
            continue
        _atomic(folder / name, lambda tmp, p=payloads: _tar(tmp, p, dest))
        written += 1
    for stale in folder.glob("shard-*.tar"):
        if stale.name not in new_index:
            stale.unlink()
    _atomic(index_path, lambda tmp: tmp.write_text(json.dumps(new_index, indent=1, sort_keys=True) + "\n"))
    return written, kept


def _sample_json(row: dict) -> bytes:
    """The sample's metadata as its tar member `<job_id>.json` (paths as in the dataset folder)."""
    skip = {"source_path", "source_mtime_ns", "thumbnail_path", "wds_shard"}
    plain = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if k not in skip}
    return json.dumps(plain, sort_keys=True, ensure_ascii=False).encode()


def _tar(path: Path, payloads: list[tuple[dict, bytes]], dest: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for row, meta in payloads:
            clip = dest / row["clip_path"]
            members = ((f"{row['job_id']}{clip.suffix}", clip.read_bytes()), (f"{row['job_id']}.json", meta))
            for member, data in members:
                info = tarfile.TarInfo(member)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))


def _atomic(target: Path, write: object) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    write(tmp)  # type: ignore[operator]
    os.replace(tmp, target)
