"""The bad-manifest corpus: each file in bad_manifests/ must fail with the messages its header expects.

A corpus file starts with one or more `# expect: <substring>` lines; the test copies it into a temp
folder holding the few input files the corpus names (a.png, b.png, style.safetensors, ic.safetensors,
ref.mp4), loads it, and checks every expected substring appears in the ManifestError's text.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ltx2_batch.config import ChainingConfig, PathsConfig
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.load import load_manifest

CORPUS = Path(__file__).parent / "bad_manifests"
FILES = sorted(CORPUS.glob("*.yaml"))
INPUTS = ("a.png", "b.png", "style.safetensors", "ic.safetensors", "ref.mp4")


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
    folder = tmp_path / "manifests"
    folder.mkdir()
    for name in INPUTS:
        (folder / name).write_bytes(name.encode())
    target = folder / path.name
    shutil.copy(path, target)
    with pytest.raises(ManifestError) as info:
        load_manifest(target, chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="fp")
    text = str(info.value)
    assert text.startswith(f"{len(info.value.problems)} problem(s)")
    for expected in expectations(path):
        assert expected in text, f"{path.name}: {expected!r} not in:\n{text}"
    assert all(p.source == str(target) for p in info.value.problems)
