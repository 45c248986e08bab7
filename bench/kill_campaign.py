"""kill -9 campaign: kill the driver at random moments (local engine and a private Ray), rerun until done.

A calibration run measures how long the whole manifest takes (T). Each round then uses a fresh output dir:
it launches `ltx2-batch` on a small manifest on the tiny model (plain clips and one chained job), SIGKILLs
the driver at a random moment (even kills: uniform in [0.5 s, 0.7 T] after launch, start-up included; odd
kills: uniform within the calibration's render span after the run's first ledger row), relaunches (the
resume) and kills it again, as many times as `--kills`, checking what each dead run left: processes (the
driver's own children, and for Ray every process naming its private temp dir, found through the reaper it
started) and that temp dir. Then one run goes to completion, and the output dir is checked:

  - every job has exactly one `done` row (done once, never rendered twice after being done),
  - every done job's files pass `verify=full` (decoded, frame counts match the ledger),
  - no `*.partial` temporaries and no decoded chunk frames (npz) are left behind.

Two harder variants (issue: nothing unverified is ever done):
  - `--damage`: after every kill, damage the stored state of a chained job (truncate a chunk's frames,
    flip a byte of its latents, or drop its record) before the resume: the damaged chunk must be discarded
    and rendered again, never stitched short.
  - `--shards N`: every run is N shard launches (`shard=i/N`) into one output dir at once, killed together;
    the manifest adds a prompts file with repeated prompts (one job id at several rows): still done once.
`--model fake` runs the same on the numpy stand-in backend (seconds a round, no torch); its jobs are slowed
with the `fake_render_s` tag so kills land mid-render.

Prints one line per round and a summary with the counts. Usage:

    python bench/kill_campaign.py --engine local --rounds 3 --kills 2 [--seed 1]
    python bench/kill_campaign.py --engine ray --rounds 3 --kills 2
    python bench/kill_campaign.py --model fake --damage --rounds 6 --kills 3
    python bench/kill_campaign.py --model fake --shards 2 --rounds 4 --kills 2
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ltx2_batch.config import VerifyMode  # noqa: E402 - after the path insert: runs from a checkout
from ltx2_batch.ledger.store import read_rows  # noqa: E402 - after the path insert
from ltx2_batch.storage.verify import DoneRecord, Expected, verify_files  # noqa: E402 - after the path insert

MANIFEST = """
defaults: {width: 64, height: 64, frame_rate: 24, pipeline: distilled}
jobs:
  - {name: a, prompt: "A cat walks on a sunny street.", num_frames: 9, seed: 1}
  - {name: b, prompt: "A drone shot of mountains at sunset.", num_frames: 17, seed: 2}
  - {name: c, prompt: "A red apple on a table.", num_frames: 9, seed: 3}
  - {name: long, prompt: "A slow walk through a forest.", num_frames: 130, seed: 4}
"""
FAKE_MANIFEST = """
defaults: {width: 64, height: 64, frame_rate: 24, tags: {fake_render_s: "0.4"}}
jobs:
  - {name: a, prompt: "A cat walks on a sunny street.", num_frames: 9, seed: 1}
  - {name: b, prompt: "A drone shot of mountains at sunset.", num_frames: 17, seed: 2}
  - {name: long, prompt: "A slow walk through a forest.", num_frames: 700, seed: 4}
  - {name: rows, prompts: {path: prompts.txt}, num_frames: 9}
"""
PROMPTS = "".join(f"caption {i % 5}\n" for i in range(12))  # 12 rows, 5 distinct prompts: 5 job ids
RAY_ARGS = ["engine=ray", "engine.num_workers=1", "engine.gpus_per_worker=0", "engine.num_cpus=2"]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _ray_temp_dir(driver: int) -> str | None:
    """The private Ray's temp dir, read from the reaper the driver started (argv: pid, temp dir)."""
    for child in _children(driver):
        args = _cmdline(child).split(b"\0")
        if b"ltx2_batch.runners.reaper" in args:
            return args[-2].decode()
    return None


def _ray_processes(temp_dir: str) -> list[int]:
    needle = temp_dir.encode()
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and needle in _cmdline(int(e.name)) and _alive(int(e.name))
    ]


def _wait_gone(check: Callable[[], list[int]], timeout: float = 40.0) -> list[int]:
    deadline = time.monotonic() + timeout
    left = check()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = check()
    return left


def _launch(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _rows_so_far(out: Path) -> str:
    """`running/done` job rows in the dead run's ledger: where in the run the kill landed."""
    try:
        rows = [r for r in read_rows(out).to_pylist() if r["row_kind"] == "job"]
    except Exception:  # a bench: whatever state the ledger is in, report it
        return "unreadable"
    return f"{sum(r['status'] == 'running' for r in rows)}/{sum(r['status'] == 'done' for r in rows)}"


def _first_row_written(out: Path, since: float) -> bool:
    """This launch has written a ledger row (its journal, newer than the launch, is not empty)."""
    for journal in (out / "ledger").glob("journal-*.jsonl"):
        try:
            stat = journal.stat()
        except OSError:
            continue
        if stat.st_mtime >= since and stat.st_size > 0:
            return True
    return False


def render_span_s(out: Path) -> float:
    """Seconds from the first job start to the last job end in a finished run's ledger."""
    rows = [r for r in read_rows(out).to_pylist() if r["row_kind"] == "job"]
    starts = [r["started_at"] for r in rows if r["started_at"] is not None]
    ends = [r["finished_at"] for r in rows if r["finished_at"] is not None]
    return max((max(ends) - min(starts)).total_seconds(), 0.5) if starts and ends else 1.0


def kill_round(
    cmds: list[list[str]], log: Path, at_s: float, engine: str, out: Path, after_first_row: bool = False
) -> dict[str, object]:
    """Launch every command (one, or the shards of one run) and kill them all `at_s` seconds after launch,
    or (after_first_row) after the first ledger row."""
    launched = time.time()
    procs = [_launch(cmd, log) for cmd in cmds]
    deadline = time.monotonic() + at_s
    temp_dirs: dict[int, str | None] = {proc.pid: None for proc in procs}
    while any(proc.poll() is None for proc in procs):
        if after_first_row and _first_row_written(out, launched):
            after_first_row = False
            deadline = time.monotonic() + at_s
        if not after_first_row and time.monotonic() >= deadline:
            break
        time.sleep(0.05)
        for proc in procs:
            if engine == "ray" and temp_dirs[proc.pid] is None:
                temp_dirs[proc.pid] = _ray_temp_dir(proc.pid)
    alive = [proc for proc in procs if proc.poll() is None]
    if not alive:
        return {"killed": False, "rc": [proc.returncode for proc in procs]}
    children = [
        c for proc in alive for c in _children(proc.pid) if b"ltx2_batch.runners.reaper" not in _cmdline(c)
    ]
    for proc in alive:
        temp_dirs[proc.pid] = temp_dirs[proc.pid] or (_ray_temp_dir(proc.pid) if engine == "ray" else None)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left_children = _wait_gone(lambda: [c for c in children if _alive(c)])
    ray_dirs = [d for d in temp_dirs.values() if d]
    left_ray = _wait_gone(lambda: [p for d in ray_dirs for p in _ray_processes(d)]) if ray_dirs else []
    return {
        "killed": True,
        "at_s": round(at_s, 1),
        "running/done_rows": _rows_so_far(out),
        "ray_started": bool(ray_dirs),
        "children_left": len(left_children),
        "ray_processes_left": len(left_ray),
        "temp_dir_left": any(Path(d).exists() for d in ray_dirs),
    }


def damage_chunk_state(out: Path, rng: random.Random) -> str:
    """Damage one stored chunk of a chained job the way a crash or a disk can; '' when none is stored."""
    records = sorted((out / "chunks").rglob("chunk_*.json")) if (out / "chunks").exists() else []
    if not records:
        return ""
    record = rng.choice(records)
    frames, state = record.with_suffix(".mkv"), record.with_suffix(".safetensors")
    how = rng.choice(["truncate frames", "flip latents", "drop record"])
    if how == "truncate frames" and frames.exists():
        frames.write_bytes(frames.read_bytes()[: frames.stat().st_size // 2])
    elif how == "flip latents" and state.exists():
        data = bytearray(state.read_bytes())
        data[rng.randrange(len(data))] ^= 0xFF
        state.write_bytes(bytes(data))
    else:
        record.unlink()
    return f"{how}: {record.parent.name}/{record.stem}"


def final_checks(out: Path) -> dict[str, object]:
    table = read_rows(out).to_pylist()
    jobs = [r for r in table if r["row_kind"] == "job"]
    done_rows: dict[str, list[dict]] = {}
    for r in jobs:
        if r["status"] == "done":
            done_rows.setdefault(r["job_id"], []).append(r)
    all_ids = {r["job_id"] for r in jobs}
    bad = {}
    for job_id, rows in done_rows.items():
        last = rows[-1]
        record = DoneRecord(last["run_id"], last["frames_written"], last["error"])
        expected = Expected.from_params(job_id, last["params_json"]) or Expected(job_id, -1, False)
        problem = verify_files(
            Path(last["output_path"]), Path(last["sidecar_path"]), expected, record, VerifyMode.full
        )
        if problem:
            bad[job_id] = problem
    return {
        "jobs": len(all_ids),
        "done_once": sum(len(v) == 1 for v in done_rows.values()),
        "done_twice_or_more": sum(len(v) > 1 for v in done_rows.values()),
        "never_done": len(all_ids - set(done_rows)),
        "done_failing_verification": bad,
        "partials_left": len([p for p in out.rglob("*.partial")]),
        "chunk_frames_left": len(list((out / "chunks").rglob("*.npz"))) if (out / "chunks").exists() else 0,
        "runs": len({r["run_id"] for r in jobs}),
        "adopted": sum(
            "adopted from its sidecar" in (r["error"] or "") for rows in done_rows.values() for r in rows
        ),
    }


def _complete(cmds: list[list[str]]) -> list[int]:
    """Run the commands (the shards of one run) to completion at once; their exit codes."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for cmd in cmds
    ]
    return [proc.wait(timeout=1800) for proc in procs]


def main() -> int:  # noqa: PLR0915 - a campaign: arguments, calibration, rounds, summary, read in order
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--model", choices=["tiny", "fake"], default="tiny")
    parser.add_argument("--rounds", type=int, default=3, help="fresh output dirs, each killed --kills times")
    parser.add_argument("--kills", type=int, default=2, help="kills per round (the first run, then resumes)")
    parser.add_argument("--damage", action="store_true", help="damage stored chunk state after each kill")
    parser.add_argument("--shards", type=int, default=1, help="launches (shard=i/N) per run, one output dir")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-campaign-"))
    manifest = work / "campaign.yaml"
    manifest.write_text(FAKE_MANIFEST if args.model == "fake" else MANIFEST)
    (work / "prompts.txt").write_text(PROMPTS)
    log = work / "driver.log"

    def commands(out_root: Path) -> list[list[str]]:
        cmd = [sys.executable, "-m", "ltx2_batch", f"manifest={manifest}", f"output.root={out_root}"]
        cmd += ["progress=false", f"model={args.model}", *(RAY_ARGS if args.engine == "ray" else [])]
        if args.shards == 1:
            return [cmd]
        return [[*cmd, f"shard={i}/{args.shards}"] for i in range(args.shards)]

    started = time.monotonic()
    calibration = _complete(commands(work / "calibration"))
    # 0.7 T: later runs start warmer (cached weights) than the calibration run
    full_s = 0.7 * (time.monotonic() - started)
    span_s = render_span_s(work / "calibration" / "campaign")
    print(
        f"calibration: rc={calibration}; even kills at U(0.5, {full_s:.0f}) s after launch "
        f"(start-up included), odd kills at U(0, {span_s:.1f}) s after the run's first ledger row"
    )
    failures = 0
    totals = {"kills": 0, "damaged": 0, "leftovers": 0, "done_twice": 0, "never_done": 0, "bad": 0}
    totals |= {"partials": 0, "npz": 0}
    for r in range(args.rounds):
        out_root = work / f"round{r}"
        for k in range(args.kills):
            if k % 2:
                at, after_row = rng.uniform(0.0, span_s), True
            else:
                at, after_row = rng.uniform(0.5, full_s), False
            result = kill_round(commands(out_root), log, at, args.engine, out_root / "campaign", after_row)
            result["after_first_row"] = after_row
            if args.damage:
                result["damaged"] = damage_chunk_state(out_root / "campaign", rng)
                totals["damaged"] += bool(result["damaged"])
            print(f"round {r} kill {k}: {result}", flush=True)
            if result.get("killed"):
                totals["kills"] += 1
                totals["leftovers"] += int(result["children_left"]) + int(result["ray_processes_left"])
                totals["leftovers"] += int(result["temp_dir_left"])
        codes = _complete(commands(out_root))
        checks = final_checks(out_root / "campaign")
        print(f"round {r} resume: rc={codes} {checks}", flush=True)
        failures += any(codes)
        totals["done_twice"] += checks["done_twice_or_more"]
        totals["never_done"] += checks["never_done"]
        totals["bad"] += len(checks["done_failing_verification"])
        totals["partials"] += checks["partials_left"]
        totals["npz"] += checks["chunk_frames_left"]
    print(
        f"summary: engine={args.engine} model={args.model} shards={args.shards} damage={args.damage} "
        f"rounds={args.rounds} kills={totals['kills']} chunk states damaged={totals['damaged']} "
        f"leftover processes/dirs={totals['leftovers']} resume failures={failures} "
        f"jobs done twice={totals['done_twice']} never done={totals['never_done']} "
        f"done but failing verify=full={totals['bad']} partials={totals['partials']} npz={totals['npz']} "
        f"(work dir {work})"
    )
    bad = any(v for k, v in totals.items() if k not in ("kills", "damaged"))
    return 0 if failures == 0 and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
