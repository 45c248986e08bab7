"""Several backends in one process. ltx-core keeps its Gemma config in a process-wide constant, read when a
Gemma text encoder (and its embeddings processor) is built; each backend points it at its own Gemma folder
only inside the calls that build or run its text encoder (compat.gemma_config) and restores it after. So
backends of different families, whose Gemma folders differ, can be built side by side and alternate renders,
each giving the bytes it gives alone; and the constant is ltx-core's own again between calls."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ltx2_batch.backends import compat
from ltx2_batch.backends.base import RenderBackend, RenderRequest
from ltx2_batch.backends.device import DevicePolicy
from ltx2_batch.backends.factory import adapter
from ltx2_batch.backends.weights import weights_source
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.families import ModelFamily
from tests.conftest import tiny_job

pytestmark = pytest.mark.slow
PROMPTS = ("A cat walks on a sunny street.", "A drone shot of mountains at sunset.")


def _shipped() -> dict[str, Any]:
    from ltx_core.text_encoders.gemma.config import Gemma3ConfigData

    return Gemma3ConfigData().to_dict()


def _constant() -> dict[str, Any]:
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    return GEMMA3_CONFIG_FOR_LTX.to_dict()


@pytest.fixture(scope="module")
def two_families(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A factory per family: the LTX-2 tiny set as built, and the LTX-2.3 tiny set with a Gemma of its own
    (the tiny Gemma with another attention scale, a value only the Gemma constant carries: the two sets'
    text encoders then differ as the 12B and a tiny one do, at tiny cost)."""
    made = {}
    for name, family in (("ltx2", ModelFamily.ltx2), ("ltx23", ModelFamily.ltx23)):
        source = weights_source(ModelConfig(root=str(tiny_root.parent), family=family), Path("/"))
        made[name] = (source, source.resolve(allow_fp8=False))
    source, files = made["ltx23"]
    gemma = tmp_path_factory.mktemp("gemma23") / "gemma3"
    shutil.copytree(files.gemma_root, gemma)
    config = json.loads((gemma / "config.json").read_text())
    config["text_config"]["query_pre_attn_scalar"] *= 2
    (gemma / "config.json").write_text(json.dumps(config))
    made["ltx23"] = (source, dataclasses.replace(files, gemma_root=gemma))
    policy = DevicePolicy(device="cpu", dtype="float32", allow_fp8=False)
    return {
        name: (lambda s=s, f=f: adapter()(files=f, policy=policy, weights=s)) for name, (s, f) in made.items()
    }


def _render(backend: Any, prompt: str) -> Any:
    return backend.render(RenderRequest(job=tiny_job(prompt=prompt, seed=5)))


def test_backends_of_two_families_alternate_with_the_bytes_of_each_alone(
    two_families: dict[str, Any], tiny23_fp32: RenderBackend
) -> None:
    alone = {}
    for name, make in two_families.items():  # each built, used and closed before the other exists
        backend = make()
        try:
            alone[name] = [_render(backend, prompt) for prompt in PROMPTS]
        finally:
            backend.close()
    # Both built cold before either loads its Gemma (the last constructor to run is the other family's), then
    # alternating, so every Gemma build and every encoding runs with the other backend alive
    together = {name: make() for name, make in two_families.items()}
    try:
        mixed: dict[str, list[Any]] = {name: [] for name in together}
        for prompt in PROMPTS:
            for name, backend in together.items():
                mixed[name].append(_render(backend, prompt))
    finally:
        for backend in together.values():
            backend.close()
    for name in together:
        for solo, shared in zip(alone[name], mixed[name], strict=True):
            assert np.array_equal(solo.frames, shared.frames), name
            assert np.array_equal(solo.audio, shared.audio), name
    # the own Gemma matters: the tiny23 set with the tiny Gemma renders other bytes, so a leaked config shows
    assert not np.array_equal(_render(tiny23_fp32, PROMPTS[0]).frames, alone["ltx23"][0].frames)
    assert _constant() == _shipped()  # ltx-core's own constant again outside the calls


def test_the_scope_restores_the_constant_nested_and_on_errors(tiny_root: Path) -> None:
    tiny = compat.read_gemma_config(tiny_root / "text_encoders/gemma3")
    assert tiny is not None
    before = _constant()
    with compat.gemma_config(tiny):
        assert _constant()["text_config"]["hidden_size"] == tiny["text_config"]["hidden_size"]
        with compat.gemma_config(None):  # a nested scope: the shipped 12B config, then the tiny one again
            assert _constant() == _shipped()
        assert _constant()["text_config"]["hidden_size"] == tiny["text_config"]["hidden_size"]
    assert _constant() == before
    with pytest.raises(RuntimeError, match="boom"), compat.gemma_config(tiny):
        raise RuntimeError("boom")
    assert _constant() == before
