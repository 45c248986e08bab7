"""Model file discovery, fp8 fallback, the missing-weights message and the fingerprint. Torch-free."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest

from ltx2_batch.backends.models import checkpoint_candidates, resolve_model_files
from ltx2_batch.backends.weights import model_fingerprint
from ltx2_batch.config import ModelConfig, ModelSource, Quantization
from ltx2_batch.errors import MissingWeightsError

FULL = "checkpoints/ltx-2-19b-distilled.safetensors"
FP8 = "checkpoints/ltx-2-19b-distilled-fp8.safetensors"
OTHERS = (
    "checkpoints/ltx-2-19b-distilled-lora-384.safetensors",
    "upscalers/ltx-2-spatial-upscaler-x2-1.0.safetensors",
)


def write_safetensors(
    path: Path, metadata: dict[str, str] | None = None, payload: bytes = b"\0\0\0\0"
) -> Path:
    """A valid safetensors file with one 2-element bf16 tensor (no torch needed)."""
    header = {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, len(payload)]}}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


def install(root: Path, *rels: str, gemma: bool = True) -> None:
    for rel in rels:
        write_safetensors(root / rel, {"config": "{}"})
    if gemma:
        write_safetensors(root / "text_encoders/gemma3/model-00001-of-00002.safetensors")
        (root / "text_encoders/gemma3/tokenizer.model").write_bytes(b"spm")
        (root / "text_encoders/gemma3/config.json").write_text("{}")


def cfg(root: Path, **kw: object) -> ModelConfig:
    return ModelConfig(name="ltx2", source=ModelSource.checkpoint, root=str(root), **kw)  # type: ignore[arg-type]


def test_full_precision_preferred_over_fp8(tmp_path: Path) -> None:
    install(tmp_path, FULL, FP8, *OTHERS)
    files = resolve_model_files(cfg(tmp_path), tmp_path)
    assert files.checkpoint == tmp_path / FULL
    assert not files.is_fp8
    assert files.gemma_root == tmp_path / "text_encoders/gemma3"
    assert files.temporal_upsampler is None
    assert files.missing == ("temporal_upsampler",)


def test_fp8_fallback_when_only_fp8_present(tmp_path: Path) -> None:
    install(tmp_path, FP8, *OTHERS)
    files = resolve_model_files(cfg(tmp_path, checkpoints=[FULL]), tmp_path)  # the fp8 twin is looked for too
    assert files.checkpoint == tmp_path / FP8
    assert files.is_fp8


def test_fp8_refused_when_it_cannot_run(tmp_path: Path) -> None:
    install(tmp_path, FP8, *OTHERS)
    with pytest.raises(MissingWeightsError, match=r"ltx-2-19b-distilled\.safetensors"):
        resolve_model_files(cfg(tmp_path), tmp_path, allow_fp8=False)


def test_candidate_order_puts_every_full_file_first() -> None:
    names = ["checkpoints/b-fp8.safetensors", "checkpoints/a.safetensors"]
    assert checkpoint_candidates(names, allow_fp8=True) == [
        "checkpoints/a.safetensors",
        "checkpoints/b-fp8.safetensors",
        "checkpoints/a-fp8.safetensors",
    ]
    assert checkpoint_candidates(names, allow_fp8=False) == ["checkpoints/a.safetensors"]


def test_missing_weights_message_lists_every_path_and_the_fetch_commands(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        resolve_model_files(cfg(tmp_path / "models"), tmp_path)
    text = str(err.value)
    for rel in (FULL, FP8, *OTHERS, "text_encoders/gemma3"):
        assert str(tmp_path / "models" / rel) in text
    assert (
        f"hf download Lightricks/LTX-2 ltx-2-19b-distilled.safetensors "
        f"ltx-2-19b-distilled-lora-384.safetensors --local-dir {tmp_path / 'models' / 'checkpoints'}"
    ) in text
    assert "ltx-2-spatial-upscaler-x2-1.0.safetensors --local-dir" in text
    assert "--local-dir " + str(tmp_path / "models" / "text_encoders/gemma3") in text


def test_missing_only_what_is_required(tmp_path: Path) -> None:
    install(tmp_path, FULL)
    files = resolve_model_files(cfg(tmp_path), tmp_path, require=("checkpoint", "gemma_root"))
    with pytest.raises(MissingWeightsError) as err:
        files.require(("spatial_upsampler",))
    assert "spatial_upsampler" in str(err.value)
    assert "distilled_lora" not in str(err.value)


def test_fingerprint_is_stable_and_sensitive_to_headers_not_paths(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    install(a, FULL, *OTHERS)
    install(b, FULL, *OTHERS)
    first = model_fingerprint(cfg(a), tmp_path)
    assert first == model_fingerprint(cfg(a), tmp_path) == model_fingerprint(cfg(b), tmp_path)
    write_safetensors(b / FULL, {"config": '{"layers": 48}'})  # another model: header differs
    assert model_fingerprint(cfg(b), tmp_path) != first
    write_safetensors(a / "upscalers/ltx-2-temporal-upscaler-x2-1.0.safetensors")  # a new file joins the set
    assert model_fingerprint(cfg(a), tmp_path) != first


def test_fingerprint_reads_headers_only(tmp_path: Path) -> None:
    install(tmp_path, FULL, *OTHERS)
    before = model_fingerprint(cfg(tmp_path), tmp_path)
    path = tmp_path / FULL
    raw = bytearray(path.read_bytes())
    raw[-1] = 7  # same header and size, different tensor bytes: deliberately not hashed (40 GB files)
    path.write_bytes(bytes(raw))
    assert model_fingerprint(cfg(tmp_path), tmp_path) == before


def test_tiny_fingerprint_needs_no_build(tmp_path: Path) -> None:
    """(Nor torch: the unit tier's guard refuses the import.)"""
    assert len(model_fingerprint(ModelConfig(root=str(tmp_path)), Path())) == 16
    assert not (tmp_path / "tiny").exists()
    assert model_fingerprint(ModelConfig(seed=1), tmp_path) != model_fingerprint(
        ModelConfig(seed=0), tmp_path
    )


def test_random_model_fingerprint_covers_quantization_and_seed() -> None:

    base = ModelConfig(name="ltx2_random", source=ModelSource.random)
    variants = (
        base,
        dataclasses.replace(base, quantization=Quantization.fp8_cast),
        dataclasses.replace(base, quantization=Quantization.fp8_scaled),
        dataclasses.replace(base, seed=1),
    )
    assert len({model_fingerprint(cfg, Path()) for cfg in variants}) == 4
    # the recipe of the older settings is unchanged, so their job ids stay valid
    assert model_fingerprint(base, Path()) == "96f8812fcf97df1e"
    assert model_fingerprint(variants[1], Path()) == "88ba6bc46c4972c4"
