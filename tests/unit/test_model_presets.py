"""The LTX-2.3 presets through real Hydra: file discovery (newest version first, earlier versions and fp8 as
fallbacks), the missing-weights message with the right `hf download` commands and repositories, and the
family read from the checkpoint header (a mismatch is refused by name). Header-only safetensors files in tmp
dirs stand in for the 40 GB checkpoints; no torch."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest

from ltx2_batch.backends.factory import wants_fp8
from ltx2_batch.backends.models import resolve_model_files
from ltx2_batch.backends.weights import model_fingerprint
from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.families import CheckpointKind, ModelFamily
from ltx2_batch.errors import ConfigError, MissingWeightsError
from tests.conftest import compose_app

V23 = {"model_version": "2.3.1"}


def header_only(path: Path, metadata: dict[str, str] | None = None) -> Path:
    raw = json.dumps({"__metadata__": {"config": "{}", **(metadata or {})}}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def gemma(root: Path) -> None:
    header_only(root / "text_encoders/gemma3/model-00001-of-00005.safetensors")
    (root / "text_encoders/gemma3/tokenizer.model").write_bytes(b"spm")


def preset(name: str, root: Path) -> ModelConfig:
    return dataclasses.replace(compose_app(f"model={name}").model, root=str(root))


@pytest.mark.parametrize("name", ["ltx23_distilled", "ltx23_dev", "ltx23_fp8"])
def test_ltx23_presets_compose_as_ltx23_checkpoints(name: str) -> None:
    model = compose_app(f"model={name}").model
    assert model.family is ModelFamily.ltx23
    assert model.source is ModelSource.checkpoint
    assert all("ltx-2.3-22b" in c for c in model.checkpoints)
    assert wants_fp8(model) == (name == "ltx23_fp8")


@pytest.mark.parametrize("name", ["tiny", "ltx2_distilled", "ltx2_dev", "ltx2_fp8", "ltx2_random"])
def test_ltx2_presets_say_their_family(name: str) -> None:
    assert compose_app(f"model={name}").model.family is ModelFamily.ltx2


def test_missing_ltx23_distilled_message_names_the_ltx23_repository(tmp_path: Path) -> None:
    root = tmp_path / "models"
    with pytest.raises(MissingWeightsError) as err:
        resolve_model_files(preset("ltx23_distilled", root), tmp_path)
    text = str(err.value)
    ckpt = root / "checkpoints"
    for name in (
        "ltx-2.3-22b-distilled-1.1.safetensors",
        "ltx-2.3-22b-distilled.safetensors",
        "ltx-2.3-22b-distilled-fp8.safetensors",
        "ltx-2.3-22b-distilled-lora-384-1.1.safetensors",
        "ltx-2.3-22b-distilled-lora-384.safetensors",
    ):
        assert str(ckpt / name) in text, name
    assert str(root / "upscalers/ltx-2.3-spatial-upscaler-x2-1.0.safetensors") in text
    assert (
        "hf download Lightricks/LTX-2.3 ltx-2.3-22b-distilled-1.1.safetensors "
        f"ltx-2.3-22b-distilled-lora-384-1.1.safetensors --local-dir {ckpt}"
    ) in text
    assert (
        f"hf download Lightricks/LTX-2.3 ltx-2.3-spatial-upscaler-x2-1.1.safetensors "
        f"ltx-2.3-temporal-upscaler-x2-1.0.safetensors --local-dir {root / 'upscalers'}"
    ) not in text  # only required roles are fetched: the temporal upsampler is optional
    assert "hf download Lightricks/LTX-2.3 ltx-2.3-spatial-upscaler-x2-1.1.safetensors --local-dir" in text
    assert "hf download google/gemma-3-12b-it-qat-q4_0-unquantized --local-dir" in text
    assert "Lightricks/LTX-2 " not in text  # the old hint named the 19B repository
    assert "huggingface-cli" not in text
    # a twin that Lightricks never published is not looked for
    assert "distilled-1.1-fp8" not in text


def test_missing_ltx23_fp8_message_names_the_fp8_repository(tmp_path: Path) -> None:
    root = tmp_path / "models"
    with pytest.raises(MissingWeightsError) as err:
        resolve_model_files(preset("ltx23_fp8", root), tmp_path, require=("checkpoint",))
    text = str(err.value)
    assert (
        "hf download Lightricks/LTX-2.3-fp8 ltx-2.3-22b-distilled-fp8.safetensors "
        f"--local-dir {root / 'checkpoints'}"
    ) in text


def test_missing_ltx23_dev_message_downloads_dev_and_the_lora(tmp_path: Path) -> None:
    root = tmp_path / "models"
    with pytest.raises(MissingWeightsError) as err:
        resolve_model_files(preset("ltx23_dev", root), tmp_path)
    text = str(err.value)
    assert (
        "hf download Lightricks/LTX-2.3 ltx-2.3-22b-dev.safetensors "
        f"ltx-2.3-22b-distilled-lora-384-1.1.safetensors --local-dir {root / 'checkpoints'}"
    ) in text
    assert str(root / "checkpoints/ltx-2.3-22b-dev-fp8.safetensors") in text


def test_newest_version_preferred_then_earlier_then_fp8(tmp_path: Path) -> None:
    cfg = preset("ltx23_distilled", tmp_path)
    gemma(tmp_path)
    header_only(tmp_path / "upscalers/ltx-2.3-spatial-upscaler-x2-1.0.safetensors", V23)  # only 1.0 here
    header_only(tmp_path / "checkpoints/ltx-2.3-22b-distilled-lora-384.safetensors", V23)
    fp8 = header_only(tmp_path / "checkpoints/ltx-2.3-22b-distilled-fp8.safetensors", V23)
    files = resolve_model_files(cfg, tmp_path)
    assert files.checkpoint == fp8
    assert files.is_fp8
    assert files.distilled_lora == tmp_path / "checkpoints/ltx-2.3-22b-distilled-lora-384.safetensors"
    assert files.spatial_upsampler == tmp_path / "upscalers/ltx-2.3-spatial-upscaler-x2-1.0.safetensors"
    v10 = header_only(tmp_path / "checkpoints/ltx-2.3-22b-distilled.safetensors", V23)
    assert resolve_model_files(cfg, tmp_path).checkpoint == v10  # full precision before fp8
    v11 = header_only(tmp_path / "checkpoints/ltx-2.3-22b-distilled-1.1.safetensors", V23)
    header_only(tmp_path / "upscalers/ltx-2.3-spatial-upscaler-x2-1.1.safetensors", V23)
    files = resolve_model_files(cfg, tmp_path)
    assert files.checkpoint == v11
    assert files.spatial_upsampler == tmp_path / "upscalers/ltx-2.3-spatial-upscaler-x2-1.1.safetensors"
    assert (files.family, files.model_version, files.checkpoint_kind) == (
        ModelFamily.ltx23,
        "2.3.1",
        CheckpointKind.distilled,
    )


def test_a_dev_checkpoint_reads_as_dev(tmp_path: Path) -> None:
    gemma(tmp_path)
    header_only(tmp_path / "checkpoints/ltx-2.3-22b-dev.safetensors", V23)
    files = resolve_model_files(preset("ltx23_dev", tmp_path), tmp_path, require=("checkpoint",))
    assert files.checkpoint_kind is CheckpointKind.dev
    assert files.family is ModelFamily.ltx23


def test_a_checkpoint_of_another_family_is_refused_by_name(tmp_path: Path) -> None:
    gemma(tmp_path)
    # an LTX-2 (19B) file saved under the 2.3 name: its header has no 2.3 model_version
    header_only(tmp_path / "checkpoints/ltx-2.3-22b-dev.safetensors")
    with pytest.raises(ConfigError) as err:
        resolve_model_files(preset("ltx23_dev", tmp_path), tmp_path, require=("checkpoint",))
    text = str(err.value)
    assert "ltx-2.3-22b-dev.safetensors" in text
    assert "no model_version" in text
    assert "model=ltx23_dev" in text
    assert "model.family=ltx2" in text
    with pytest.raises(ConfigError, match="no model_version"):  # at planning time too (the job-id hash)
        model_fingerprint(preset("ltx23_dev", tmp_path), tmp_path)
    # and the other way round: a 2.3 checkpoint given to an LTX-2 preset
    header_only(tmp_path / "checkpoints/ltx-2-19b-dev.safetensors", V23)
    with pytest.raises(ConfigError, match=r"model_version '2\.3\.1'.*model\.family=ltx23"):
        resolve_model_files(preset("ltx2_dev", tmp_path), tmp_path, require=("checkpoint",))


def test_user_checkpoint_takes_the_preset_kind(tmp_path: Path) -> None:
    gemma(tmp_path)
    header_only(tmp_path / "checkpoints/my-finetune.safetensors", V23)
    cfg = dataclasses.replace(
        preset("ltx23_dev", tmp_path),
        checkpoints=["checkpoints/my-finetune.safetensors"],
        checkpoint_kind=CheckpointKind.dev,
    )
    files = resolve_model_files(cfg, tmp_path, require=("checkpoint",))
    assert files.checkpoint_kind is CheckpointKind.dev
    # a user's file name is fetched from model.hf_repo, the only repository the config names
    with pytest.raises(MissingWeightsError, match=r"hf download Lightricks/LTX-2\.3 my-other\.safetensors"):
        resolve_model_files(
            dataclasses.replace(cfg, checkpoints=["checkpoints/my-other.safetensors"]),
            tmp_path,
            require=("checkpoint",),
        )


def test_fingerprint_of_an_ltx23_preset_reads_headers(tmp_path: Path) -> None:
    cfg = preset("ltx23_distilled", tmp_path)
    gemma(tmp_path)
    header_only(tmp_path / "checkpoints/ltx-2.3-22b-distilled-1.1.safetensors", V23)
    first = model_fingerprint(cfg, tmp_path)
    header_only(tmp_path / "checkpoints/ltx-2.3-22b-distilled-1.1.safetensors", {"model_version": "2.3.2"})
    assert model_fingerprint(cfg, tmp_path) != first
