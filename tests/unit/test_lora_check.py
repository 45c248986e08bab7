"""LoRA files checked against the checkpoint's transformer from the two safetensors headers, on the driver,
before any job runs (backends/lora_check.py; docs/behaviour.md, "LoRA files"): a file with no tensors, one
made for another model, one whose pairs are shaped for other weights, refused naming the file, the job and
what is wrong; the embedded set's own LoRAs and `model=fake` (no transformer: no check) pass. The headers
are written by hand (8-byte length, JSON, zero bytes for the data)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import yaml

from ltx2_batch.backends.lora_check import LoraCheck, lora_key, lora_problem, transformer_weights
from ltx2_batch.config import ModelConfig, ModelSource
from ltx2_batch.core.families import CheckpointKind
from ltx2_batch.errors import ManifestError
from ltx2_batch.manifest.select import WeightsOffer
from ltx2_batch.run.planning import weights_offer
from tests.manifests import manifest_jobs

BLOCK = "transformer_blocks.{i}.attn1.to_{p}"
DIM, RANK = 8, 2


def write_safetensors(
    path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None
) -> Path:
    """A safetensors file with these tensors (F32, zeros) and metadata."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for key, shape in shapes.items():
        size = 4
        for n in shape:
            size *= n
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path


def checkpoint(path: Path) -> Path:
    """Two blocks of q/k/v projections, their biases, and a VAE key: an official-format checkpoint."""
    shapes: dict[str, tuple[int, ...]] = {"vae.decoder.conv_in.weight": (4, 4, 3, 3, 3)}
    for i in range(2):
        for p in "qkv":
            shapes[f"model.diffusion_model.{BLOCK.format(i=i, p=p)}.weight"] = (DIM, DIM)
            shapes[f"model.diffusion_model.{BLOCK.format(i=i, p=p)}.bias"] = (DIM,)
    return write_safetensors(path, shapes, {"config": "{}"})


def lora(path: Path, names: list[str], rank: int = RANK, out: int = DIM) -> Path:
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        shapes[f"diffusion_model.{name}.lora_A.weight"] = (rank, DIM)
        shapes[f"diffusion_model.{name}.lora_B.weight"] = (out, rank)
    return write_safetensors(path, shapes)


def test_the_renamings_read_the_transformer_and_lora_keys(tmp_path: Path) -> None:
    weights = transformer_weights(checkpoint(tmp_path / "ckpt.safetensors"))
    assert len(weights) == 12 and weights["transformer_blocks.0.attn1.to_q.weight"] == (DIM, DIM)
    assert "vae.decoder.conv_in.weight" not in weights
    assert lora_key("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight") == (
        "transformer_blocks.0.attn1.to_q.lora_A.weight"
    )


def test_what_is_refused_and_what_passes(tmp_path: Path) -> None:
    weights = transformer_weights(checkpoint(tmp_path / "ckpt.safetensors"))
    good = lora(tmp_path / "good.safetensors", [BLOCK.format(i=i, p=p) for i in range(2) for p in "qk"])
    assert lora_problem(good, weights, "m") is None
    empty = write_safetensors(tmp_path / "empty.safetensors", {}, {"format": "pt"})
    assert "has no tensors" in (lora_problem(empty, weights, "m") or "")
    other = lora(
        tmp_path / "other.safetensors", ["double_blocks.0.img_attn.qkv", "double_blocks.1.img_attn.qkv"]
    )
    message = lora_problem(other, weights, "ckpt.safetensors") or ""
    assert message.startswith("none of its 4 tensors is a lora_A/lora_B pair")
    assert "ckpt.safetensors's transformer" in message and "a LoRA for another model?" in message
    assert "'diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight'" in message
    half = lora(tmp_path / "half.safetensors", [BLOCK.format(i=0, p="q"), "double_blocks.0.img_attn.qkv"])
    assert (lora_problem(half, weights, "m") or "").startswith("2 of its 4 tensors are no lora_A/lora_B pair")
    lonely = write_safetensors(
        tmp_path / "lonely.safetensors",
        {f"diffusion_model.{BLOCK.format(i=0, p='q')}.lora_A.weight": (RANK, DIM)},
    )
    assert (lora_problem(lonely, weights, "m") or "").startswith("none of its 1 tensors")  # A without its B
    wide = lora(tmp_path / "wide.safetensors", [BLOCK.format(i=0, p="q")], out=2 * DIM)
    assert "make a 16x8 update of a 8x8 weight" in (lora_problem(wide, weights, "m") or "")
    text = tmp_path / "text.safetensors"
    text.write_bytes(b"not a safetensors file at all")
    assert (lora_problem(text, weights, "m") or "").startswith("is not a LoRA file")


def test_a_checkpoint_without_transformer_tensors_checks_nothing(tmp_path: Path) -> None:
    """The random sets' header-only checkpoints list no tensor: nothing to compare against."""
    placeholder = write_safetensors(tmp_path / "placeholder.safetensors", {}, {"config": "{}"})
    empty = write_safetensors(tmp_path / "empty.safetensors", {})
    assert LoraCheck(placeholder)(str(empty)) is None
    assert (
        LoraCheck(tmp_path / "absent.safetensors")(str(empty)) is None
    )  # its own problem is reported elsewhere


def _manifest(folder: Path, loras: list[str]) -> Path:
    jobs = [
        {
            "name": f"job{i}",
            "prompt": "a cat",
            "width": 64,
            "height": 64,
            "num_frames": 9,
            "loras": [{"path": p}],
        }
        for i, p in enumerate(loras)
    ]
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"jobs": jobs}))
    return path


def test_validation_refuses_naming_the_file_the_job_and_what_is_wrong(tmp_path: Path) -> None:
    ckpt = checkpoint(tmp_path / "ckpt.safetensors")
    lora(tmp_path / "good.safetensors", [BLOCK.format(i=0, p="q")])
    write_safetensors(tmp_path / "empty.safetensors", {}, {"format": "pt"})
    lora(tmp_path / "flux.safetensors", ["double_blocks.0.img_attn.qkv"])
    path = _manifest(tmp_path, ["good.safetensors", "empty.safetensors", "flux.safetensors"])
    offer = WeightsOffer(CheckpointKind.distilled, True, lora_check=LoraCheck(ckpt))
    with pytest.raises(ManifestError) as caught:
        manifest_jobs(path, weights=offer)
    found = {(p.job_name, p.field): p.render() for p in caught.value.problems}
    assert set(found) == {("job1", "loras[0].path"), ("job2", "loras[0].path")}
    assert "'empty.safetensors' has no tensors" in found["job1", "loras[0].path"]
    assert "'flux.safetensors' none of its 2 tensors" in found["job2", "loras[0].path"]
    [job] = manifest_jobs(_manifest(tmp_path, ["good.safetensors"]), weights=offer)
    assert job.loras[0].path.endswith("good.safetensors")


def test_which_models_the_driver_checks(tmp_path: Path) -> None:
    """Real checkpoints: yes, from the file the preset resolves to. model=fake has no transformer and the
    random sets' checkpoints list no tensor: no check. An embedded set the first run has not built yet is
    checked in the worker, before its model loads (test_lora_check.py in the integration tier)."""
    assert weights_offer(ModelConfig(name="fake", source=ModelSource.fake), tmp_path).lora_check is None
    random = ModelConfig(name="ltx2_random", source=ModelSource.random, root=str(tmp_path))
    assert weights_offer(random, tmp_path).lora_check is None
    assert weights_offer(ModelConfig(root=str(tmp_path / "unbuilt")), tmp_path).lora_check is None
    checkpoint(tmp_path / "checkpoints" / "ltx-2-19b-dev.safetensors")
    real = ModelConfig(
        name="ltx2_dev",
        source=ModelSource.checkpoint,
        root=str(tmp_path),
        checkpoints=["checkpoints/ltx-2-19b-dev.safetensors"],
    )
    check = weights_offer(real, tmp_path).lora_check
    assert check is not None
    empty = write_safetensors(tmp_path / "empty.safetensors", {})
    assert "has no tensors" in (check(str(empty)) or "")
    # model=fake takes any LoRA file, as before
    write_safetensors(tmp_path / "fake_run" / "empty.safetensors", {})
    fake = weights_offer(ModelConfig(name="fake", source=ModelSource.fake), tmp_path)
    assert manifest_jobs(_manifest(tmp_path / "fake_run", ["empty.safetensors"]), weights=fake)
