"""The contact sheet from a ledger written by the real LedgerStore: every done job and only those, escaped
prompts, relative links, pages, the PNG grid. (The tiny-model run that writes one is in
tests/integration/test_dataset.py.)"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, with_job_id
from ltx2_batch.export.contact_sheet import write_contact_sheet
from ltx2_batch.ledger.schema import JobStatus, RunContext, job_row
from ltx2_batch.ledger.store import LedgerStore, compact
from ltx2_batch.storage.layout import OutputLayout


def _job(i: int) -> RenderJob:
    job = RenderJob(
        name=f"job{i}",
        prompt=f"clip <{i}> & friends",
        width=64,
        height=64,
        num_frames=9,
        frame_rate=24,
        seed=i,
        pipeline=PipelineKind.DISTILLED,
        mode=RenderMode.VIDEO,
        index=i,
    )
    return with_job_id(job, "fp")


def _ledger(out: Path, statuses: list[JobStatus]) -> list[RenderJob]:
    layout = OutputLayout(out)
    jobs = [_job(i) for i in range(len(statuses))]
    ctx = RunContext(run_id="20260101T000000000000Z-aaaaaa", model_name="tiny", model_fingerprint="fp")
    with LedgerStore(out, ctx.run_id, fsync=False) as store:
        for job, status in zip(jobs, statuses, strict=True):
            store.append(job_row(ctx, job, JobStatus.RUNNING))
            thumb = layout.thumbnail(job)
            if status is JobStatus.DONE and job.index % 4 != 3:  # every 4th done job lost its thumbnail
                thumb.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (64, 64), (job.index * 20 % 255, 80, 160)).save(thumb)
            store.append(
                job_row(
                    ctx,
                    job,
                    status,
                    output_path=str(layout.video(job)),
                    thumbnail_path=str(thumb),
                    finished_at=datetime.now(timezone.utc),
                )
            )
    compact(out)
    return jobs


def test_lists_every_done_job_and_only_those(tmp_path: Path) -> None:
    statuses = [JobStatus.DONE, JobStatus.FAILED, JobStatus.DONE, JobStatus.DONE, JobStatus.CANCELLED]
    jobs = _ledger(tmp_path, statuses)
    sheet = write_contact_sheet(tmp_path)
    assert sheet.entries == 3 and sheet.html_pages == (tmp_path / "contact_sheet.html",)
    page = sheet.html_pages[0].read_text()
    for job, status in zip(jobs, statuses, strict=True):
        listed = f'data-job-id="{job.job_id}"' in page
        assert listed == (status is JobStatus.DONE), job.name
    assert "clip &lt;0&gt; &amp; friends" in page and "<0>" not in page  # prompts are escaped
    assert f'href="generated/{jobs[0].job_id}.mp4"' in page  # relative: the folder can move
    assert f'src="thumbnails/{jobs[2].job_id}.jpg"' in page
    assert "seed 2 · 64x64 · 9f @ 24fps · distilled" in page
    assert page.index("job0") < page.index("job2") < page.index("job3")  # manifest order
    with Image.open(sheet.png) as grid:  # type: ignore[arg-type]
        assert grid.size[0] >= 3 * 192
        centre = grid.getpixel((8 + 96, 8 + 72))  # first tile: job0's thumbnail, colour (0, 80, 160)
        assert all(abs(c - e) < 12 for c, e in zip(centre, (0, 80, 160), strict=True))  # type: ignore[arg-type]


def test_pages_and_tile_cap_and_rewrite(tmp_path: Path) -> None:
    _ledger(tmp_path, [JobStatus.DONE] * 7)
    sheet = write_contact_sheet(tmp_path, per_page=3, max_tiles=4)
    assert [p.name for p in sheet.html_pages] == [
        "contact_sheet.html",
        "contact_sheet-2.html",
        "contact_sheet-3.html",
    ]
    counts = [p.read_text().count("<figure") for p in sheet.html_pages]
    assert counts == [3, 3, 1] and 'href="contact_sheet-3.html"' in sheet.html_pages[0].read_text()
    with Image.open(sheet.png) as grid:  # type: ignore[arg-type]
        four = grid.size
    again = write_contact_sheet(tmp_path, per_page=5)  # fewer pages now: the stale third one goes
    assert len(again.html_pages) == 2 and not (tmp_path / "contact_sheet-3.html").exists()
    with Image.open(again.png) as grid:  # type: ignore[arg-type]
        assert grid.size[0] > four[0]  # 7 tiles in a row instead of 4


def test_no_ledger_writes_an_empty_page(tmp_path: Path) -> None:
    sheet = write_contact_sheet(tmp_path)
    assert sheet.entries == 0 and sheet.png is None
    assert "0 done job(s)" in sheet.html_pages[0].read_text()
