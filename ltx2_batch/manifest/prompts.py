"""Prompt files: TXT (one prompt per line), CSV, JSONL or Parquet (a named column), read lazily.

A manifest job entry with `prompts: {path: captions.csv, column: caption}` expands into one job per
prompt (times its sweep); this module owns finding and checking that file (`open_prompt_source`) and
streaming its rows (`iter_prompts`) in bounded memory: pyarrow's streaming CSV reader and Parquet's
`iter_batches`, a line at a time for TXT and JSONL. A million-line file is never held as a list.

Rows keep their 0-based position in the file in every format (TXT and JSONL: lines; CSV/TSV: records
after the header; Parquet: rows): a blank row (empty or whitespace-only text, null, or a JSONL record
without the column) renders nothing but keeps its number, so a job's name (`<entry>__p<row>`) stays put
when rows are blanked or appended. TXT and JSONL are read a line at a time (pyarrow's JSON reader drops
blank lines), CSV and Parquet in pyarrow batches. Must not build jobs or know the manifest
schema beyond the `prompts` mapping (the loader does that), and imports no torch, Ray or Hydra.

A prompts file is input like an image: its path must lie under the allowed roots (the manifest's folder,
`paths.projects_root`, `paths.allowed_roots`), or `../../etc/passwd` would be copied line by line into
prompts, the ledger and the contact sheet. A line (a CSV/JSONL row) over `limits.max_prompt_line_bytes` is
refused rather than read: a multi-GB file without a newline must not become one string in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ltx2_batch.errors import FieldProblem, ManifestError
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits, text_problem
from ltx2_batch.manifest.paths import InputRoots, resolve_input_path
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.vocabulary import DEFAULT_PROMPT_COLUMN, PROMPTS

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
_SCAN_BLOCK = 8 << 20  # bytes of a text file checked at once by `check_prompts`


@dataclass(frozen=True)
class PromptSource:
    """A validated prompts file: absolute path, its format and the column to read (None for TXT)."""

    path: str
    fmt: str
    column: str | None
    limits: Limits = DEFAULT_LIMITS  # line length and prompt length caps
    # The job's prompt template around each row: `slots` copies of the row plus `fixed_chars` of its own.
    # The prompt's length is checked by this arithmetic before it is built (a template repeating
    # {prompt} 5,000 times must not build 5,000 copies of a 20,000-character row).
    slots: int = 1
    fixed_chars: int = 0

    def prompt_chars(self, row_chars: int) -> int:
        """The length of the prompt a row of `row_chars` characters makes, without building it."""
        return self.fixed_chars + self.slots * row_chars


@dataclass(frozen=True)
class PromptRow:
    """One non-blank row of a prompts file and its position in the file."""

    row: int  # 0-based position among the file's data rows (blank ones counted, then skipped)
    text: str


def open_prompt_source(  # noqa: PLR0911 - each refusal returns its problem where it is found
    spec: object,
    base_dir: Path,
    roots: InputRoots | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[PromptSource | None, list[tuple[str, str]]]:
    """Check a manifest's `prompts` value; returns the source or (field, message) problems.

    The path must resolve under `roots` (default: `base_dir` only). Reads only the file's header (CSV
    first block, Parquet schema, first JSONL line) to check the column.
    """
    if not isinstance(spec, Mapping):
        return None, [("prompts", f"must be a mapping with keys {', '.join(PROMPTS)}, got {quote(spec)}")]
    problems = [
        (f"prompts.{str(k)[:100]}", f"unknown key {quote(k)}; valid: {', '.join(PROMPTS)}")
        for k in spec
        if k not in PROMPTS
    ]
    raw, column = spec.get("path"), spec.get("column")
    if not isinstance(raw, str) or not raw:
        problems.append(("prompts.path", f"must be a path to a prompts file, got {quote(raw)}"))
    if column is not None and (not isinstance(column, str) or not column):
        problems.append(("prompts.column", f"must be a column name, got {quote(column)}"))
    if problems or not isinstance(raw, str):  # (a path that is not a string is among the problems)
        return None, problems
    if roots is None:
        real = os.path.realpath(base_dir)
        roots = InputRoots(manifest_dir=real, projects_root=real)
    fmt = FORMATS.get(Path(raw.split("?", 1)[0]).suffix.lower())
    if fmt is None:
        kinds = ", ".join(FORMATS)
        suffix = quote(Path(raw).suffix)
        return None, [("prompts.path", f"unknown prompts file type {suffix}; use one of {kinds}")]
    found = resolve_input_path(raw, roots)
    if not found.ok:
        return None, [("prompts.path", found.error)]
    path = Path(found.path)
    if fmt == "txt":
        if column is not None:
            return None, [("prompts.column", "a .txt file has one prompt per line and no columns")]
        return PromptSource(str(path), fmt, None, limits), []
    source = PromptSource(str(path), fmt, column or DEFAULT_PROMPT_COLUMN, limits)
    try:
        names = _column_names(source)
    except (OSError, pa.ArrowException, ValueError) as exc:
        return None, [("prompts.path", f"cannot read {path.name}: {_arrow_text(exc, source)}")]
    if source.column not in names:
        return None, [("prompts.column", f"no column {quote(source.column)} in {path.name}; it has {names}")]
    return source, []


def _arrow_text(exc: BaseException, source: PromptSource) -> str:
    text = quote(str(exc), 300)[1:-1]
    if "straddl" in text or "block" in text.lower():  # pyarrow: a row longer than one read block
        text += (
            f" (a row is longer than {source.limits.max_prompt_line_bytes:,} bytes, "
            "limits.max_prompt_line_bytes)"
        )
    return text


def _column_names(source: PromptSource) -> list[str]:
    if source.fmt == "parquet":
        return list(pq.read_schema(source.path).names)
    if source.fmt == "jsonl":
        for _row, line in _lines(source):
            if line.strip():
                return _json_keys(line)
        return []
    with pcsv.open_csv(source.path, **_csv_options(source)) as reader:
        return list(reader.schema.names)


def _json_keys(line: str) -> list[str]:
    record = _json_record(line, 0)
    return [str(key) for key in record] if isinstance(record, dict) else []


def _json_record(line: str, number: int) -> object:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise ValueError(f"line {number + 1} is not valid JSON: {exc}") from None


def _csv_options(source: PromptSource, columns: list[str] | None = None) -> dict[str, object]:
    return {
        "read_options": pcsv.ReadOptions(block_size=_block(source)),
        "parse_options": pcsv.ParseOptions(
            delimiter="\t" if source.fmt == "tsv" else ",",
            newlines_in_values=True,
            ignore_empty_lines=False,  # an empty line is a blank row: counted, as in every format
        ),
        "convert_options": pcsv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns or []},
            strings_can_be_null=True,
        ),
    }


def _block(source: PromptSource) -> int:
    """pyarrow's read block: a row must fit in one, so it is the line cap (at least the usual 1 MiB)."""
    return max(source.limits.max_prompt_line_bytes, _BLOCK)


def iter_prompts(source: PromptSource) -> Iterator[PromptRow]:
    """The file's prompts in order, lazily; surrounding whitespace stripped, blank ones skipped.

    Raises ManifestError naming the row for text that is not a prompt (not a string, a NUL, too long)."""
    field = f"prompts.{source.column}" if source.column else "prompts"
    for row, raw in enumerate(_iter_raw(source)):
        if raw is None:
            continue
        if not isinstance(raw, str):
            message = f"row {row}: a prompt must be text, got {quote(raw)}"
            raise _problem(source, field, message)
        text = raw.strip()
        if not text:
            continue
        problem = text_problem(text, source.limits)
        if problem:
            raise _problem(source, field, f"row {row}: the prompt {problem}")
        length = source.prompt_chars(len(text))
        if length > source.limits.max_prompt_chars:
            message = (
                f"row {row}: in the job's prompt template ({source.slots} x {PLACEHOLDER}) it makes a "
                f"{length:,}-character prompt, over the limit of {source.limits.max_prompt_chars:,}; shorten "
                "the row or the template, or raise limits.max_prompt_chars"
            )
            raise _problem(source, field, message)
        yield PromptRow(row, text)


def check_prompts(source: PromptSource) -> int:
    """Read the whole file once (bounded memory) and return its prompt count; raises what `iter_prompts`
    raises. A run calls it before its first render so row 900000's bad byte stops it before any work.

    A text file is checked a block of whole lines at a time by C-speed scans (decode, NUL search, longest
    line): a million lines take a fraction of a second, not the seconds a per-row loop takes before the
    first render. A block that any scan doubts is not judged here: the per-row path reads the file and
    raises its exact message (line number, byte, length), so the fast path can only ever say "clean".
    """
    if source.fmt == "txt":
        count = _count_clean_lines(source)
        if count is not None:
            return count
    count = 0
    for _row in iter_prompts(source):
        count += 1
    return count


def _count_clean_lines(source: PromptSource) -> int | None:
    """The non-blank lines of a text file whose every line passes the checks, or None when one may not."""
    limits = source.limits
    # In characters: within the prompt cap, and within the line cap in bytes (4 bytes at most a character)
    longest = min(
        limits.max_prompt_chars,
        (limits.max_prompt_chars - source.fixed_chars) // max(source.slots, 1),
        limits.max_prompt_line_bytes // 4,
    )
    count, tail = 0, b""
    with Path(source.path).open("rb") as handle:
        while block := handle.read(_SCAN_BLOCK):
            block = tail + block
            cut = block.rfind(b"\n") + 1
            if not cut and len(block) <= 4 * longest:  # no whole line yet: read on
                tail = block
                continue
            lines, tail = (block[:cut], block[cut:]) if cut else (block, b"")
            found = _decoded_clean_lines(lines, longest)
            if found is None:
                return None
            count += found
    found = _decoded_clean_lines(tail, longest) if tail else 0
    return None if found is None else count + found


def _decoded_clean_lines(lines: bytes, longest: int) -> int | None:
    try:
        return _clean_lines(lines.decode("utf-8"), longest)
    except UnicodeDecodeError:
        return None


def _clean_lines(lines: str, longest: int) -> int | None:
    """Non-blank lines of `lines` (whole lines, decoded), or None if any line might be refused."""
    if "\x00" in lines:
        return None
    rows = lines.split("\n")
    if rows[-1] == "":
        rows.pop()  # the text after the last newline: not a line
    if max(map(len, rows), default=0) > longest:
        return None
    return len(rows) - rows.count("") - sum(map(str.isspace, rows))  # blank as str.strip() sees it


def _lines(source: PromptSource) -> Iterator[tuple[int, str]]:
    """(0-based line number, text) of a text file, each line read with a length cap and decoded alone, so
    a line without an end is refused at the cap and a bad byte is reported with its line."""
    limit = source.limits.max_prompt_line_bytes
    with Path(source.path).open("rb") as handle:
        for number, raw in enumerate(iter(lambda: handle.readline(limit + 1), b"")):
            if len(raw) > limit and not raw.endswith(b"\n"):
                message = (
                    f"line {number + 1} is longer than {limit:,} bytes (limits.max_prompt_line_bytes): one "
                    "prompt per line, or raise the limit"
                )
                raise _problem(source, "prompts", message)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                message = (
                    f"line {number + 1} is not valid UTF-8 (byte {exc.start} of the line): fix its encoding"
                )
                raise _problem(source, "prompts", message) from None


def _iter_raw(source: PromptSource) -> Iterator[object]:
    """Each row's raw value, one per row of the file, blank rows included (docs/manifest.md, "Prompt
    files": rows keep their number in every format)."""
    try:
        if source.fmt == "txt":
            for _number, line in _lines(source):
                yield line
            return
        if source.fmt == "jsonl":  # line by line: pyarrow's reader drops blank lines, shifting the numbers
            for number, line in _lines(source):
                record = _json_record(line, number) if line.strip() else None
                yield record.get(source.column) if isinstance(record, dict) else None
            return
        for batch in _batches(source):
            yield from batch.column(0).to_pylist()
    except (OSError, UnicodeDecodeError, ValueError, pa.ArrowException) as exc:
        message = f"cannot read the prompts file: {_arrow_text(exc, source)}"
        raise _problem(source, "prompts", message) from None


def _problem(source: PromptSource, field: str, message: str) -> ManifestError:
    return ManifestError([FieldProblem(source.path, field, message)])


def _batches(source: PromptSource) -> Iterator[pa.RecordBatch]:
    column = source.column or DEFAULT_PROMPT_COLUMN
    if source.fmt == "parquet":
        yield from pq.ParquetFile(source.path).iter_batches(batch_size=_BATCH_ROWS, columns=[column])
    else:  # csv, tsv
        with pcsv.open_csv(source.path, **_csv_options(source, [column])) as reader:
            yield from reader
