"""Progress lines, the ETA that leaves model loading out, and a summary table sized to its values."""

from __future__ import annotations

import io

from ltx2_batch.core.step_events import StepEvent
from ltx2_batch.run.progress import EtaClock, Progress, RunStats, summary_table


def test_eta_leaves_each_workers_first_job_out() -> None:
    clock = EtaClock(total=6)
    clock.started("a", "w0")
    clock.finished_job("a", 60.0, counts=True)  # cold: includes the model build
    assert clock.eta() == "ETA ~5m00s"  # only cold samples so far: marked as an upper bound
    clock.started("b", "w0")
    clock.finished_job("b", 2.0, counts=True)  # warm
    assert clock.eta() == "ETA 8.0s"  # 4 left x 2 s, the 60 s first job ignored
    clock.started("c", "w1")  # a second worker's first job is cold again
    clock.finished_job("c", 50.0, counts=True)
    assert clock.eta() == "ETA 3.0s"  # 3 left x 2 s / 2 workers
    clock.started("d", "w1")
    clock.finished_job("d", 4.0, counts=False)  # a retry does not count as finished
    assert clock.finished == 3


def test_plain_lines_keep_status_and_name_apart() -> None:
    out = io.StringIO()
    progress = Progress(2, stream=out)
    progress.job_started("job_one", "local-0", 1)
    progress.job_finished("job_one", "cancelled", 1.0, "run cancelled")
    progress.job_started("job_two", "local-0", 2)
    progress.chunk_finished("job_two", 0, 2, 3.25, resumed=False)
    progress.job_finished("job_two", "done", 2.0)
    assert out.getvalue().splitlines() == [
        "[0/2] start     job_one on local-0",
        "[1/2] cancelled job_one (1.0s) ETA ~1.0s - run cancelled",
        "[1/2] start     job_two on local-0 (attempt 2)",
        "[1/2]   chunk 1/2 of job_two (3.2s)",
        "[2/2] done      job_two (2.0s) ETA 0.0s",
    ]


def test_disabled_progress_writes_nothing() -> None:
    out = io.StringIO()
    progress = Progress(1, stream=out, enabled=False)
    progress.job_started("a", "local-0", 1)
    progress.job_finished("a", "done", 1.0)
    assert out.getvalue() == ""


def test_summary_table_columns_fit_their_widest_values() -> None:
    stats = RunStats(total=5, skipped=0, render_s=10.0, frames=10**15, wall_s=3600.0)
    stats.statuses["done"] = 5
    table = summary_table(stats).splitlines()
    assert len({len(line) for line in table}) == 1  # every row as wide as the borders
    assert "| frames written         | 1000000000000000 |" in table
    assert "| throughput             |      5.0 clips/h |" in table


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so Progress draws rich bars into it."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_draws_a_step_bar_under_the_job_and_plain_lines_draw_none() -> None:
    term, log = _Terminal(), io.StringIO()
    for out in (term, log):
        progress = Progress(1, stream=out)
        progress.job_started("walk", "local-0", 1)
        for done in range(9):
            progress.job_stepped("walk", StepEvent(stage=1, stages=2, done=done, steps=8))
        progress.job_stepped("walk", StepEvent(stage=2, stages=2, done=3, steps=3))
        progress.job_stepped("nobody", StepEvent(stage=1, stages=1, done=1, steps=8))  # not in flight
        progress.job_finished("walk", "done", 1.0)
    drawn = term.getvalue()
    assert "steps, stage 1/2" in drawn and "8/8" in drawn
    assert "steps, stage 2/2" in drawn and "3/3" in drawn
    assert drawn.index("walk on local-0") < drawn.index("steps, stage 1/2")  # under its job line
    assert log.getvalue().splitlines() == [
        "[0/1] start     walk on local-0",
        "[1/1] done      walk (1.0s) ETA 0.0s",
    ]


def test_streamed_batches_add_their_jobs_and_only_the_last_job_ends_a_live_display() -> None:
    term = _Terminal()
    progress = Progress(0, stream=term, more=True)
    progress.add_jobs(1, more=True)
    progress.job_started("a", "ray-0", 1)
    progress.job_finished("a", "done", 1.0)
    assert progress._view is not None  # 1 of 1 done, but another batch may come
    progress.add_jobs(1, more=False)
    progress.job_started("b", "ray-0", 1)
    progress.job_finished("b", "done", 1.0)
    assert progress._view is None  # the last job of the last batch
    out = io.StringIO()
    lines = Progress(0, stream=out, more=True)
    lines.add_jobs(2, more=True)
    lines.job_started("c", "ray-1", 1)
    assert out.getvalue() == "[0/2] start     c on ray-1\n"
