"""Prompt files: every format streams the same rows; a `prompts:` entry expands to one job per row times
its sweep, with the ids a hand-written job would get; sharding the stream is disjoint and covering."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.jobs import compute_job_id
from ltx2_batch.core.shard import Shard
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest import prompts as prompts_module
from ltx2_batch.manifest.load import open_manifest
from ltx2_batch.manifest.prompts import PromptRow, check_prompts, iter_prompts, open_prompt_source
from ltx2_batch.manifest.stream import ManifestStream
from tests.manifests import manifest_jobs

CAPTIONS = ["a red fox, in snow", "", "a blue bird", "a red fox, in snow", "  a quiet lake  "]
EXPECTED = [
    PromptRow(0, "a red fox, in snow"),
    PromptRow(2, "a blue bird"),
    PromptRow(3, "a red fox, in snow"),
    PromptRow(4, "a quiet lake"),
]
HEADER = "base_seed: 5\ndefaults: {width: 64, height: 64, num_frames: 9, pipeline: distilled}\n"


def _write(folder: Path, fmt: str, captions: list[str | None]) -> Path:
    path = folder / f"caps.{fmt}"
    table = pa.table({"id": list(range(len(captions))), "caption": captions})
    if fmt == "txt":
        path.write_text("".join(f"{c or ''}\n" for c in captions))
    elif fmt == "csv":
        pcsv.write_csv(table, path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "caption": c}) + "\n" for i, c in enumerate(captions)))
    else:
        pq.write_table(table, path)
    return path


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl", "parquet"])
def test_every_format_yields_the_same_rows(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, fmt, CAPTIONS)
    spec = {"path": path.name} if fmt == "txt" else {"path": path.name, "column": "caption"}
    source, problems = open_prompt_source(spec, tmp_path)
    assert problems == [] and source is not None
    assert list(iter_prompts(source)) == EXPECTED


@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "jsonl"])
def test_blank_lines_are_blank_rows_counted_in_every_format(tmp_path: Path, fmt: str) -> None:
    """docs/manifest.md, "Prompt files": an empty line is a row that renders nothing and keeps its number,
    in every format (pyarrow's CSV and JSON readers skip empty lines by default, which shifted names)."""
    header = {"txt": "", "csv": "caption,id\n", "tsv": "caption\tid\n", "jsonl": ""}[fmt]
    rows = {
        "txt": ["a fox", "", "   ", "a bird"],
        "csv": ["a fox,0", "", ",2", "a bird,3"],
        "tsv": ["a fox\t0", "", "\t2", "a bird\t3"],
        "jsonl": ['{"caption": "a fox"}', "", '{"id": 2}', '{"caption": "a bird"}'],
    }[fmt]
    path = tmp_path / f"caps.{fmt}"
    path.write_text(header + "\n".join(rows) + "\n")
    spec = {"path": path.name} if fmt == "txt" else {"path": path.name, "column": "caption"}
    source, problems = open_prompt_source(spec, tmp_path)
    assert problems == [] and source is not None
    assert list(iter_prompts(source)) == [PromptRow(0, "a fox"), PromptRow(3, "a bird")]
    assert check_prompts(source) == 2


def test_bad_specs_are_reported_not_raised(tmp_path: Path) -> None:
    _write(tmp_path, "csv", CAPTIONS)
    (tmp_path / "caps.xlsx").write_text("x")
    cases = {
        "prompts": "caps.csv",
        "prompts.colum": {"path": "caps.csv", "colum": "caption"},
        "prompts.column": {"path": "caps.csv", "column": "text"},
        "prompts.path": {"path": "missing.csv"},
    }
    for field, spec in cases.items():
        source, problems = open_prompt_source(spec, tmp_path)
        assert source is None and [f for f, _ in problems][:1] == [field], (spec, problems)
    assert "unknown prompts file type" in open_prompt_source({"path": "caps.xlsx"}, tmp_path)[1][0][1]
    assert "no column 'text'" in open_prompt_source({"path": "caps.csv", "column": "text"}, tmp_path)[1][0][1]


def test_a_non_text_column_fails_naming_the_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "parquet", CAPTIONS)
    source, _ = open_prompt_source({"path": path.name, "column": "id"}, tmp_path)
    assert source is not None
    with pytest.raises(ManifestError, match="row 0: a prompt must be text"):
        list(iter_prompts(source))


def _manifest(folder: Path, body: str) -> Path:
    path = folder / "ds.yaml"
    path.write_text(HEADER + body)
    return path


def _open(path: Path, seed: int | None = None) -> ManifestStream:
    return open_manifest(
        path, chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="fp", seed_override=seed
    )


def test_prompt_entry_expands_rows_times_sweep_with_hand_written_ids(tmp_path: Path) -> None:
    _write(tmp_path, "csv", CAPTIONS)
    stream = _open(
        _manifest(
            tmp_path,
            (
                "jobs:\n"
                "  - {name: solo, prompt: a hand-written job, seed: 3}\n"
                "  - name: ds\n"
                "    prompt: 'cinematic, {prompt}'\n"
                "    prompts: {path: caps.csv, column: caption}\n"
                "    sweep: {grid: {num_inference_steps: [2, 4]}}\n"
            ),
        )
    )
    assert len(stream.jobs) == 1 and len(stream.templates) == 2  # validated once per sweep point
    jobs = list(stream.iter_jobs())
    assert len(jobs) == 1 + 4 * 2
    assert [j.index for j in jobs] == list(range(9))
    assert jobs[1].name == "ds__num_inference_steps=2__p0"
    assert jobs[1].prompt == "cinematic, a red fox, in snow"
    assert jobs[-1].name == "ds__num_inference_steps=4__p4" and jobs[-1].num_inference_steps == 4
    for job in jobs:
        assert job.job_id == compute_job_id(job, "fp")  # the fast per-row hashing equals the reference
    # Same prompt twice in the file: same job (the scheduler renders it once)
    assert jobs[1].job_id == jobs[3].job_id and jobs[1].name != jobs[3].name
    # A hand-written entry with that prompt is the very same job
    written = _manifest(
        tmp_path, ("jobs:\n  - {name: x, prompt: 'cinematic, a blue bird', num_inference_steps: 2}\n")
    )
    (twin,) = manifest_jobs(written)
    assert twin.job_id == jobs[2].job_id and twin.seed == jobs[2].seed
    # A CLI seed (Hydra `-m seed=1,2`) replaces base_seed: the rows without a seed get new ones
    other = list(_open(Path(stream.source), seed=9).iter_jobs())
    assert {j.seed for j in other}.isdisjoint({j.seed for j in jobs[1:]})


def test_prompt_entry_problems_are_reported_with_the_rest(tmp_path: Path) -> None:
    _write(tmp_path, "txt", CAPTIONS)
    path = _manifest(
        tmp_path,
        (
            "jobs:\n"
            "  - {name: a, prompts: {path: caps.txt}, prompt: 'no placeholder'}\n"
            "  - {name: b, prompts: {path: caps.txt, column: caption}}\n"
            "  - {name: c, prompts: {path: caps.txt}, width: 65}\n"
        ),
    )
    with pytest.raises(ManifestError) as err:
        _open(path)
    fields = sorted(p.field for p in err.value.problems)
    assert fields == ["prompt", "prompts.column", "width"]


def test_prompts_cannot_be_a_default_or_swept(tmp_path: Path) -> None:
    _write(tmp_path, "txt", CAPTIONS)
    path = tmp_path / "bad.yaml"
    path.write_text(
        "defaults: {prompts: {path: caps.txt}}\n"
        "jobs: [{name: a, prompt: x, sweep: {grid: {prompts: [{path: caps.txt}]}}}]\n"
    )
    with pytest.raises(ManifestError) as err:
        _open(path)
    assert {p.field for p in err.value.problems} == {"defaults.prompts", "sweep.grid.prompts"}


def test_streaming_shards_are_disjoint_cover_and_hold_no_jobs(tmp_path: Path) -> None:
    rows = 8_000
    (tmp_path / "caps.txt").write_text("".join(f"caption number {i}\n" for i in range(rows)))
    stream = _open(_manifest(tmp_path, "jobs: [{name: ds, prompts: {path: caps.txt}}]\n"))
    tracemalloc.start()
    try:
        count = sum(1 for _ in stream.iter_jobs())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < 1 << 20  # one job at a time (~0.03 MiB measured); holding the 8k jobs takes ~4.4 MiB
    per_shard = [{job.job_id for job in stream.iter_jobs(Shard(i, 3))} for i in range(3)]
    assert sum(len(s) for s in per_shard) == rows  # disjoint (distinct prompts: distinct ids) ...
    assert set().union(*per_shard) == {j.job_id for j in stream.iter_jobs()}  # ... and covering
    assert all(
        abs(len(s) - rows / 3) < 0.03 * rows / 3 for s in per_shard
    )  # ... and even (hashed: within 3%)
    everything = {job.job_id: job for job in stream.iter_jobs()}
    for job in stream.iter_jobs(Shard(1, 3)):  # a launch's jobs are the very jobs of the whole stream
        assert job == everything[job.job_id] and job.index == everything[job.job_id].index


def test_batches_hold_the_hand_written_jobs_together_then_stream_rows(tmp_path: Path) -> None:
    """One iterator for every manifest: the held jobs are one batch, rows follow `size` at a time, and a
    shard's batches are its share of the same stream."""
    _write(tmp_path, "txt", CAPTIONS)
    body = (
        "jobs:\n"
        "  - {name: a, prompt: one, seed: 1}\n  - {name: b, prompt: two, seed: 2}\n"
        "  - {name: c, prompt: three, seed: 3}\n"
        "  - {name: ds, prompts: {path: caps.txt}}\n"
    )
    stream = _open(_manifest(tmp_path, body))
    sizes = [[job.name for job in batch] for batch in stream.batches(None, 2)]
    assert sizes == [["a", "b", "c"], ["ds__p0", "ds__p2"], ["ds__p3", "ds__p4"]]  # row 1 is blank
    halves = [[job.name for batch in stream.batches(Shard(i, 2), 2) for job in batch] for i in (0, 1)]
    held = [[name for name in half if not name.startswith("ds")] for half in halves]
    assert held == [["a", "c"], ["b"]]  # hand-written jobs: round-robin, first in each launch
    rows = [name for h in halves for name in h if name.startswith("ds")]
    assert sorted(rows) == ["ds__p0", "ds__p2", "ds__p3", "ds__p4"]  # rows: each in exactly one launch


def test_a_repeated_prompt_lands_in_one_launch(tmp_path: Path) -> None:
    """A prompt repeated in the file is one job id: dealt by its text, it renders in one launch only."""
    (tmp_path / "caps.txt").write_text("".join(f"caption {i % 7}\n" for i in range(200)))
    stream = _open(_manifest(tmp_path, "jobs: [{name: ds, prompts: {path: caps.txt}}]\n"))
    owners: dict[str, set[int]] = {}
    for index in range(4):
        for job in stream.iter_jobs(Shard(index, 4)):
            owners.setdefault(job.job_id, set()).add(index)
    assert len(owners) == 7 and all(len(launches) == 1 for launches in owners.values())


_PIECES = ["a cat", "", " ", "\t", "\u00a0", "\u2003", "\x1c", "\r", "café ☕", "猫の動画", "x" * 40, " l"]


@pytest.mark.parametrize("seed", range(6))
def test_the_bulk_text_check_counts_what_the_row_reader_yields(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_prompts scans a text file in blocks; its count must be the row reader's, blanks, Unicode
    spaces, CR-LF, a missing last newline and lines cut by a block edge included."""
    rng = random.Random(seed)
    lines = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 3))) for _ in range(3000)]
    data = "\n".join(lines) + rng.choice(["", "\n", "\r\n", "\n\n"])
    (tmp_path / "p.txt").write_text(data, encoding="utf-8")
    source, problems = open_prompt_source({"path": "p.txt"}, tmp_path)
    assert problems == [] and source is not None
    expected = sum(1 for _ in iter_prompts(source))
    assert prompts_module._count_clean_lines(source) == expected  # the fast path, not the fallback
    monkeypatch.setattr(prompts_module, "_SCAN_BLOCK", rng.randint(7, 300))  # edges inside lines, chars
    assert prompts_module.check_prompts(source) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a cat\n" * 5000 + b"bad\x00row\n", "row 5000: the prompt contains a NUL"),
        (b"a cat\n" * 5000 + b"caf\xe9\n", "line 5001 is not valid UTF-8"),
        (b"a cat\n" * 5000 + b"b" * 30_000 + b"\n", "row 5000: the prompt is 30,000 characters"),
    ],
)
def test_the_bulk_text_check_leaves_refusals_to_the_row_reader(
    tmp_path: Path, data: bytes, message: str
) -> None:
    (tmp_path / "p.txt").write_bytes(data)
    source, _ = open_prompt_source({"path": "p.txt"}, tmp_path)
    assert source is not None
    with pytest.raises(ManifestError, match=message):
        check_prompts(source)
