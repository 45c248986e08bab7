"""The driver's LoRA check on full-size headers: a header-only LTX-2 19B checkpoint (every transformer tensor
of the official meta model, by name and shape, as Lightricks' file lists them) and a rank-384 LoRA over every
2-D weight of its transformer blocks (the size of the published distilled LoRA), then the same LoRA made for
another model. Prints the header sizes, the key counts and the seconds of a cold check (both headers parsed)
and a warm one (the checkpoint's header kept, as a run keeps it for every LoRA of its manifest).

Usage: python bench/lora_check.py
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from pathlib import Path

from ltx2_batch.backends.lora_check import LoraCheck, fused_weights, transformer_weights


def header_only(path: Path, shapes: dict[str, tuple[int, ...]]) -> int:
    """A safetensors header listing `shapes` (bf16) with no data after it: all the check reads."""
    header: dict[str, object] = {"__metadata__": {"config": "{}"}}
    offset = 0
    for key, shape in shapes.items():
        size = 2
        for n in shape:
            size *= n
        header[key] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return len(raw)


def transformer_shapes() -> dict[str, tuple[int, ...]]:
    from ltx2_batch.backends import compat

    compat.prepare()
    from ltx_core.model.transformer import LTXModelConfigurator

    from ltx2_batch.backends.random_weights import FULL_CONFIG, meta_state_shapes

    shapes = meta_state_shapes(LTXModelConfigurator, FULL_CONFIG)
    return {f"model.diffusion_model.{key}": shape for key, (shape, _, _) in shapes.items()}


def main() -> None:
    shapes = transformer_shapes()
    lora: dict[str, tuple[int, ...]] = {}
    for key, shape in shapes.items():
        name = key.removeprefix("model.diffusion_model.")
        if name.startswith("transformer_blocks.") and name.endswith(".weight") and len(shape) == 2:  # noqa: PLR2004 - matrices
            base = "diffusion_model." + name.removesuffix(".weight")
            lora[f"{base}.lora_A.weight"] = (384, shape[1])
            lora[f"{base}.lora_B.weight"] = (shape[0], 384)
    foreign = {key.replace("transformer_blocks.", "double_blocks."): shape for key, shape in lora.items()}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, good, other = (
            Path(tmp) / "ckpt.safetensors",
            Path(tmp) / "lora.safetensors",
            Path(tmp) / "o.safetensors",
        )
        sizes = [header_only(ckpt, shapes), header_only(good, lora), header_only(other, foreign)]
        print(f"checkpoint header {sizes[0] / 1e6:.2f} MB, {len(shapes)} transformer tensors")
        print(f"LoRA header {sizes[1] / 1e6:.2f} MB, {len(lora)} tensors, rank 384")
        t0 = time.perf_counter()
        check = LoraCheck(ckpt)
        verdict = check(str(good))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        refusal = check(str(other))
        warm = time.perf_counter() - t0
        pairs = len(fused_weights(good, transformer_weights(ckpt)))
        print(f"cold check (both headers): {cold * 1e3:.0f} ms -> {verdict!r}, {pairs} weights paired")
        print(f"another model's LoRA, checkpoint header kept: {warm * 1e3:.0f} ms -> {refusal[:90]!r}...")


if __name__ == "__main__":
    main()
