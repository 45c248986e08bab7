"""Prompt files: TXT (one prompt per line), CSV, JSONL or Parquet (a named column), read lazily.

A manifest job entry with `prompts: {path: captions.csv, column: caption}` expands into one job per
prompt (times its sweep); this module owns finding and checking that file (`open_prompt_source`) and
streaming its rows (`iter_prompts`) in bounded memory: pyarrow's streaming CSV/JSON readers and
Parquet's `iter_batches`, a line at a time for TXT. A million-line file is never held as a list.

Rows keep their 0-based position in the file (blank prompts are skipped but still counted), so a job's
name (`<entry>__p<row>`) stays put when lines are appended. Must not build jobs or know the manifest
schema beyond the `prompts` mapping (the loader does that), and imports no torch, Ray or Hydra.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from ltx2_batch.errors import FieldProblem, ManifestError

PROMPT_KEYS = ("path", "column")
DEFAULT_COLUMN = "prompt"
FORMATS = {
    ".txt": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
PLACEHOLDER = "{prompt}"  # in a job's `prompt`, replaced by each row's text
_BLOCK = 1 << 20  # reader block size: bounded memory whatever the file size
_BATCH_ROWS = 16_384


@dataclass(frozen=True)
class PromptSource:
    """A validated prompts file: absolute path, its format and the column to read (None for TXT)."""

    path: str
    fmt: str
    column: str | None


@dataclass(frozen=True)
class PromptRow:
    row: int  # 0-based position among the file's data rows (blank ones counted, then skipped)
    text: str


def open_prompt_source(spec: object, base_dir: Path) -> tuple[PromptSource | None, list[tuple[str, str]]]:
    """Check a manifest's `prompts` value; returns the source or (field, message) problems.

    Reads only the file's header (CSV first block, Parquet schema, first JSONL line) to check the column.
    """
    if not isinstance(spec, Mapping):
        return None, [("prompts", f"must be a mapping with keys {', '.join(PROMPT_KEYS)}, got {spec!r}")]
    problems = [
        (f"prompts.{k}", f"unknown key {k!r}; valid: {', '.join(PROMPT_KEYS)}")
        for k in spec
        if k not in PROMPT_KEYS
    ]
    raw, column = spec.get("path"), spec.get("column")
    if not isinstance(raw, str) or not raw:
        problems.append(("prompts.path", f"must be a path to a prompts file, got {raw!r}"))
    if column is not None and (not isinstance(column, str) or not column):
        problems.append(("prompts.column", f"must be a column name, got {column!r}"))
    if problems:
        return None, problems
    path = Path(raw)
    path = (path if path.is_absolute() else base_dir / path).resolve()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        kinds = ", ".join(FORMATS)
        return None, [("prompts.path", f"unknown prompts file type {path.suffix!r}; use one of {kinds}")]
    if not path.is_file():
        return None, [("prompts.path", f"no such file: {path}")]
    if fmt == "txt":
        if column is not None:
            return None, [("prompts.column", "a .txt file has one prompt per line and no columns")]
        return PromptSource(str(path), fmt, None), []
    source = PromptSource(str(path), fmt, column or DEFAULT_COLUMN)
    try:
        names = _column_names(source)
    except (OSError, pa.ArrowException, ValueError) as exc:
        return None, [("prompts.path", f"cannot read {path.name}: {exc}")]
    if source.column not in names:
        return None, [("prompts.column", f"no column {source.column!r} in {path.name}; it has {names}")]
    return source, []


def _column_names(source: PromptSource) -> list[str]:
    if source.fmt == "parquet":
        return list(pq.read_schema(source.path).names)
    if source.fmt == "jsonl":
        with Path(source.path).open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    return _json_keys(line)
        return []
    with pcsv.open_csv(source.path, **_csv_options(source)) as reader:
        return list(reader.schema.names)


def _json_keys(line: str) -> list[str]:
    table = pjson.read_json(pa.BufferReader(line.encode()))
    return list(table.column_names)


def _csv_options(source: PromptSource, columns: list[str] | None = None) -> dict[str, object]:
    return {
        "read_options": pcsv.ReadOptions(block_size=_BLOCK),
        "parse_options": pcsv.ParseOptions(
            delimiter="\t" if source.fmt == "tsv" else ",", newlines_in_values=True
        ),
        "convert_options": pcsv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns or []},
            strings_can_be_null=True,
        ),
    }


def iter_prompts(source: PromptSource) -> Iterator[PromptRow]:
    """The file's prompts in order, lazily; surrounding whitespace stripped, blank ones skipped."""
    for row, text in enumerate(_iter_raw(source)):
        if text is None:
            continue
        if not isinstance(text, str):
            message = f"row {row}: a prompt must be text, got {text!r}"
            raise _problem(source, f"prompts.{source.column}", message)
        if text.strip():
            yield PromptRow(row, text.strip())


def _iter_raw(source: PromptSource) -> Iterator[object]:
    try:
        if source.fmt == "txt":
            with Path(source.path).open(encoding="utf-8") as handle:
                yield from handle
            return
        for batch in _batches(source):
            yield from batch.column(0).to_pylist()
    except (OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise _problem(source, "prompts", f"cannot read the prompts file: {exc}") from exc


def _problem(source: PromptSource, field: str, message: str) -> ManifestError:
    return ManifestError([FieldProblem(source.path, field, message)])


def _batches(source: PromptSource) -> Iterator[pa.RecordBatch]:
    column = source.column or DEFAULT_COLUMN
    if source.fmt == "parquet":
        yield from pq.ParquetFile(source.path).iter_batches(batch_size=_BATCH_ROWS, columns=[column])
    elif source.fmt == "jsonl":
        # Explicit schema: only this column is materialised, and a row without it reads as null.
        schema = pa.schema([pa.field(column, pa.string())])
        options = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        with pjson.open_json(
            source.path, read_options=pjson.ReadOptions(block_size=_BLOCK), parse_options=options
        ) as reader:
            yield from reader
    else:
        with pcsv.open_csv(source.path, **_csv_options(source, [column])) as reader:
            yield from reader
