"""A chained job's resume state on disk: one safetensors file per finished chunk, in the backend's arrays.

    <output_dir>/chunks/<job_id>/chunk_<i>.safetensors   stage1 / final / audio latents, kept audio samples

The latents are whatever arrays the backend returned: torch tensors from the LTX-2 adapter (bf16 included),
numpy arrays from the fake backend (`backends/fake.py`, which never imports torch). The file's metadata says
which, so it loads back as the same kind. Written atomically (temporary name, then rename): a file that
exists is complete. Must not: decide when state is written or removed (chaining/run.py and the driver do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ltx2_batch.media.write import atomic_target

_ARRAYS_KEY = "ltx2_batch.arrays"  # metadata: "numpy" or "torch"


def _is_numpy(tensors: dict[str, Any]) -> bool:
    return all(isinstance(value, np.ndarray) for value in tensors.values())


def save_chunk_state(path: Path, latents: dict[str, Any], audio: tuple[np.ndarray, int] | None) -> None:
    """Latents (None entries dropped) and the chunk's kept audio samples, in one file written atomically."""
    tensors = {k: v for k, v in latents.items() if v is not None}
    numpy = _is_numpy(tensors)
    if audio is not None:
        samples, rate = np.ascontiguousarray(audio[0], dtype=np.float32), np.array([audio[1]], dtype=np.int64)
        tensors["kept_audio"], tensors["sample_rate"] = samples, rate
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        if numpy:
            from safetensors.numpy import save_file as save_numpy

            save_numpy(
                {k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), {_ARRAYS_KEY: "numpy"}
            )
            return
        import torch
        from safetensors.torch import save_file as save_torch

        as_torch = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in tensors.items()}
        contiguous = {k: v.detach().cpu().contiguous() for k, v in as_torch.items()}
        save_torch(contiguous, str(tmp), {_ARRAYS_KEY: "torch"})


def load_chunk_state(path: Path) -> dict[str, Any]:
    """The tensors `save_chunk_state` wrote, as the same kind of arrays."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        kind = (handle.metadata() or {}).get(_ARRAYS_KEY, "torch")
    if kind == "numpy":
        from safetensors.numpy import load_file as load_numpy

        state: dict[str, Any] = load_numpy(str(path))
        return state
    from safetensors.torch import load_file as load_torch

    tensors: dict[str, Any] = load_torch(str(path))
    return tensors


def stored_audio(state: dict[str, Any]) -> tuple[np.ndarray, int] | None:
    """The kept audio samples and their rate from a loaded state (None when the chunk had no sound)."""
    if "kept_audio" not in state:
        return None
    samples = state["kept_audio"]
    return np.asarray(samples if isinstance(samples, np.ndarray) else samples.numpy()), int(
        state["sample_rate"][0]
    )


def channel_stats(latent: Any) -> tuple[Any, Any]:
    """Per-channel mean and std of a video latent [B, C, T, H, W]: what chaining.adain matches chunks to."""
    if isinstance(latent, np.ndarray):
        return latent.mean(axis=(0, 2, 3, 4)), latent.std(axis=(0, 2, 3, 4))
    return latent.mean(dim=(0, 2, 3, 4)), latent.std(dim=(0, 2, 3, 4), correction=0)
