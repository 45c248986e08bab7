"""Rebuilding a damaged run ledger's done set from the sidecars: `ledger_rebuild=true`.

A 0-byte or truncated `ledger.parquet` blocks its output dir (every read raises), and moving it away
forgets every done job. But each finished job left a sidecar (`metadata/<job_id>.json`, written last) that
says what it rendered. `rebuild_ledger` moves an unreadable ledger.parquet aside
(`ledger.parquet.damaged-<UTC time>`, never deleted), then writes one `done` row per sidecar whose files
pass the cheap verification and whose job is not already done in what remains readable (journals, or the
Parquet file when it was fine), under a fresh run id, and compacts. Jobs that finished on a worker after its
driver died are recovered the same way. Must not render or delete outputs; the rows it writes say in
`error` that they were rebuilt and from which run's sidecar.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ltx2_batch.config import VerifyMode
from ltx2_batch.core.jobs import canonical_json
from ltx2_batch.errors import LedgerError, MediaError
from ltx2_batch.ledger.schema import JobStatus, LedgerRow, RowKind
from ltx2_batch.ledger.store import LedgerStore, compact, completed_job_ids, new_run_id, parquet_path
from ltx2_batch.media.sidecar import read_sidecar
from ltx2_batch.storage.verify import REBUILT, Expected, verify_files

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    """What `rebuild_ledger` did: where the damaged file went, the done rows restored, sidecars refused."""

    moved_aside: Path | None  # where the unreadable ledger.parquet went
    restored: int  # done rows written from sidecars
    rejected: tuple[tuple[str, str], ...]  # (sidecar name, why it was not trusted)


def _readable_done(output_dir: Path) -> tuple[set[str], Path | None]:
    """The done set that still reads; an unreadable ledger.parquet is moved aside first."""
    try:
        return completed_job_ids(output_dir), None
    except LedgerError:
        target = parquet_path(output_dir)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = target.with_name(f"{target.name}.damaged-{stamp}")
        target.rename(aside)
        return completed_job_ids(output_dir), aside


def finished_meta(output_dir: Path, job_id: str, sidecar: Path) -> dict[str, Any] | None:
    """The sidecar of a job whose files are complete and verify (cheap), else None. For a job the ledger
    does not record done: a worker that finished it after its driver died (kill -9) left whole files."""
    if not sidecar.is_file():
        return None
    try:
        meta = read_sidecar(sidecar)
    except MediaError:
        return None
    if meta.get("job_id") != job_id or not isinstance(meta.get("output"), str):
        return None
    if _files_problem(output_dir, sidecar, job_id, meta):
        return None
    return meta


def _files_problem(output_dir: Path, sidecar: Path, job_id: str, meta: dict[str, Any]) -> str | None:
    """Why the files a sidecar vouches for do not hold what its job asks for (cheap check), or None."""
    expected = Expected.from_params(job_id, meta.get("params") or "")
    if expected is None:
        return "names no job parameters to check its file against"
    return verify_files(output_dir / meta["output"], sidecar, expected, None, VerifyMode.cheap)


def sidecar_row(
    run_id: str, output_dir: Path, sidecar: Path, meta: dict[str, Any], template: str = REBUILT
) -> LedgerRow:
    """A done row from a sidecar's contents, its `error` naming the run that wrote the sidecar."""
    params = json.loads(meta["params"]) if isinstance(meta.get("params"), str) else {}
    return LedgerRow(
        run_id=run_id,
        job_id=meta["job_id"],
        row_kind=RowKind.JOB,
        status=JobStatus.DONE,
        job_name=meta.get("name"),
        manifest_path=meta.get("manifest"),
        manifest_sha256=meta.get("manifest_sha256"),
        model_name=meta.get("model_name"),
        model_fingerprint=meta.get("model_fingerprint"),
        pipeline=params.get("pipeline"),
        mode=params.get("mode"),
        output_path=str(output_dir / meta["output"]),
        thumbnail_path=str(output_dir / meta["thumbnail"]) if meta.get("thumbnail") else None,
        sidecar_path=str(sidecar),
        frames_written=meta.get("frames_written"),
        duration_s=meta.get("duration_s"),
        error=template.format(meta.get("run_id")),
        params_json=meta.get("params"),
        prompt=params.get("prompt"),
        width=params.get("width"),
        height=params.get("height"),
        num_frames=params.get("num_frames"),
        # the written file's rate (sidecars since schema 3), else the job's
        frame_rate=_float(meta.get("frame_rate", params.get("frame_rate"))),
        seed=params.get("seed"),
        tags_json=canonical_json(meta.get("tags") or {}),
    )


def rebuild_ledger(output_dir: Path) -> RebuildReport:
    """Restore the done rows the sidecars vouch for (see the module doc). The caller holds the dir's
    writer lock."""
    output_dir = Path(output_dir)
    done, aside = _readable_done(output_dir)
    rows: list[LedgerRow] = []
    rejected: list[tuple[str, str]] = []
    run_id = new_run_id()
    for sidecar in sorted((output_dir / "metadata").glob("*.json")):
        try:
            meta = read_sidecar(sidecar)
        except MediaError as exc:
            rejected.append((sidecar.name, str(exc)))
            continue
        job_id = meta.get("job_id")
        if not isinstance(job_id, str) or job_id in done or not isinstance(meta.get("output"), str):
            if not isinstance(job_id, str) or not isinstance(meta.get("output"), str):
                rejected.append((sidecar.name, "names no job id or output file"))
            continue
        problem = _files_problem(output_dir, sidecar, job_id, meta)
        if problem:
            rejected.append((sidecar.name, problem))
            continue
        rows.append(sidecar_row(run_id, output_dir, sidecar, meta))
    if rows:
        store = LedgerStore(output_dir, run_id)
        try:
            for row in rows:
                store.append(row)
        finally:
            store.close()
    if rows or aside is not None:
        compact(output_dir)
    for name, why in rejected:
        _log.warning("ledger rebuild: %s not trusted: %s", name, why)
    return RebuildReport(aside, len(rows), tuple(rejected))


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
