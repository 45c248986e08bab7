"""The bad-manifest corpus: each file in bad_manifests/ must fail with the messages its header expects.

A corpus file starts with one or more `# expect: <substring>` lines; the test copies it into a temp
folder holding the few input files the corpus names (a.png, b.png, style.safetensors, ic.safetensors,
ref.mp4, and the hostile ones: text.png, empty.png, bomb.png, notvideo.mp4), loads it, and checks every
expected substring appears in the ManifestError's text.

That the hostile part of the corpus (alias bombs, 20000-deep nesting, a billion frames, decompression
bombs) is refused within bounded memory and CPU time is checked in the integration tier
(tests/integration/test_manifest_bounds.py), which loads the whole corpus in one rlimited child process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ltx2_batch.errors import ManifestError
from tests.manifests import CORPUS, CORPUS_FILES, corpus_folder, manifest_jobs


def expectations(path: Path) -> list[str]:
    return [
        line.split("# expect:", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect:")
    ]


def test_corpus_is_big_enough_and_every_file_expects_something() -> None:
    assert len(CORPUS_FILES) >= 20
    for path in CORPUS_FILES:
        assert expectations(path), f"{path.name} has no '# expect:' header"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
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


def test_a_long_value_is_quoted_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = corpus_folder(tmp_path)
    target = shutil.copy(CORPUS / "48_long_value_quoted_short.yaml", folder)
    with pytest.raises(ManifestError) as info:
        manifest_jobs(target)
    (problem,) = info.value.problems
    assert problem.message.endswith("w...") and len(problem.message) < 200
