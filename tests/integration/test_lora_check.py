"""The driver's LoRA check (backends/lora_check.py) agrees with ltx-core: its torch-free copies of the two key
renamings are ltx-core's own, and the weights it says a LoRA updates are those ltx-core's fuser gives a
delta, on the tiny set's transformer. A bad LoRA is refused before any job runs through the CLI, and by a
backend's own check (the worker's, for a set the driver could not read) before its model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ltx2_batch.backends.base import RenderBackend
from ltx2_batch.backends.lora_check import (
    LORA_REPLACEMENTS,
    TRANSFORMER_PREFIX,
    LoraCheck,
    fused_weights,
    lora_key,
    transformer_weights,
)
from ltx2_batch.core.jobs import LoraSpec
from ltx2_batch.errors import FatalBackendError
from tests.conftest import REPO_ROOT, AppFactory, tiny_job, write_manifest
from tests.fixtures.backends import TinySet

pytestmark = pytest.mark.slow


def test_the_renamings_are_ltx_cores(tiny_set: TinySet) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.sd_ops import ContentMatching, ContentReplacement
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP
    from safetensors import safe_open

    assert LTXV_LORA_COMFY_RENAMING_MAP.mapping == (
        ContentMatching("", ""),
        *(ContentReplacement(content, new) for content, new in LORA_REPLACEMENTS),
    )
    assert LTXV_MODEL_COMFY_RENAMING_MAP.mapping == (
        ContentMatching(TRANSFORMER_PREFIX, ""),
        ContentReplacement(TRANSFORMER_PREFIX, ""),
    )
    for role in ("distilled_lora", "ic_lora"):
        with safe_open(tiny_set.path(role), framework="pt") as f:
            keys = list(f.keys())
        assert keys and all(LTXV_LORA_COMFY_RENAMING_MAP.apply_to_key(k) == lora_key(k) for k in keys)
    with safe_open(tiny_set.path("checkpoint"), framework="pt") as f:
        names = list(f.keys())
    official = {LTXV_MODEL_COMFY_RENAMING_MAP.apply_to_key(k) for k in names} - {None}
    assert official == set(transformer_weights(tiny_set.path("checkpoint")))


def _mixed_lora(tiny_set: TinySet, path: Path) -> Path:
    """The tiny distilled LoRA with one pair's B dropped, one pair without the `diffusion_model.` prefix and
    a pair for a weight the transformer does not have."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(tiny_set.path("distilled_lora"))
    a_keys = sorted(k for k in tensors if k.endswith(".lora_A.weight"))
    del tensors[a_keys[0].replace("lora_A", "lora_B")]
    for part in ("lora_A", "lora_B"):
        key = a_keys[1].replace("lora_A", part)
        tensors[key.removeprefix("diffusion_model.")] = tensors.pop(key)
        tensors[f"diffusion_model.double_blocks.0.img_attn.qkv.{part}.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(path))
    return path


def test_the_fused_weights_are_those_ltx_core_updates(tiny_set: TinySet, tmp_path: Path) -> None:
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.fuse_loras import _prepare_deltas
    from ltx_core.loader.primitives import LoraStateDictWithStrength
    from ltx_core.loader.sft_loader import SafetensorsStateDictLoader
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP

    checkpoint = tiny_set.path("checkpoint")
    weights = transformer_weights(checkpoint)
    loader = SafetensorsStateDictLoader()
    model = loader.load(checkpoint, sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP)
    for lora in (
        Path(tiny_set.path("distilled_lora")),
        Path(tiny_set.path("ic_lora")),
        _mixed_lora(tiny_set, tmp_path / "m.safetensors"),
    ):
        state = LoraStateDictWithStrength(loader.load(str(lora), sd_ops=LTXV_LORA_COMFY_RENAMING_MAP), 1.0)
        updated = {
            key
            for key in model.sd
            if key.endswith(".weight")
            and _prepare_deltas([state], key, torch.float32, torch.device("cpu")) is not None
        }
        assert updated == fused_weights(lora, weights), lora.name
    message = LoraCheck(checkpoint)(str(tmp_path / "m.safetensors")) or ""
    assert message.startswith("3 of its") and "double_blocks.0.img_attn.qkv" in message  # the lonely A too


def test_a_backend_checks_before_its_model_loads(tiny_fp32: RenderBackend, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    empty = tmp_path / "empty.safetensors"
    save_file({}, str(empty))
    with pytest.raises(FatalBackendError, match=r"loras\[0\] .*empty\.safetensors has no tensors"):
        tiny_fp32.check(tiny_job(loras=(LoraSpec(str(empty), 1.0),)))


def test_a_run_refuses_before_any_job_runs(
    tmp_path: Path, app_factory: AppFactory, tiny_set: TinySet, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the (built) tiny set: the job without a LoRA does not run either; the refusal names the file, the
    job and what is wrong."""
    from ltx2_batch.cli import run

    folder = tmp_path / "m"
    folder.mkdir()
    _mixed_lora(tiny_set, folder / "flux.safetensors")
    manifest = write_manifest(
        folder,
        "defaults: {prompt: a cat, width: 64, height: 64, num_frames: 9}\n"
        "jobs:\n  - {name: plain}\n  - {name: styled, loras: [{path: flux.safetensors, strength: 1.0}]}\n",
    )
    assert run(app_factory(f"manifest={manifest}", f"model.root={tiny_set.root.parent}"), REPO_ROOT) == 2
    err = capsys.readouterr().err
    assert "styled" in err and "loras[0].path" in err and "'flux.safetensors' 3 of its" in err
    assert "a LoRA for another model?" in err
    assert not (tmp_path / "outputs" / "m" / "ledger.parquet").exists()


def test_a_lora_path_is_also_looked_for_under_the_models_root_from_any_launch_dir(
    tmp_path: Path, tiny_set: TinySet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LoRA named relative to the models root (model.root) plans the same from two launch dirs; one found
    in neither place is refused naming both places looked."""
    from ltx2_batch.cli import run
    from tests.conftest import compose_app

    relative = str(Path(tiny_set.path("distilled_lora")).relative_to(tiny_set.root.parent))
    body = (
        "defaults: {prompt: a cat, width: 64, height: 64, num_frames: 9}\n"
        "jobs:\n  - {name: styled, loras: [{path: %s}]}\n"
    )
    manifest = write_manifest(tmp_path / "m", body % relative)
    monkeypatch.setenv("LTX2_BATCH_MODELS", str(tmp_path / "home"))  # model.root, not the models home, counts
    for cwd in (tmp_path, tmp_path / "m"):
        monkeypatch.chdir(cwd)
        assert (
            run(compose_app(f"manifest={manifest}", f"model.root={tiny_set.root.parent}", "plan=true"), cwd)
            == 0
        )
    missing = write_manifest(tmp_path / "n", body % "tiny/checkpoints/absent.safetensors")
    assert (
        run(compose_app(f"manifest={missing}", f"model.root={tiny_set.root.parent}", "plan=true"), tmp_path)
        == 2
    )
    err = capsys.readouterr().err
    assert f"{tmp_path}/n/tiny/checkpoints/absent.safetensors and {tiny_set.root.parent}/tiny" in err, err
