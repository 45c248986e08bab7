"""Model families: version -> family, names -> kind, the auto recipe, published names and download commands,
window validation, and reading family/version/format from a header-only checkpoint. Torch-free."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ltx2_batch.backends.checkpoint_info import checkpoint_info, read_safetensors_metadata
from ltx2_batch.core.families import (
    DISTILLED_STEPS,
    FAMILIES,
    CheckpointKind,
    ModelFamily,
    RecipeKind,
    auto_recipe,
    check_chunk_frames,
    earlier_versions,
    family_for_version,
    family_of_file,
    hf_download_command,
    kind_from_name,
    repo_for_file,
    spec,
)
from ltx2_batch.core.jobs import PipelineKind
from ltx2_batch.errors import ConfigError


def header_only(path: Path, metadata: dict[str, str]) -> Path:
    """A safetensors file holding only a header (metadata, no tensors), as a checkpoint's header reads."""
    raw = json.dumps({"__metadata__": metadata}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


@pytest.mark.parametrize(
    ("version", "family"),
    [
        ("2.3.0", ModelFamily.ltx23),
        ("2.3.1", ModelFamily.ltx23),
        ("2.3", ModelFamily.ltx23),
        (" 2.3.0 ", ModelFamily.ltx23),
        ("", ModelFamily.ltx2),
        ("2.0.0", ModelFamily.ltx2),
        ("2.30", ModelFamily.ltx23),  # the official rule is a prefix test; we follow it, not improve on it
        ("1.0", ModelFamily.ltx2),
    ],
)
def test_family_follows_the_official_version_prefix_rule(version: str, family: ModelFamily) -> None:
    assert family_for_version(version) is family


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ltx-2.3-22b-distilled-1.1.safetensors", CheckpointKind.distilled),
        ("ltx-2.3-22b-distilled.safetensors", CheckpointKind.distilled),
        ("ltx-2.3-22b-distilled-fp8.safetensors", CheckpointKind.distilled),
        ("checkpoints/ltx-2-19b-distilled.safetensors", CheckpointKind.distilled),
        ("ltx-2.3-22b-dev.safetensors", CheckpointKind.dev),
        ("ltx-2-19b-dev-fp8.safetensors", CheckpointKind.dev),
        ("ltx-2-tiny-distilled.safetensors", CheckpointKind.distilled),
        ("ltx-2.3-22b-distilled-lora-384-1.1.safetensors", None),  # a LoRA is no checkpoint kind
        ("my_finetune.safetensors", None),
        ("devil-may-cry.safetensors", None),  # "dev" must be a whole name part
    ],
)
def test_kind_from_published_names(name: str, kind: CheckpointKind | None) -> None:
    assert kind_from_name(name) is kind


def test_auto_recipe_distilled_is_eight_steps_without_guidance_or_lora() -> None:
    for family in ModelFamily:
        recipe = auto_recipe(family, CheckpointKind.distilled)
        assert recipe.kind is RecipeKind.distilled
        assert recipe.pipeline is PipelineKind.DISTILLED
        assert recipe.stage_1_steps == DISTILLED_STEPS == 8
        assert not recipe.guidance
        assert not recipe.stage_2_distilled_lora


def test_auto_recipe_dev_is_guided_two_stage_with_the_family_steps() -> None:
    ltx2 = auto_recipe(ModelFamily.ltx2, CheckpointKind.dev)
    ltx23 = auto_recipe(ModelFamily.ltx23, CheckpointKind.dev)
    assert ltx2.pipeline is ltx23.pipeline is PipelineKind.TI2VID
    assert ltx2.guidance and ltx23.guidance
    assert ltx2.stage_2_distilled_lora and ltx23.stage_2_distilled_lora
    assert (ltx2.stage_1_steps, ltx23.stage_1_steps) == (40, 30)


def test_family_defaults_differ_where_the_package_says() -> None:
    ltx2, ltx23 = spec(ModelFamily.ltx2), spec(ModelFamily.ltx23)
    assert ltx2.params.video_guidance.stg_blocks == (29,)
    assert ltx23.params.video_guidance.stg_blocks == ltx23.params.audio_guidance.stg_blocks == (28,)
    assert ltx23.hq_params is not None
    assert ltx23.hq_params.num_inference_steps == 15
    assert (ltx23.hq_params.stage_1_height, ltx23.hq_params.stage_1_width) == (544, 960)
    assert (ltx2.audio_sample_rate, ltx23.audio_sample_rate) == (24_000, 48_000)
    assert (ltx2.size, ltx23.size) == ("19B", "22B")


def test_windows_are_8k_plus_1_and_ltx2_keeps_121() -> None:
    assert spec(ModelFamily.ltx2).window_frames == 121
    for family_spec in FAMILIES.values():
        assert (family_spec.window_frames - 1) % 8 == 0
    # 20 s at 24 fps, rounded down to the latent grid
    assert spec(ModelFamily.ltx23).window_frames == 481


def test_chunk_frames_check_names_the_family_window_and_fix() -> None:
    assert check_chunk_frames(ModelFamily.ltx2, 121) is None
    assert check_chunk_frames(ModelFamily.ltx23, 481) is None
    assert check_chunk_frames(ModelFamily.ltx23, 241) is None
    too_long = check_chunk_frames(ModelFamily.ltx2, 241)
    assert too_long is not None
    assert "LTX-2 window of 121" in too_long
    assert "chaining.chunk_frames" in too_long
    off_grid = check_chunk_frames(ModelFamily.ltx23, 100)
    assert off_grid is not None
    assert "97 or 105" in off_grid


def test_published_names_newest_first_and_earlier_versions() -> None:
    files = spec(ModelFamily.ltx23).files
    assert dict(files.checkpoints)[CheckpointKind.distilled][0] == "ltx-2.3-22b-distilled-1.1.safetensors"
    assert earlier_versions("ltx-2.3-22b-distilled-1.1.safetensors") == ("ltx-2.3-22b-distilled.safetensors",)
    assert earlier_versions("checkpoints/ltx-2.3-22b-distilled-lora-384-1.1.safetensors") == (
        "ltx-2.3-22b-distilled-lora-384.safetensors",
    )
    assert earlier_versions("ltx-2.3-spatial-upscaler-x2-1.1.safetensors") == (
        "ltx-2.3-spatial-upscaler-x2-1.0.safetensors",
    )
    assert earlier_versions("ltx-2.3-22b-distilled.safetensors") == ()  # already the oldest
    assert earlier_versions("ltx-2-19b-distilled.safetensors") == ()
    assert earlier_versions("mine.safetensors") == ()


def test_every_published_name_belongs_to_one_family() -> None:
    for family, family_spec in FAMILIES.items():
        for name in family_spec.files.all_names():
            assert family_of_file(name) is family, name
            assert name.endswith(".safetensors")
    assert family_of_file("mine.safetensors") is None


def test_fp8_files_of_ltx23_come_from_their_own_repository() -> None:
    fp8 = "ltx-2.3-22b-distilled-fp8.safetensors"
    assert repo_for_file(ModelFamily.ltx23, fp8) == "Lightricks/LTX-2.3-fp8"
    assert repo_for_file(ModelFamily.ltx23, "ltx-2.3-22b-distilled-1.1.safetensors") == "Lightricks/LTX-2.3"
    assert repo_for_file(ModelFamily.ltx2, "ltx-2-19b-distilled-fp8.safetensors") == "Lightricks/LTX-2"


def test_download_command_is_hf_download() -> None:
    command = hf_download_command(
        "Lightricks/LTX-2.3", ["ltx-2.3-22b-dev.safetensors", "x.safetensors"], "models/checkpoints"
    )
    assert command == (
        "hf download Lightricks/LTX-2.3 ltx-2.3-22b-dev.safetensors x.safetensors "
        "--local-dir models/checkpoints"
    )


def test_checkpoint_info_reads_a_2_3_header(tmp_path: Path) -> None:
    config = {
        "transformer": {
            "apply_gated_attention": True,
            "cross_attention_adaln": True,
            "caption_proj_before_connector": True,
        },
        "vocoder": {"vocoder": {}, "bwe": {"output_sampling_rate": 48000}},
    }
    path = header_only(
        tmp_path / "ltx-2.3-22b-distilled-1.1.safetensors",
        {"config": json.dumps(config), "model_version": "2.3.1"},
    )
    info = checkpoint_info(path)
    assert info.family is ModelFamily.ltx23
    assert info.model_version == "2.3.1"
    assert info.kind is CheckpointKind.distilled
    assert info.has_2_3_format
    assert info.vocoder_bwe


def test_checkpoint_info_of_a_versionless_ltx2_header_and_expected_kind(tmp_path: Path) -> None:
    path = header_only(tmp_path / "finetune.safetensors", {"config": json.dumps({"transformer": {}})})
    info = checkpoint_info(path, expected_kind=CheckpointKind.dev)
    assert info.family is ModelFamily.ltx2
    assert info.model_version == ""
    assert info.kind is CheckpointKind.dev  # the name says nothing: the caller's expectation
    assert not info.has_2_3_format
    assert not info.vocoder_bwe


def test_header_reader_refuses_a_non_safetensors_file_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\0\0\0\0\0\0\0not json at all!")
    with pytest.raises(ConfigError, match=r"broken\.safetensors"):
        read_safetensors_metadata(bad)
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"abc")
    with pytest.raises(ConfigError, match="too short"):
        read_safetensors_metadata(short)
