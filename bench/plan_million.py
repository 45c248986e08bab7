"""Bench: plan a 1,000,000-prompt dataset job (expand, id, shard=0/8) in bounded memory.

Writes a prompts file (TXT by default; `--format parquet|csv|jsonl`) of N distinct captions and a
manifest whose one entry reads it, into a temporary folder; then streams
`open_manifest(...).iter_jobs(shard 0/8)` and counts, without holding the jobs. Prints seconds per
phase and the process's peak RSS (ru_maxrss) before and after, so the planning's own growth is visible
next to the interpreter's baseline.

`--launch` measures what a user waits for instead: the seconds from starting `python -m ltx2_batch` on
that manifest (tiny model, local engine) to its first job's `start` line, i.e. the first render begun.
The tiny model is built by a one-prompt warm-up run first, so its one-time build is not counted.
Run: `python bench/plan_million.py [--rows 1000000] [--format txt] [--launch]` (with the venv active).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.shard import Shard
from ltx2_batch.manifest.load import open_manifest

REPO = Path(__file__).resolve().parent.parent

ADJECTIVES = ("red", "quiet", "giant", "tiny", "golden", "misty", "neon", "ancient")
SUBJECTS = ("fox", "city", "river", "robot", "forest", "violin", "lighthouse", "desert")


def caption(i: int) -> str:
    return f"A {ADJECTIVES[i % 8]} {SUBJECTS[(i // 8) % 8]} at dusk, shot number {i}, soft ambient sound"


def write_prompts(folder: Path, rows: int, fmt: str) -> Path:
    path = folder / f"captions.{fmt}"
    if fmt == "txt":
        with path.open("w") as handle:
            for i in range(rows):
                handle.write(caption(i) + "\n")
        return path
    if fmt == "jsonl":
        with path.open("w") as handle:
            for i in range(rows):
                handle.write(json.dumps({"row": i, "caption": caption(i)}) + "\n")
        return path
    # Written in slices so the writer, too, stays small: the RSS figures are the planner's.
    schema = pa.schema([("caption", pa.string()), ("row", pa.int64())])
    writer = pq.ParquetWriter(path, schema) if fmt == "parquet" else pcsv.CSVWriter(path, schema)
    with writer:
        for start in range(0, rows, 100_000):
            ids = range(start, min(start + 100_000, rows))
            batch = pa.table({"caption": [caption(i) for i in ids], "row": list(ids)}, schema=schema)
            writer.write_table(batch)
    return path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mib() -> float:
    """Current resident set (Linux /proc): sampled during planning, since ru_maxrss only shows growth
    above an earlier peak (writing the prompts file can be that peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def launch(rows: int, fmt: str, shard: str | None) -> None:
    """Seconds from process start to the first job's `start` line, on the tiny model."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        column = "" if fmt == "txt" else ", column: caption"
        header = "defaults: {width: 64, height: 64, num_frames: 9, num_inference_steps: 2, audio: false}\n"
        for name, count in (("warm", 1), ("big", rows)):
            (folder / name).mkdir()
            prompts = write_prompts(folder / name, count, fmt)
            manifest = folder / name / "run.yaml"
            entry = f"  - name: ds\n    prompts: {{path: {prompts.name}{column}}}\n"
            manifest.write_text(f"{header}jobs:\n{entry}")
            cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={folder}/out"]
            cmd += [f"output.run_name={name}"] + ([f"shard={shard}"] if shard and name == "big" else [])
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            if proc.stderr is None:
                raise SystemExit("no stderr pipe")
            first = cpu = None
            for line in proc.stderr:
                if " start " in line:
                    first, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid)
                    break
            proc.send_signal(signal.SIGINT)  # stop after the first render: the wait is what is measured
            proc.communicate(timeout=300)
            if name == "big":
                where = f", shard={shard}" if shard else ""
                print(
                    f"launch -> first render started, {rows:,} prompts ({fmt}{where}): {first:.2f} s wall, "
                    f"{cpu:.2f} s CPU (the process's own user+sys until then: what an idle machine waits)"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="txt", choices=("txt", "csv", "jsonl", "parquet"))
    parser.add_argument("--seeds", type=int, default=1, help="sweep points per prompt (jobs = rows x seeds)")
    parser.add_argument("--launch", action="store_true", help="time launch -> first render (tiny model)")
    parser.add_argument("--shard", default=None, help="with --launch: e.g. 7/8")
    args = parser.parse_args()
    if args.launch:
        launch(args.rows, args.format, args.shard)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        prompts = write_prompts(folder, args.rows, args.format)
        t_write = time.perf_counter() - t0
        column = "" if args.format == "txt" else ", column: caption"
        seeds = ", ".join(str(s) for s in range(1, args.seeds + 1))
        manifest = folder / "dataset.yaml"
        manifest.write_text(
            "defaults: {width: 768, height: 512, num_frames: 121, frame_rate: 24, pipeline: distilled}\n"
            "jobs:\n"
            f"  - name: ds\n    prompts: {{path: {prompts.name}{column}}}\n"
            f"    sweep: {{grid: {{seed: [{seeds}]}}}}\n"
        )
        rss_start = rss_mib()
        t0 = time.perf_counter()
        stream = open_manifest(
            manifest, chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="bench-model"
        )
        t_open = time.perf_counter() - t0
        shard = Shard.parse("0/8")
        t0 = time.perf_counter()
        total = mine = 0
        rss_max = rss_start
        for _ in stream.iter_jobs():
            total += 1
            if total % 20_000 == 0:
                rss_max = max(rss_max, rss_mib())
        t_plan = time.perf_counter() - t0
        t0 = time.perf_counter()
        mine = sum(1 for _ in stream.iter_jobs(shard))
        t_shard = time.perf_counter() - t0
    print(f"prompts file: {args.rows:,} rows ({args.format}), written in {t_write:.1f} s")
    print(f"open_manifest (parse, validate the entry, read the file header): {t_open * 1000:.1f} ms")
    rate = f"{t_plan / max(total, 1) * 1e6:.1f} us/job, {total / t_plan:,.0f} jobs/s"
    print(f"expand + seed + job id over {total:,} jobs: {t_plan:.1f} s ({rate})")
    print(f"shard=0/8 (every row read, its share built): {t_shard:.1f} s, owns {mine:,}")
    print(
        f"RSS while planning: {rss_start:.0f} MiB at the start, at most {rss_max:.0f} MiB "
        f"(sampled every 20,000 jobs); process peak (ru_maxrss, file writing included) "
        f"{peak_rss_mib():.0f} MiB"
    )


if __name__ == "__main__":
    main()
