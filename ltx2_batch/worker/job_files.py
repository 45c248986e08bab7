"""A job's files: the MP4 (or PNG), thumbnail and sidecar, written from decoded arrays. No model involved.

Owns the order that makes completion observable: each file is written to a temporary name and renamed into
place, and the sidecar comes last, so a job whose sidecar exists has every file. Also removes the temporaries
a killed earlier attempt of the same job left behind. Safe to call on a background thread (it touches no
model), which is how the executor overlaps one job's writing with the next job's render.
Must not: render, or write the ledger (the driver does).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ltx2_batch.backends.base import RenderResult
from ltx2_batch.core.jobs import RenderJob, RenderMode, canonical_json
from ltx2_batch.core.outcome import ChunkOutcome
from ltx2_batch.errors import MediaError
from ltx2_batch.media.probe import VideoCount
from ltx2_batch.media.sidecar import write_sidecar
from ltx2_batch.media.write import PARTIAL_SUFFIX, partials_of, write_mp4, write_png, write_thumbnail
from ltx2_batch.storage.checksum import file_record
from ltx2_batch.storage.layout import OutputLayout
from ltx2_batch.storage.verify import Expected, tracks_problem


@dataclass(frozen=True)
class WrittenFiles:
    """What `JobFiles` wrote for one job: paths, the frame count read back from the file, timings."""

    output_path: str
    thumbnail_path: str
    sidecar_path: str
    frames_written: int
    duration_s: float
    render_s: float
    encode_s: float
    device: str
    memory_policy: str
    phases: dict[str, float]
    chunks: tuple[ChunkOutcome, ...]
    frame_rate: float  # of the written file (a temporally upscaled clip runs at twice the job's rate)
    model_family: str | None = None
    model_version: str | None = None
    recipe_steps: int | None = None  # stage-1 denoising steps that ran
    recipe_guidance: bool | None = None  # CFG/STG on in stage 1
    recipe_stage_2_lora: bool | None = None  # the distilled LoRA on the stage-2 transformer


@dataclass(frozen=True)
class JobFiles:
    """Writes jobs' files under `layout`; `run_fields` go into every sidecar (run id, model, manifest)."""

    layout: OutputLayout
    run_fields: dict[str, Any]
    video_crf: int = 18
    thumbnail_width: int = 320
    count: VideoCount = VideoCount.packets  # how a written video's frames are counted (verify=full: decoded)
    # the sidecar also records each file's bytes and sha256 (`files`): a run dir on object storage, where
    # they are what the upload is confirmed against and what a later check of the objects compares
    checksums: bool = False

    def remove_partials(self, job: RenderJob) -> None:
        """Temporaries left by an earlier attempt of this job that was killed (SIGKILL skips `finally`).
        Only this job's own targets: another worker's in-flight temporaries are never touched."""
        for target in (self.layout.video(job), self.layout.thumbnail(job), self.layout.sidecar(job)):
            for leftover in partials_of(target):
                leftover.unlink(missing_ok=True)
        chunks = self.layout.chunk_dir(job)  # a chained job's chunk files are its own too
        if job.is_chained and chunks.is_dir():
            for leftover in chunks.glob(f".*{PARTIAL_SUFFIX}"):
                leftover.unlink(missing_ok=True)

    def write_window(self, job: RenderJob, result: RenderResult, render_s: float) -> WrittenFiles:
        """The files of a one-window job (a video, or a PNG for one frame); the sidecar last."""
        t0 = time.perf_counter()
        out = self.layout.video(job)
        if job.mode is RenderMode.IMAGE:
            write_png(out, result.frames[0])
            frames = 1
        else:
            info = write_mp4(
                out,
                result.frames,
                result.frame_rate,
                audio=result.audio if job.audio else None,
                sample_rate=result.sample_rate if job.audio else None,
                crf=self.video_crf,
                count=self.count,
            )
            frames = info.frame_count
        write_thumbnail(self.layout.thumbnail(job), result.frames[0], width=self.thumbnail_width)
        return self.finish(job, result, frames, render_s, time.perf_counter() - t0, ())

    def write_thumbnail(self, job: RenderJob, first_frame: np.ndarray) -> None:
        """The job's JPEG thumbnail from `first_frame` (a chained job's first chunk), at the set width."""
        write_thumbnail(self.layout.thumbnail(job), first_frame, width=self.thumbnail_width)

    def finish(
        self,
        job: RenderJob,
        result: RenderResult,
        frames: int,
        render_s: float,
        encode_s: float,
        chunks: tuple[ChunkOutcome, ...],
        *,
        chunk_files_kept: bool = True,
    ) -> WrittenFiles:
        """Write the sidecar (last: its presence marks the job's files complete) and describe the files. A
        chained job's sidecar describes every chunk (prompt, seed, timings, handoff sizes), and its chunk
        files only when they are kept. Before the sidecar, the file is checked against the job itself (its
        frames and sound, from its own sample tables): a short file is a failure, never done."""
        self.check_against_job(job, frames)
        sidecar = self.layout.sidecar(job)
        # The file's own rate, not the job's: the temporal upsampler doubles frames and rate together.
        rate = float(result.frame_rate or job.frame_rate)
        payload = {
            "job_id": job.job_id,
            "name": job.name,
            "params": canonical_json(job),
            "tags": dict(job.tags),
            "frames_written": frames,
            "duration_s": frames / rate,
            "frame_rate": rate,
            "output": os.path.relpath(self.layout.video(job), self.layout.root),
            "thumbnail": os.path.relpath(self.layout.thumbnail(job), self.layout.root),
            "timings": {"render_s": render_s, "encode_s": encode_s, **result.timings},
            "backend": result.info,
            "chunks": [chunk.as_dict(files_kept=chunk_files_kept) for chunk in chunks],
            **self.run_fields,
        }
        if self.checksums:
            payload["files"] = {
                os.path.relpath(path, self.layout.root): file_record(path)
                for path in (self.layout.video(job), self.layout.thumbnail(job))
            }
        write_sidecar(sidecar, payload)
        return WrittenFiles(
            output_path=str(self.layout.video(job)),
            thumbnail_path=str(self.layout.thumbnail(job)),
            sidecar_path=str(sidecar),
            frames_written=frames,
            duration_s=frames / rate,
            render_s=render_s,
            encode_s=encode_s,
            device=str(result.info.get("device", "")),
            memory_policy=str(result.info.get("memory_policy", "")),
            phases=dict(result.timings),
            chunks=chunks,
            frame_rate=rate,
            **_recipe_facts(result.info),
        )

    def check_against_job(self, job: RenderJob, frames: int) -> None:
        """MediaError when the written file does not hold what `job` asks for: `frames` (counted on the file
        by the writer) must be the job's output frames, and an MP4's own tracks must agree (sound included).
        A chained job resumed from damaged chunk frames, or a clip the encoder cut short, stops here."""
        expected = Expected.of(job)
        out = self.layout.video(job)
        if frames != expected.frames:
            raise MediaError(f"{out.name} holds {frames} frames, the job asks for {expected.frames}")
        problem = tracks_problem(out, expected) if out.suffix == ".mp4" else None
        if problem:
            raise MediaError(f"{out.name} {problem}")


def _recipe_facts(info: dict[str, Any]) -> dict[str, Any]:
    """The model and recipe facts the ledger keeps, from the backend's sidecar info (absent: None)."""
    recipe = info.get("recipe") or {}
    return {
        "model_family": info.get("model_family"),
        "model_version": info.get("model_version"),
        "recipe_steps": recipe.get("stage_1_steps"),
        "recipe_guidance": recipe.get("guidance"),
        "recipe_stage_2_lora": recipe.get("stage_2_distilled_lora"),
    }
