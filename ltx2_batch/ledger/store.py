"""The run ledger on disk: one append-only JSONL journal per run, folded into one Parquet file.

    <output_dir>/ledger/journal-<run_id>.jsonl   one JSON row per line; written by the driver only
    <output_dir>/ledger.parquet                   every compacted row of every run in this output dir
    <output_dir>/ledger/compact.lock              serialises compactions (flock); never deleted

Crash safety, and why each piece is there:
- An append is one `write` of a whole line (then fsync): a crash leaves at most one torn last line, which
  readers skip. A row counts once its newline is on disk. A failed write is truncated away so the next
  row never fuses with a fragment.
- A writer holds an flock on its journal until `close`; the kernel drops it when the process dies.
  Compaction folds only journals nobody holds, so a concurrent run (another shard) never loses rows.
- Compaction writes a temp file, fsyncs, `os.replace`s it, fsyncs the folder and only then deletes the
  journals it folded.
- (run_id, seq) is unique. Readers list journals before reading ledger.parquet and keep one copy of a
  row seen twice (a concurrent compaction, or a crash between the rename and the deletes), so reading
  is lock-free and compaction is idempotent.

Resume rule: a job is complete iff its latest job row, ignoring `skipped` rows, has status `done`.
"Latest" is the order (run_id, seq); run ids sort by their UTC start time. A `skipped` row records that a
run found the job done; it must not make the next run think the job is unfinished.

Must not import torch or Ray, and must not decide what to render (the scheduler does that from
`completed_job_ids`). Slightly over the median size because the crash-safety pieces only make sense
together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from ltx2_batch.errors import LedgerError
from ltx2_batch.ledger.schema import (
    LEDGER_SCHEMA,
    SCHEMA_VERSION,
    LedgerRow,
    conform,
    row_to_record,
)

_log = logging.getLogger(__name__)

LEDGER_DIR = "ledger"
PARQUET_NAME = "ledger.parquet"
_LOCK_NAME = "compact.lock"
_JOURNAL_GLOB = "journal-*.jsonl"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it becomes part of a file name
_ORDER = [("run_id", "ascending"), ("seq", "ascending")]
_JSON_BLOCK = 4 << 20  # a block must hold the longest line; longer lines fall back to the slow path
_STATE_COLUMNS = ("job_id", "row_kind", "status")  # what deciding a job's state reads


def new_run_id() -> str:
    """Sortable by start time (UTC, microseconds), unique by a random suffix."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def parquet_path(output_dir: Path) -> Path:
    """Where an output dir's compacted ledger is: `<output_dir>/ledger.parquet`."""
    return Path(output_dir) / PARQUET_NAME


def journal_path(output_dir: Path, run_id: str) -> Path:
    """Where run `run_id` appends its rows: `<output_dir>/ledger/journal-<run_id>.jsonl`."""
    return Path(output_dir) / LEDGER_DIR / f"journal-{run_id}.jsonl"


class LedgerStore:
    """The one writer of one run's journal. `fsync=False` trades crash durability for speed (benches)."""

    def __init__(self, output_dir: Path, run_id: str, fsync: bool = True) -> None:
        if not _RUN_ID.fullmatch(run_id):
            raise LedgerError(f"run id {run_id!r} must match {_RUN_ID.pattern} (it names a file)")
        self.run_id = run_id
        self.path = journal_path(output_dir, run_id)
        self._fsync = fsync
        self._mutex = threading.Lock()
        self._seq = 0
        self._size = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Shared compaction lock: no compaction can list (and fold) the journal before we hold it.
        with _flocked(self.path.parent / _LOCK_NAME, fcntl.LOCK_SH):
            try:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                fd = os.open(self.path, flags, 0o644)
            except FileExistsError:
                raise LedgerError(f"run id {run_id!r} already has a journal ({self.path})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fresh file: nobody else can hold it
            except OSError:
                os.close(fd)
                raise
        self._fd: int | None = fd
        if fsync:
            _fsync_dir(self.path.parent)

    def append(self, row: LedgerRow) -> LedgerRow:
        """Write one whole line; returns the row as stored (with `seq` and `recorded_at`)."""
        if row.run_id != self.run_id:
            raise LedgerError(f"row of run {row.run_id!r} appended to the journal of run {self.run_id!r}")
        with self._mutex:
            if self._fd is None:
                raise LedgerError(f"ledger journal {self.path} is closed")
            stamped = dataclasses.replace(
                row, seq=self._seq, recorded_at=datetime.now(timezone.utc), schema_version=SCHEMA_VERSION
            )
            text = json.dumps(row_to_record(stamped), ensure_ascii=False, separators=(",", ":"))
            line = (text + "\n").encode()
            self._seq += 1  # reserved first: an interrupted append never hands its seq to the next row
            size = self._size
            try:
                self._write_line(self._fd, line)
                self._size = size + len(line)
            except BaseException:  # KeyboardInterrupt mid-append included: leave no half or orphan row
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)
                self._size = size
                raise
        return stamped

    def _write_line(self, fd: int, line: bytes) -> None:
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)  # drop the fragment so the next row starts on a clean line
            raise LedgerError(f"cannot append to ledger journal {self.path}: {exc}") from exc

    def close(self) -> None:
        """Idempotent. Releases the journal so a compaction may fold it."""
        with self._mutex:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    if self._fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_rows(output_dir: Path, columns: Iterable[str] | None = None) -> pa.Table:
    """Every row of every run in `output_dir` (Parquet + journals), ordered by (run_id, seq).

    `columns` reads only those (plus run_id and seq): a resume scan needs 5 of the 40-odd columns.
    """
    schema = _projection(columns)
    ledger_dir = Path(output_dir) / LEDGER_DIR
    journals = sorted(ledger_dir.glob(_JOURNAL_GLOB))  # listed BEFORE the parquet is read: see module doc
    parts = [table for table in (_read_journal(path, schema) for path in journals) if table is not None]
    return _merge(_read_parquet(parquet_path(output_dir), schema), parts, schema)


def list_journals(output_dir: Path) -> list[Path]:
    """The journals of `output_dir`, oldest run first."""
    return sorted((Path(output_dir) / LEDGER_DIR).glob(_JOURNAL_GLOB))


def read_journal_span(path: Path, start: int) -> tuple[pa.Table | None, int]:
    """The whole lines of a journal from byte `start` on, and the offset after the last one read (a
    live reader's next `start`); (None, start) if the journal vanished (folded by a compaction)."""
    try:
        source = pa.memory_map(str(path))
    except FileNotFoundError:
        return None, start
    with source:
        data = source.read_buffer()
        if data.size <= start:
            return LEDGER_SCHEMA.empty_table(), start
        tail = data.slice(start)
        end = _end_of_last_line(tail)
        if end == 0:
            return LEDGER_SCHEMA.empty_table(), start
        try:
            table = _parse_jsonl(tail.slice(0, end), _JSON_BLOCK, LEDGER_SCHEMA)
        except pa.ArrowInvalid:
            table = _parse_jsonl_lenient(tail.slice(0, end).to_pybytes(), path, LEDGER_SCHEMA)
        return conform(table), start + end


def read_rows_upto(output_dir: Path) -> tuple[pa.Table, dict[Path, int]]:
    """`read_rows`, and for each journal read the byte offset reading stopped at (see `read_journal_span`)."""
    offsets: dict[Path, int] = {}
    parts = []
    for path in list_journals(output_dir):  # listed BEFORE the parquet is read: see module doc
        table, end = read_journal_span(path, 0)
        if table is not None:
            parts.append(table)
            offsets[path] = end
    return _merge(_read_parquet(parquet_path(output_dir)), parts), offsets


def write_parquet_atomically(table: pa.Table, target: Path) -> None:
    """Write `target` so readers see the old file or the whole new one (temp file, fsync, rename)."""
    _write_parquet_atomically(table, target)


def read_rows_many(output_dirs: Iterable[Path]) -> pa.Table:
    """Several output dirs' ledgers in one table (a sweep), with an `output_dir` column appended."""
    field = pa.field("output_dir", pa.string())
    tables = []
    for output_dir in output_dirs:
        table = read_rows(output_dir)
        tables.append(table.append_column(field, pa.array([str(output_dir)] * table.num_rows, pa.string())))
    if not tables:
        return LEDGER_SCHEMA.append(field).empty_table()
    return pa.concat_tables(tables)


def compact(output_dir: Path) -> Path:
    """Fold ledger.parquet and every released journal into a new ledger.parquet; returns its path.

    Journals still held by a live writer are left alone (still read by `read_rows`). With nothing new to
    fold an existing ledger.parquet is not rewritten.
    """
    target = parquet_path(output_dir)
    ledger_dir = Path(output_dir) / LEDGER_DIR
    ledger_dir.mkdir(parents=True, exist_ok=True)
    with _flocked(ledger_dir / _LOCK_NAME, fcntl.LOCK_EX), contextlib.ExitStack() as held:
        for stale in target.parent.glob(f"{PARQUET_NAME}.tmp-*"):  # left by a compaction that was killed
            stale.unlink(missing_ok=True)
        folded = [path for path in sorted(ledger_dir.glob(_JOURNAL_GLOB)) if _hold_if_released(path, held)]
        if not folded and target.exists():
            return target
        parts = [table for table in (_read_journal(path) for path in folded) if table is not None]
        _write_parquet_atomically(_merge(_read_parquet(target), parts), target)
        for path in folded:  # only after the rename is durable
            path.unlink()
        _fsync_dir(ledger_dir)
    return target


def latest_job_rows(table: pa.Table) -> pa.Table:
    """The latest job row per job, `skipped` rows ignored (per output_dir too, for `read_rows_many`)."""
    keys = ["output_dir", "job_id"] if "output_dir" in table.column_names else ["job_id"]
    mask = pc.and_(pc.equal(table["row_kind"], "job"), pc.not_equal(table["status"], "skipped"))
    return _last_per_key(table.filter(mask), keys)


def latest_rows(output_dir: Path, columns: Iterable[str] | None = None) -> pa.Table:
    """The current state of every job in `output_dir`: one row per job (see `latest_job_rows`)."""
    wanted = None if columns is None else [*columns, *_STATE_COLUMNS]
    return latest_job_rows(read_rows(output_dir, wanted))


def completed_job_ids(output_dir: Path) -> set[str]:
    """Jobs whose latest job row is `done`: what a resumed run must not render again."""
    if not (Path(output_dir) / LEDGER_DIR).is_dir() and not parquet_path(output_dir).is_file():
        return set()  # a fresh output dir (the common launch): no Parquet reader to start
    latest = latest_rows(output_dir, columns=())
    return set(latest.filter(pc.equal(latest["status"], "done"))["job_id"].to_pylist())


def _last_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    """Last row (in table order) of each key group, kept in table order."""
    indexed = table.append_column("__i", pa.array(range(table.num_rows), pa.int64()))
    last = indexed.group_by(keys, use_threads=False).aggregate([("__i", "max")])["__i_max"]
    return table.take(pc.take(last, pc.sort_indices(last)))


def _projection(columns: Iterable[str] | None) -> pa.Schema:
    if columns is None:
        return LEDGER_SCHEMA
    wanted = {"run_id", "seq", *columns}
    unknown = wanted.difference(LEDGER_SCHEMA.names)
    if unknown:
        raise LedgerError(f"unknown ledger column(s) {sorted(unknown)}; known: {LEDGER_SCHEMA.names}")
    return pa.schema(
        [field for field in LEDGER_SCHEMA if field.name in wanted], metadata=LEDGER_SCHEMA.metadata
    )


def _merge(old: pa.Table | None, journals: list[pa.Table], schema: pa.Schema = LEDGER_SCHEMA) -> pa.Table:
    tables = ([old] if old is not None else []) + journals
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables)
    if old is not None and journals and _runs_overlap(old, journals):
        indexed = table.append_column("__i", pa.array(range(table.num_rows), pa.int64()))
        first = indexed.group_by(["run_id", "seq"], use_threads=False).aggregate([("__i", "min")])
        table = table.take(first["__i_min"])
    # Usually already in order (parquet sorted, journals in run order): then skip the full-table take.
    order = pc.sort_indices(table.select(["run_id", "seq"]), sort_keys=_ORDER)
    if pc.all(pc.equal(order, pa.array(range(table.num_rows), pa.uint64()))).as_py() is False:
        table = table.take(order)
    return table


def _runs_overlap(old: pa.Table, journals: list[pa.Table]) -> bool:
    """One journal per run, so a duplicate can only be a journal row also present in the old parquet."""
    journal_runs = pa.concat_arrays([pc.unique(table["run_id"]) for table in journals])
    return bool(pc.any(pc.is_in(old["run_id"], value_set=journal_runs)).as_py())


def _read_journal(path: Path, schema: pa.Schema = LEDGER_SCHEMA) -> pa.Table | None:
    """Whole lines only; None if the journal vanished (folded by a concurrent compaction).

    Memory-mapped, so a large journal is neither copied nor held twice; parsed while the map is open.
    """
    try:
        if path.stat().st_size == 0:
            return schema.empty_table()
        source = pa.memory_map(str(path))
    except FileNotFoundError:
        return None
    with source:
        data = source.read_buffer()
        end = _end_of_last_line(data)
        if end < data.size:
            _log.warning("ledger journal %s: skipped a torn last line (%d bytes)", path, data.size - end)
        if end == 0:
            return schema.empty_table()
        try:
            return conform(_parse_jsonl(data.slice(0, end), _JSON_BLOCK, schema), schema)
        except pa.ArrowInvalid:
            return conform(_parse_jsonl_lenient(data.slice(0, end).to_pybytes(), path, schema), schema)


def _end_of_last_line(data: pa.Buffer, step: int = 1 << 16) -> int:
    view = memoryview(data)
    end = len(view)
    while end > 0:
        start = max(0, end - step)
        newline = bytes(view[start:end]).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _parse_jsonl(body: pa.Buffer | bytes, block_size: int, schema: pa.Schema) -> pa.Table:
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return pj.read_json(pa.BufferReader(body), pj.ReadOptions(block_size=block_size), options)


def _parse_jsonl_lenient(body: bytes, path: Path, schema: pa.Schema) -> pa.Table:
    """Slow path: drop lines that are not JSON objects (with a warning), then parse the rest in one block."""
    good = []
    for number, line in enumerate(body.split(b"\n")[:-1], start=1):
        try:
            is_object = isinstance(json.loads(line), dict)
        except ValueError:
            is_object = False
        if is_object:
            good.append(line)
        else:
            _log.warning("ledger journal %s: skipped unreadable line %d", path, number)
    if not good:
        return schema.empty_table()
    kept = b"\n".join(good) + b"\n"
    try:
        return _parse_jsonl(kept, len(kept) + 1, schema)
    except pa.ArrowInvalid as exc:
        raise LedgerError(f"ledger journal {path} has rows that do not fit the schema: {exc}") from None


def _read_parquet(path: Path, schema: pa.Schema = LEDGER_SCHEMA) -> pa.Table | None:
    try:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[name for name in schema.names if name in present])
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as exc:
        raise LedgerError(
            f"cannot read ledger {path}: {exc}. It is damaged (0 bytes or truncated?): rerun the command "
            "with ledger_rebuild=true to rebuild the done set from the sidecars in metadata/ (the damaged "
            "file is kept beside it as ledger.parquet.damaged-<time>)"
        ) from None
    return conform(table, schema)


def _write_parquet_atomically(table: pa.Table, target: Path) -> None:
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def _hold_if_released(path: Path, held: contextlib.ExitStack) -> bool:
    """Take a journal's lock without waiting; False while its writer is alive (or if it vanished)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    held.callback(os.close, fd)
    return True


@contextlib.contextmanager
def _flocked(path: Path, operation: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
