"""The bad-manifest corpus: each file in bad_manifests/ must fail with the messages its header expects.

A corpus file starts with one or more `# expect: <substring>` lines; the test copies it into a temp
folder holding the few input files the corpus names (a.png, b.png, style.safetensors, ic.safetensors,
ref.mp4, and the hostile ones: text.png, empty.png, bomb.png, notvideo.mp4), loads it, and checks every
expected substring appears in the ManifestError's text.

The hostile part of the corpus (alias bombs, 20000-deep nesting, a billion frames, decompression bombs)
is also loaded in a child process under an address-space and CPU-time limit: each must be refused with a
ManifestError, never a MemoryError, RecursionError or a hang.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

from ltx2_batch.errors import ManifestError
from tests.conftest import write_input_files
from tests.manifests import manifest_jobs

CORPUS = Path(__file__).parent / "bad_manifests"
FILES = sorted(CORPUS.glob("*.yaml"))
INPUTS = ("a.png", "b.png", "style.safetensors", "ic.safetensors", "ref.mp4")


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
    folder = tmp_path / "manifests"
    folder.mkdir()
    write_input_files(folder, INPUTS)
    write_hostile_inputs(folder)
    return folder


def expectations(path: Path) -> list[str]:
    return [
        line.split("# expect:", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect:")
    ]


def test_corpus_is_big_enough_and_every_file_expects_something() -> None:
    assert len(FILES) >= 20
    for path in FILES:
        assert expectations(path), f"{path.name} has no '# expect:' header"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bad_manifest_fails_with_expected_messages(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = corpus_folder(tmp_path)
    target = folder / path.name
    shutil.copy(path, target)
    with pytest.raises(ManifestError) as info:
        manifest_jobs(target)
    text = str(info.value)
    assert text.startswith(f"{len(info.value.problems)} problem(s)")
    for expected in expectations(path):
        assert expected in text, f"{path.name}: {expected!r} not in:\n{text}"
    assert all(p.source == str(target) for p in info.value.problems)


# Loads every corpus file in one child process whose address space and CPU time are capped: a refusal
# that needs gigabytes or minutes (an alias bomb walked whole, a 10^7-chunk plan) dies here instead.
_BOUNDED_LOADER = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (240, 240))
    from ltx2_batch.config import ChainingConfig, PathsConfig
    from ltx2_batch.errors import ManifestError
    from ltx2_batch.manifest.load import open_manifest
    out = {}
    for path in sys.argv[1:]:
        try:
            stream = open_manifest(
                path, chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="fp"
            )
            sum(1 for _ in stream.iter_jobs())
            out[path] = "accepted"
        except ManifestError as exc:
            out[path] = "refused" if len(str(exc)) < 20_000 else "refused with a huge message"
        except BaseException as exc:
            out[path] = type(exc).__name__
    print(json.dumps(out))
    """
)


def test_every_bad_manifest_is_refused_within_bounded_memory_and_cpu(tmp_path: Path) -> None:
    folder = corpus_folder(tmp_path)
    targets = [str(shutil.copy(path, folder / path.name)) for path in FILES]
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED_LOADER, *targets],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == dict.fromkeys(targets, "refused")


def test_a_long_value_is_quoted_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = corpus_folder(tmp_path)
    target = shutil.copy(CORPUS / "48_long_value_quoted_short.yaml", folder)
    with pytest.raises(ManifestError) as info:
        manifest_jobs(target)
    (problem,) = info.value.problems
    assert problem.message.endswith("w...") and len(problem.message) < 200
