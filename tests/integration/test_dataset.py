"""A prompts-file dataset job end to end, in process on the fake model: one job per caption, the contact sheet
of every done job, the dataset export (schema, hashes, WebDataset shards), idempotent re-export and
appending captions (only the new job renders; only the last shard is rewritten). The export of a
tiny-model run is checked in tests/integration/test_run_local.py; its readers, paths, card and migration in
test_dataset_readers.py, and exports to a bucket in test_dataset_s3.py."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ltx2_batch.cli import run
from ltx2_batch.export.dataset import DATASET_SCHEMA, export_dataset
from ltx2_batch.run.preview import preview
from tests.conftest import REPO_ROOT, AppFactory, write_manifest

MANIFEST = """
base_seed: 3
defaults: {width: 64, height: 64, num_frames: 9, frame_rate: 24, pipeline: distilled, audio: true}
jobs:
  - name: caps
    prompt: "{prompt}, soft ambient sound"
    prompts: {path: captions.csv, column: caption}
"""
CAPTIONS = ["A red fox runs through snow", "Waves break on a rocky shore", "A lantern sways in the wind"]


def _write_captions(folder: Path, captions: list[str]) -> None:
    lines = ["id,caption", *(f'{i},"{c}"' for i, c in enumerate(captions))]
    (folder / "captions.csv").write_text("\n".join(lines) + "\n")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prompt_file_dataset_export_and_contact_sheet(tmp_path: Path, app_factory: AppFactory) -> None:  # noqa: PLR0915 - one run, its exported files checked in turn
    folder = tmp_path / "m"
    manifest = write_manifest(folder, MANIFEST, name="ds.yaml")
    _write_captions(folder, CAPTIONS)
    app = app_factory(
        f"manifest={manifest}",
        "model=fake",
        "export.webdataset=true",
        "export.samples_per_shard=2",
        "batch_jobs=2",
    )  # streamed in batches of 2: 3 jobs take two runner calls
    assert run(app, REPO_ROOT) == 0
    out = tmp_path / "outputs" / "ds"
    dest = out / "dataset"

    # plan=true streams too: totals per shard add up, and the done jobs are known as done
    text = preview(app, REPO_ROOT)
    assert text is not None and "3 jobs (0 pending, 3 already done)" in text
    halves = [
        preview(app_factory(f"manifest={manifest}", "model=fake", f"shard={i}/2"), REPO_ROOT) for i in (0, 1)
    ]
    counts = [int(t.rsplit("\n", 1)[1].split(" jobs")[0]) for t in halves if t]
    assert sum(counts) == 3 and len(counts) == 2

    # Contact sheet: every done job, linked to its clip, with its prompt; and a PNG grid
    ledger = duckdb.sql(
        f"SELECT job_id, job_name, prompt FROM '{out / 'ledger.parquet'}' "
        "WHERE row_kind = 'job' AND status = 'done' ORDER BY job_name"
    ).fetchall()
    assert [name for _, name, _ in ledger] == ["caps__p0", "caps__p1", "caps__p2"]
    page = (out / "contact_sheet.html").read_text()
    for job_id, name, prompt in ledger:
        assert f'data-job-id="{job_id}"' in page and name in page and prompt in page
        assert f'href="generated/{job_id}.mp4"' in page and f'src="thumbnails/{job_id}.jpg"' in page
    with Image.open(out / "contact_sheet.png") as grid:
        assert grid.width > 3 * 192 and grid.height > 144

    # Export: schema, one row per caption, hashes of the files really in the dataset
    table = pq.read_table(dest / "metadata.parquet")
    assert table.schema.remove_metadata() == DATASET_SCHEMA
    rows = sorted(table.to_pylist(), key=lambda r: r["job_name"])
    assert [r["caption"] for r in rows] == [f"{c}, soft ambient sound" for c in CAPTIONS]
    for row in rows:
        clip = dest / row["file_name"]
        assert row["file_name"] == f"video/{row['job_id']}.mp4" and not row["source_path"].startswith("/")
        assert clip.is_file() and _sha(clip) == row["clip_sha256"]
        assert clip.stat().st_size == row["clip_bytes"]
        assert (row["frames"], row["fps"], row["resolution"]) == (9, 24.0, "64x64")
        assert row["pipeline"] == "distilled"
        assert row["duration_s"] == pytest.approx(9 / 24) and row["audio"] is True
        assert row["model_name"] == "fake" and len(row["model_fingerprint"]) >= 8
        assert json.loads(row["params_json"])["seed"] == row["seed"]
    by_sample = sorted(table.to_pylist(), key=lambda r: r["sample_index"])
    assert [r["sample_index"] for r in by_sample] == [0, 1, 2]
    shards = sorted((dest / "webdataset" / "video").glob("*.tar"))
    assert [s.name for s in shards] == ["00000.tar", "00001.tar"]  # video2dataset's names
    # video2dataset's keys: shard * 10**digits(samples per shard) + position, 5 + 1 digits here
    assert [r["wds_key"] for r in by_sample] == ["000000", "000001", "000010"]
    assert [r["wds_shard"] for r in by_sample] == [f"webdataset/video/{s.name}" for s in (shards[0], *shards)]
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        first = by_sample[0]
        suffixes = (".mp4", ".txt", ".json")
        assert names == [f"{r['wds_key']}{suffix}" for r in by_sample[:2] for suffix in suffixes]
        meta = json.loads(tar.extractfile(f"{first['wds_key']}.json").read())  # type: ignore[union-attr]
        assert (meta["key"], meta["status"], meta["job_id"]) == (first["wds_key"], "success", first["job_id"])
        assert meta["caption"] == first["caption"] and meta["clip_sha256"] == first["clip_sha256"]
        assert meta["params"]["seed"] == first["seed"]  # an object, not a JSON string
        assert hashlib.sha256(tar.extractfile(names[0]).read()).hexdigest() == first["clip_sha256"]  # type: ignore[union-attr]

    # Idempotent: rerunning (every job skipped) re-exports nothing, byte for byte
    before = {p: (p.stat().st_mtime_ns, _sha(p)) for p in [*shards, *(dest / "video").glob("*.mp4")]}
    assert run(app, REPO_ROOT) == 0
    again = export_dataset(out, webdataset=True, samples_per_shard=2)
    assert (again.samples, again.clips_placed, again.shards_written, again.shards_kept) == (3, 0, 0, 2)
    assert {p: (p.stat().st_mtime_ns, _sha(p)) for p in before} == before
    assert pq.read_table(dest / "metadata.parquet").equals(table)

    # Resumable: a clip lost from the dataset is put back, and only that one
    lost = dest / by_sample[1]["file_name"]
    lost.unlink()
    assert export_dataset(out, webdataset=True, samples_per_shard=2).clips_placed == 1 and lost.is_file()

    # Appending a caption renders one job and appends one sample; the full first shard is kept as is
    _write_captions(folder, [*CAPTIONS, "A paper boat drifts down a gutter"])
    assert run(app, REPO_ROOT) == 0
    done = duckdb.sql(
        f"SELECT count(DISTINCT run_id) FROM '{out / 'ledger.parquet'}' "
        "WHERE row_kind = 'job' AND status = 'done'"
    ).fetchall()
    assert done == [(2,)]  # the three first jobs were not rendered again
    grown = pq.read_table(dest / "metadata.parquet").to_pylist()
    assert [(r["job_id"], r["sample_index"]) for r in grown[:3]] == [
        (r["job_id"], r["sample_index"]) for r in by_sample
    ]
    assert grown[3]["caption"].startswith("A paper boat") and grown[3]["sample_index"] == 3
    assert shards[0].stat().st_mtime_ns == before[shards[0]][0]
    with tarfile.open(shards[1]) as tar:
        assert len(tar.getnames()) == 2 * 3  # two samples: .mp4 + .txt + .json each
    assert "caps__p3" in (out / "contact_sheet.html").read_text()
