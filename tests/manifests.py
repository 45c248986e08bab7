"""Manifests in tests: loading one the way a run does, and the bad-manifest corpus with its input files.

`manifest_jobs` goes through the run path's API (`open_manifest`, then every job `iter_jobs` yields:
prompt-file rows and storyboard links included) rather than a test-only loader. The corpus
(tests/unit/bad_manifests/) is checked file by file in the unit tier and loaded whole, under memory and
CPU limits, in the integration tier. Plain functions, not fixtures.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.load import open_manifest
from ltx2_batch.manifest.select import ANY_WEIGHTS, WeightsOffer
from tests.conftest import write_input_files

CORPUS = Path(__file__).parent / "unit" / "bad_manifests"
CORPUS_FILES = sorted(CORPUS.glob("*.yaml"))
CORPUS_INPUTS = ("a.png", "b.png", "style.safetensors", "ic.safetensors", "ref.mp4")


def manifest_jobs(
    path: str | Path,
    *,
    chaining: ChainingConfig | None = None,
    paths: PathsConfig | None = None,
    model_fingerprint: str = "fp",
    seed_override: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    weights: WeightsOffer = ANY_WEIGHTS,
) -> tuple[RenderJob, ...]:
    """Every job of the manifest at `path`, each with its id; raises ManifestError as a run would."""
    stream = open_manifest(
        path,
        chaining=chaining or ChainingConfig(),
        paths=paths or PathsConfig(),
        model_fingerprint=model_fingerprint,
        seed_override=seed_override,
        limits=limits,
        weights=weights,
    )
    return tuple(stream.iter_jobs())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_hostile_inputs(folder: Path) -> None:
    """Files that exist and are named like media but are not usable: each must be refused by validation."""
    (folder / "text.png").write_text("this is a text file, not a PNG\n")
    (folder / "empty.png").write_bytes(b"")
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 10^10 RGB pixels declared
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    bomb += _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b"")
    (folder / "bomb.png").write_bytes(bomb)
    (folder / "notvideo.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")


def corpus_folder(tmp_path: Path) -> Path:
    """A folder holding the input files the corpus names, good and hostile (copy a corpus file into it)."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    write_input_files(folder, CORPUS_INPUTS)
    write_hostile_inputs(folder)
    return folder
