"""The key tables are plain data a field reference can be generated from: every key has a known kind, a
default of that kind, and the defaults are the values a job really gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ltx2_batch.manifest.values import expect
from ltx2_batch.manifest.vocabulary import (
    AUDIO,
    BUILTIN_DEFAULTS,
    ELEMENT,
    GUIDER,
    IMAGE,
    JOB,
    KIND_WORDS,
    LORA,
    PROMPTS,
    RETAKE,
    SCALAR_KINDS,
    SCENE,
    SHOT_ONLY,
    STORYBOARD,
    SWEEP,
    TOP,
    UPSCALE,
    VIDEO,
    Section,
)
from tests.conftest import write_input_files
from tests.manifests import manifest_jobs


def _sections() -> dict[str, Section]:
    """Every table, the nested ones found through `Key.section` (each once), by the path it was met at."""
    found: dict[str, Section] = {}
    todo: list[tuple[str, Section]] = [("top", TOP), ("storyboard", STORYBOARD), ("shot", SHOT_ONLY)]
    while todo:
        path, section = todo.pop(0)
        if any(section is known for known in found.values()):
            continue
        found[path] = section
        todo += [(f"{path}.{name}", key.section) for name, key in section.items() if key.section is not None]
    return found


def test_every_key_has_a_described_kind_and_a_default_of_that_kind() -> None:
    sections = _sections()
    nested = (JOB, GUIDER, UPSCALE, IMAGE, LORA, VIDEO, AUDIO, RETAKE, PROMPTS, SWEEP, SCENE, ELEMENT)
    assert all(any(table is known for known in sections.values()) for table in nested)
    for path, section in sections.items():
        for name, key in section.items():
            assert key.kind in KIND_WORDS, f"{path}.{name}"
            if key.required or key.default is None:
                continue
            if key.kind in SCALAR_KINDS:
                assert expect(key.default, key.kind) is None, f"{path}.{name}"
            else:
                assert key.kind == "scale" and key.default is True, f"{path}.{name}"


def test_the_builtin_defaults_are_the_scalar_job_fields_with_a_constant_default() -> None:
    assert BUILTIN_DEFAULTS == {
        "negative_prompt": "",
        "width": 768,
        "height": 512,
        "num_frames": 121,
        "frame_rate": 24,
        "num_inference_steps": None,
        "pipeline": "auto",
        "audio": True,
        "enhance_prompt": False,
    }
    assert JOB["prompt"].required and not JOB["name"].required


def test_a_job_gets_the_table_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_input_files(tmp_path, ("a.png", "style.safetensors"))
    job = {
        "name": "j",
        "prompt": "a cat",
        "width": 64,
        "height": 64,
        "num_frames": 9,
        "images": [{"path": "a.png"}],
        "loras": [{"path": "style.safetensors"}],
    }
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"jobs": [job]}))
    (rendered,) = manifest_jobs(tmp_path / "m.yaml")
    image, lora = rendered.images[0], rendered.loras[0]
    assert (image.frame_idx, image.strength) == (IMAGE["frame_idx"].default, IMAGE["strength"].default)
    assert (lora.strength, lora.kind.value) == (LORA["strength"].default, LORA["type"].default)
    assert VIDEO["strength"].default == IMAGE["strength"].default
    assert (rendered.upscale.spatial, rendered.upscale.temporal) == (
        UPSCALE["spatial"].default,
        UPSCALE["temporal"].default,
    )
    assert rendered.negative_prompt == BUILTIN_DEFAULTS["negative_prompt"]
    assert rendered.frame_rate == BUILTIN_DEFAULTS["frame_rate"]


def test_the_field_reference_is_generated_from_the_tables() -> None:
    """docs/manifest.md's tables are `reference.field_reference()`: a key added, renamed or re-defaulted in
    vocabulary.py (or a kind restriction in select.USED_BY) fails here until the doc is regenerated
    (`python -m ltx2_batch.manifest.reference`)."""
    from ltx2_batch.manifest.reference import field_reference, generated_part

    doc = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"
    assert generated_part(doc.read_text()) == field_reference(), (
        "run: python -m ltx2_batch.manifest.reference"
    )


def test_every_nested_key_has_a_row_a_description_and_an_example() -> None:
    from ltx2_batch.manifest.reference import SECTIONS, field_reference

    text = field_reference()
    documented = [table for _heading, _field, table in SECTIONS]
    for path, section in _sections().items():
        assert any(section is table for table in documented), f"{path} has no table in docs/manifest.md"
        for name, key in section.items():
            assert key.doc and key.example, f"{path}.{name}"
            assert f"| `{name}` |" in text
