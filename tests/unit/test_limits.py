"""Bounded validation: limits, short quoting, hostile paths, names and prompt files (pure, no model)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from ltx2_batch.config import ChainingConfig, LimitsConfig, PathsConfig
from ltx2_batch.core.jobs import RenderJob
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.document import parse_yaml
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits, limits_from
from ltx2_batch.manifest.names import valid_name
from ltx2_batch.manifest.paths import InputRoots, resolve_input_path
from ltx2_batch.manifest.prompts import check_prompts, iter_prompts, open_prompt_source
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.select import chunk_count, chunk_estimate
from tests.conftest import write_input_files
from tests.manifests import manifest_jobs

JOB = {"name": "j", "prompt": "a cat", "width": 64, "height": 64, "num_frames": 9}


def _load(
    folder: Path, doc: dict, *, chaining: ChainingConfig | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[RenderJob, ...]:
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return manifest_jobs(path, chaining=chaining, limits=limits)


def _problems(
    folder: Path, doc: dict, *, chaining: ChainingConfig | None = None, limits: Limits = DEFAULT_LIMITS
) -> dict[str, str]:
    with pytest.raises(ManifestError) as info:
        _load(folder, doc, chaining=chaining, limits=limits)
    return {p.field: p.message for p in info.value.problems}


def test_the_limits_config_group_mirrors_limits() -> None:
    assert [f.name for f in fields(LimitsConfig)] == [f.name for f in fields(Limits)]
    assert limits_from(LimitsConfig()) == DEFAULT_LIMITS
    assert limits_from(LimitsConfig(max_width=8192)).max_width == 8192


def test_quote_is_short_on_shared_structures_huge_strings_and_ints() -> None:
    shared: list = [1] * 10
    for _ in range(40):  # 10^40 leaves if walked whole
        shared = [shared] * 10
    assert len(quote(shared)) <= 80 and quote(shared).endswith("...")
    assert len(quote("x" * 10**7)) <= 80
    assert quote(10**5000).startswith("<an integer of")
    assert quote({"a": 1, "b": [1, 2]}) == "{'a': 1, 'b': [1, 2]}"


def test_a_raised_limit_lets_a_job_through(tmp_path: Path) -> None:
    big = {**JOB, "width": 8192, "height": 64}
    assert "width" in _problems(tmp_path, {"jobs": [big]})
    assert _load(tmp_path, {"jobs": [big]}, limits=Limits(max_width=8192))[0].width == 8192


def test_the_chunk_limit_uses_the_chaining_config(tmp_path: Path) -> None:
    doc = {"jobs": [{**JOB, "num_frames": 5001}]}
    tiny_chunks = ChainingConfig(chunk_frames=9, overlap_frames=1)
    message = _problems(tmp_path, doc, chaining=tiny_chunks)["num_frames"]
    assert "chains into 625 or more chunks" in message and "limits.max_chunks" in message
    assert len(_load(tmp_path, doc)) == 1  # the default chunk of 121 frames: 52 chunks


@pytest.mark.parametrize(("chunk", "overlap"), [(121, 24), (121, 25), (17, 8), (9, 1), (33, 9)])
def test_the_chunk_estimate_is_the_planner_count_or_one_less(chunk: int, overlap: int) -> None:
    for frames in range(1, 1200, 7):
        assert 0 <= chunk_count(frames, chunk, overlap) - chunk_estimate(frames, chunk, overlap) <= 1


def test_nesting_and_aliases_are_bounded_before_construction() -> None:
    with pytest.raises(ManifestError, match="nesting deeper than 64 levels"):
        parse_yaml(b"jobs: " + b"[" * 20_000 + b"]" * 20_000, "m.yaml")
    parse_yaml(b"jobs: " + b"[" * 60 + b"]" * 60, "m.yaml")  # deep but within the limit
    # Ordinary anchors (one tags block shared by jobs) stay allowed
    doc = parse_yaml(b"jobs: [{tags: &t {a: b}, name: x}, {tags: *t, name: y}]\n", "m.yaml")
    assert doc["jobs"][1] == {"tags": {"a": "b"}, "name": "y"}
    with pytest.raises(ManifestError, match="over the limit of 10 "):
        parse_yaml(b"jobs: [1, 2, 3]", "m.yaml", Limits(max_manifest_bytes=10))


def test_upper_case_http_is_a_url_and_a_percent_nul_is_refused(tmp_path: Path) -> None:
    (tmp_path / "projects" / "p").mkdir(parents=True)
    (tmp_path / "projects" / "p" / "a.png").write_bytes(b"x")
    roots = InputRoots.for_manifest(tmp_path / "m.yaml", PathsConfig(), tmp_path)
    found = resolve_input_path("HTTP://host/projects/p/a.png", roots)
    assert found.ok and found.path == str((tmp_path / "projects" / "p" / "a.png").resolve())
    assert resolve_input_path("Https://host/projects/p/a.png", roots).ok
    assert "NUL" in resolve_input_path("http://host/projects/p/a%00.png", roots).error
    assert "unsupported URL scheme" in resolve_input_path("FTP://host/a.png", roots).error


@pytest.mark.parametrize(
    "name", ["a\u202eb", "a\u2066b", "a\u200bb", "a\x7fb", "a\x85b", "a\u2028b", "x" * 201, ".", "a/b"]
)
def test_names_with_hidden_characters_are_refused(name: str) -> None:
    assert not valid_name(name)


def test_ordinary_names_stay_valid() -> None:
    assert all(valid_name(n) for n in ("cat", "café ☕", "猫の動画", "shot-01_v2", "x" * 200))


def _txt(tmp_path: Path, data: bytes, **limits: int) -> object:
    (tmp_path / "p.txt").write_bytes(data)
    source, problems = open_prompt_source({"path": "p.txt"}, tmp_path, limits=Limits(**limits))
    assert problems == [] and source is not None
    return source


def test_a_prompt_line_over_the_cap_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    source = _txt(tmp_path, b"ok\n" + b"a" * 5000, max_prompt_line_bytes=1000)
    with pytest.raises(ManifestError, match="line 2 is longer than 1,000 bytes"):
        check_prompts(source)


def test_invalid_utf8_deep_in_a_file_names_its_line(tmp_path: Path) -> None:
    source = _txt(tmp_path, b"a cat\n" * 10_000 + b"caf\xe9\n")
    with pytest.raises(ManifestError, match=r"line 10001 is not valid UTF-8"):
        check_prompts(source)


def test_a_nul_or_an_overlong_prompt_row_is_refused_with_its_row(tmp_path: Path) -> None:
    source = _txt(tmp_path, b"a cat\nbad\x00row\n")
    with pytest.raises(ManifestError, match="row 1: the prompt contains a NUL"):
        list(iter_prompts(source))
    source = _txt(tmp_path, b"a cat\n" + b"b" * 50 + b"\n", max_prompt_chars=20)
    with pytest.raises(ManifestError, match="row 1: the prompt is 50 characters"):
        list(iter_prompts(source))


def test_a_csv_row_over_the_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("prompt\n" + "a" * (3 << 20) + "\n")
    source, problems = open_prompt_source({"path": "p.csv"}, tmp_path)
    if source is not None:  # the header fits the first block: the long row fails while streaming
        with pytest.raises(ManifestError, match=r"limits\.max_prompt_line_bytes"):
            check_prompts(source)
    else:
        assert "limits.max_prompt_line_bytes" in problems[0][1]


def test_a_prompts_file_under_an_allowed_root_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "caps.txt").write_text("a red fox\n")
    folder = tmp_path / "manifests"
    write_input_files(folder, ())
    doc = {
        "jobs": [{**JOB, "prompt": "{prompt}", "prompts": {"path": str(tmp_path / "shared" / "caps.txt")}}]
    }
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError, match="outside the allowed folders"):
        manifest_jobs(folder / "m.yaml", model_fingerprint="f")
    jobs = manifest_jobs(
        folder / "m.yaml", paths=PathsConfig(allowed_roots=["shared"]), model_fingerprint="f"
    )
    assert [j.prompt for j in jobs] == ["a red fox"]


def test_a_real_image_and_video_pass_and_a_big_image_is_refused(tmp_path: Path) -> None:
    write_input_files(tmp_path, ("a.png", "ic.safetensors", "ref.mp4"))
    jobs = _load(tmp_path, {"jobs": [{**JOB, "images": [{"path": "a.png"}]}]})
    assert jobs[0].images[0].path.endswith("a.png")
    video = {
        **JOB,
        "loras": [{"path": "ic.safetensors", "type": "ic_lora"}],
        "video_conditioning": [{"path": "ref.mp4"}],
    }
    assert len(_load(tmp_path, {"jobs": [video]})) == 1
    message = _problems(
        tmp_path, {"jobs": [{**JOB, "images": [{"path": "a.png"}]}]}, limits=Limits(max_image_pixels=100)
    )
    assert "is 16x16 (256 pixels), over the limit of 100" in message["images[0].path"]
