"""JobFiles and the EncodeQueue without a model or an encoder: one-frame jobs (PNG), temporaries, the
encode thread. A video window written through ffmpeg is tests/integration/test_media_io.py."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ltx2_batch.backends.base import RenderResult
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode, with_job_id
from ltx2_batch.media.write import partial_path
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.worker.job_files import JobFiles
from ltx2_batch.worker.overlap import EncodeQueue

RUN = {"run_id": "r1", "model_name": "tiny", "model_fingerprint": "fp", "manifest": "m.yaml"}


def _job(frames: int, mode: RenderMode = RenderMode.VIDEO) -> RenderJob:
    job = RenderJob(
        name="j",
        prompt="p",
        width=64,
        height=32,
        num_frames=frames,
        frame_rate=24.0,
        seed=1,
        mode=mode,
        pipeline=PipelineKind.DISTILLED,
    )
    return with_job_id(job, "fp")


def _result(frames: int, audio: bool = True) -> RenderResult:
    rng = np.random.default_rng(0)
    return RenderResult(
        frames=rng.integers(0, 255, size=(frames, 32, 64, 3), dtype=np.uint8),
        frame_rate=24.0,
        audio=rng.standard_normal((2, 16000 * frames // 24)).astype(np.float32) * 0.1 if audio else None,
        sample_rate=16000 if audio else None,
        timings={"stage1": 0.5},
        info={"device": "cpu", "memory_policy": "resident"},
    )


def test_a_one_frame_job_is_a_png(tmp_path: Path) -> None:
    files = JobFiles(OutputLayout(tmp_path), RUN)
    written = files.write_window(_job(1, RenderMode.IMAGE), _result(1, audio=False), render_s=0.1)
    assert written.output_path.endswith(".png") and written.frames_written == 1
    assert Path(written.output_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_this_jobs_leftover_temporaries_are_removed(tmp_path: Path) -> None:
    layout = OutputLayout(tmp_path)
    mine, other = _job(9), _job(17)
    leftovers = []
    for job in (mine, other):
        for target in (layout.video(job), layout.sidecar(job)):
            target.parent.mkdir(parents=True, exist_ok=True)
            leftover = partial_path(target)
            leftover.write_bytes(b"torn")
            leftovers.append(leftover)
    JobFiles(layout, RUN).remove_partials(mine)
    assert [p.exists() for p in leftovers] == [False, False, True, True]


def test_the_encode_queue_runs_one_task_at_a_time_on_its_thread() -> None:
    queue = EncodeQueue()
    release = threading.Event()
    seen: list[str] = []

    def first() -> str:
        seen.append(threading.current_thread().name)
        release.wait(timeout=30)
        return "first"

    future = queue.submit(first)
    assert not future.done()
    release.set()
    second = queue.submit(lambda: "second")  # waits for `first` before starting
    assert future.done() and future.result() == "first"
    assert second.result(timeout=30) == "second"
    queue.shutdown()
    assert seen and seen[0].startswith("encode")
