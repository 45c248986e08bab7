"""A chained job's resume state on disk, and the checks that decide whether a stored chunk can be trusted.

    <output_dir>/chunks/<job_id>/chunk_<i>.mkv           its kept frames, lossless (fed to the stitch again)
    <output_dir>/chunks/<job_id>/chunk_<i>.safetensors   stage1 / final / audio latents, kept audio samples
    <output_dir>/chunks/<job_id>/chunk_<i>.json          written last: counts and checksums of both files

A chunk is stored only when its record (`.json`) exists, and it is *used* only when everything the record
says still holds: both files have the recorded size and sha256, the frames file holds the kept frames the
chunk plan expects (counted on its packets), and the kept audio has the recorded sample count. Anything
else (a truncated frames file, flipped bytes in the latents, a record from another plan) raises
`ChunkStateError` naming the file and why: the caller discards that chunk and every later one and renders
again from there, so a damaged chunk heals on the next attempt instead of failing the job forever.

The latents are whatever arrays the backend returned: torch tensors from the LTX-2 adapter (bf16 included),
numpy arrays from the fake backend (`backends/fake.py`, which never imports torch). The state file's
metadata says which, so it loads back as the same kind. Every file is written atomically (temporary name,
then rename). Must not: decide when state is written or removed (chaining/run.py and the driver do).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.errors import MediaError
from ltx2_batch.media.probe import video_packet_count
from ltx2_batch.media.write import atomic_target, write_lossless_frames
from ltx2_batch.storage.layout import OutputLayout

_ARRAYS_KEY = "ltx2_batch.arrays"  # state metadata: "numpy" or "torch"
RECORD_VERSION = 1
_MAX_RECORD_BYTES = 64 << 10  # ours are a few hundred bytes: anything bigger is not one of ours


class ChunkSync(Protocol):
    """Where stored chunks are also kept (a bucket: storage/publish.py), told as chunks come and go."""

    def stored(self, paths: ChunkPaths) -> None:
        """A chunk's files were just stored (the record last); return once they are kept there too."""
        ...

    def discarded(self, job: RenderJob, first: int, count: int) -> None:
        """Chunks `first`..`count - 1` were discarded (damaged, or conditioned on a damaged one)."""
        ...


class ChunkStateError(Exception):
    """A stored chunk that cannot be trusted; the message names the file and what failed."""


@dataclass(frozen=True)
class ChunkPaths:
    """The three files of one stored chunk."""

    frames: Path
    state: Path
    record: Path

    @classmethod
    def of(cls, layout: OutputLayout, job: RenderJob, index: int) -> ChunkPaths:
        """The paths of chunk `index` of `job`, where the output layout puts them."""
        return cls(
            layout.chunk_media(job, index), layout.chunk_latent(job, index), layout.chunk_record(job, index)
        )

    def all(self) -> tuple[Path, Path, Path]:
        """The three files, the record (which marks the chunk stored) last."""
        return self.frames, self.state, self.record


@dataclass(frozen=True)
class StoredChunk:
    """A verified stored chunk: its latents (for the next chunk's handoff) and its kept audio."""

    latents: dict[str, Any]
    audio: tuple[np.ndarray, int] | None


def store_chunk(
    paths: ChunkPaths, kept: np.ndarray, latents: dict[str, Any], audio: tuple[np.ndarray, int] | None
) -> None:
    """Frames, then latents, then the record with their counts and checksums (last: marks it stored)."""
    write_lossless_frames(paths.frames, kept)
    save_chunk_state(paths.state, latents, audio)
    record = {
        "version": RECORD_VERSION,
        "kept_frames": int(kept.shape[0]),
        "audio_samples": int(audio[0].shape[1]) if audio is not None else None,
        "files": {path.name: _fingerprint(path) for path in (paths.frames, paths.state)},
    }
    with atomic_target(paths.record) as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True))


def load_chunk(paths: ChunkPaths, kept_frames: int) -> StoredChunk:
    """The stored chunk, checked against its record and against the chunk plan (`kept_frames`)."""
    record = _read_record(paths.record)
    if record.get("kept_frames") != kept_frames:
        raise ChunkStateError(
            f"{paths.record}: records {record.get('kept_frames')} kept frames, the chunk plan {kept_frames}"
        )
    files = record.get("files")
    for path in (paths.frames, paths.state):
        wanted = files.get(path.name) if isinstance(files, dict) else None
        if wanted is None:
            raise ChunkStateError(f"{paths.record}: names no checksum for {path.name}")
        found = _fingerprint(path)
        if found != wanted:
            raise ChunkStateError(f"{path}: {_difference(found, wanted)}; the stored chunk is damaged")
    try:
        counted = video_packet_count(paths.frames)
    except MediaError as exc:
        raise ChunkStateError(f"{paths.frames}: {exc}") from exc
    if counted != kept_frames:
        raise ChunkStateError(f"{paths.frames}: holds {counted} frames, the chunk plan keeps {kept_frames}")
    latents = load_chunk_state(paths.state)
    audio = stored_audio(latents)
    samples = audio[0].shape[1] if audio is not None else None
    if samples != record.get("audio_samples"):
        raise ChunkStateError(
            f"{paths.state}: {samples} kept audio samples, its record {record.get('audio_samples')}"
        )
    return StoredChunk(latents, audio)


def _read_record(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            raise ChunkStateError(f"{path}: {path.stat().st_size:,} bytes, not a chunk record")
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChunkStateError(f"{path}: unreadable chunk record ({exc})") from exc
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        raise ChunkStateError(f"{path}: not a chunk record of version {RECORD_VERSION}")
    return record


def _fingerprint(path: Path) -> dict[str, Any]:
    """{bytes, sha256} of a file ({} when it is missing or unreadable)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    except OSError:
        return {}


def _difference(found: dict[str, Any], wanted: dict[str, Any]) -> str:
    if not found:
        return "missing or unreadable"
    if found.get("bytes") != wanted.get("bytes"):
        return f"{found.get('bytes'):,} bytes, its record says {wanted.get('bytes')}"
    return "its sha256 differs from its record's"


def save_chunk_state(path: Path, latents: dict[str, Any], audio: tuple[np.ndarray, int] | None) -> None:
    """Latents (None entries dropped) and the chunk's kept audio samples, in one file written atomically."""
    tensors = {k: v for k, v in latents.items() if v is not None}
    numpy = all(isinstance(value, np.ndarray) for value in tensors.values())
    if audio is not None:
        samples, rate = np.ascontiguousarray(audio[0], dtype=np.float32), np.array([audio[1]], dtype=np.int64)
        tensors["kept_audio"], tensors["sample_rate"] = samples, rate
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        if numpy:
            from safetensors.numpy import save_file as save_numpy

            arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
            save_numpy(arrays, str(tmp), {_ARRAYS_KEY: "numpy"})
            return
        import torch
        from safetensors.torch import save_file as save_torch

        as_torch = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in tensors.items()}
        save_torch(
            {k: v.detach().cpu().contiguous() for k, v in as_torch.items()}, str(tmp), {_ARRAYS_KEY: "torch"}
        )


def load_chunk_state(path: Path) -> dict[str, Any]:
    """The tensors `save_chunk_state` wrote, as the same kind of arrays."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        kind = (handle.metadata() or {}).get(_ARRAYS_KEY, "torch")
    if kind == "numpy":
        from safetensors.numpy import load_file as load_numpy

        state: dict[str, Any] = load_numpy(str(path))
        return state
    from safetensors.torch import load_file as load_torch

    tensors: dict[str, Any] = load_torch(str(path))
    return tensors


def stored_audio(state: dict[str, Any]) -> tuple[np.ndarray, int] | None:
    """The kept audio samples and their rate from a loaded state (None when the chunk had no sound)."""
    if "kept_audio" not in state:
        return None
    samples = state["kept_audio"]
    array = samples if isinstance(samples, np.ndarray) else samples.numpy()
    return np.asarray(array), int(state["sample_rate"][0])


def channel_stats(latent: Any) -> tuple[Any, Any]:
    """Per-channel mean and std of a video latent [B, C, T, H, W]: what chaining.adain matches chunks to."""
    if isinstance(latent, np.ndarray):
        return latent.mean(axis=(0, 2, 3, 4)), latent.std(axis=(0, 2, 3, 4))
    return latent.mean(dim=(0, 2, 3, 4)), latent.std(dim=(0, 2, 3, 4), correction=0)


def discard_from(layout: OutputLayout, job: RenderJob, first: int, count: int) -> None:
    """Remove the stored state of chunks `first`..`count - 1`: the chunk that failed its check and every
    later one (they were conditioned on it)."""
    for index in range(first, count):
        for path in ChunkPaths.of(layout, job, index).all():
            path.unlink(missing_ok=True)
