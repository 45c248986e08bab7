"""model.quantization / model.compile: the torch-free rules and the fp8 layer selection, as pure functions.

The selection runs over names and shapes laid out as the full-size LTX-2 transformer names them (48 blocks,
inside ltx-core's X0Model wrapper), so which layers stay bf16 is checked without building a model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.backends.quantize import (
    Fp8Kernel,
    LinearLayer,
    TransformerPrep,
    fp8_layer_names,
    setting_problems,
)
from ltx2_batch.cli import run
from ltx2_batch.config import CompileMode, ModelConfig, Quantization
from ltx2_batch.run.checks import settings_problems
from tests.conftest import compose_app

_BLOCK_LEAVES = (
    ("attn1.to_q", 4096, 4096),
    ("attn1.to_out.0", 4096, 4096),
    ("ff.net.0.proj", 4096, 16384),
    ("ff.net.2", 16384, 4096),
    ("audio_attn1.to_k", 2048, 2048),
    ("attn1.to_gate_logits", 4096, 32),  # LTX-2.3's gated attention: one output per head
    ("odd_proj", 4096, 1000),  # not a multiple of 16: torch._scaled_mm cannot take it
)
_OUTSIDE = (
    ("velocity_model.patchify_proj", 128, 4096),
    ("velocity_model.adaln_single.linear", 4096, 24576),
    ("velocity_model.caption_projection.linear_1", 3840, 4096),
    ("velocity_model.proj_out", 4096, 128),
)


def _layers(n_blocks: int) -> list[LinearLayer]:
    layers = [LinearLayer(name, i, o) for name, i, o in _OUTSIDE]
    for block in range(n_blocks):
        for leaf, i, o in _BLOCK_LEAVES:
            layers.append(LinearLayer(f"velocity_model.transformer_blocks.{block}.{leaf}", i, o))
    return layers


def test_full_size_selection_keeps_the_edge_blocks_and_the_non_block_layers_in_bf16() -> None:
    chosen = fp8_layer_names(_layers(48))
    blocks = {int(name.split("transformer_blocks.")[1].split(".")[0]) for name in chosen}
    assert blocks == set(range(1, 43))  # block 0 and 43..47 stay bf16, as in ltx-core's own fp8 matmul list
    assert not [n for n in chosen if "transformer_blocks" not in n]  # patchify, adaln, caption, proj_out
    leaves = {name.split(".", 3)[3] for name in chosen}
    assert leaves == {"attn1.to_q", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2", "audio_attn1.to_k"}
    assert len(chosen) == 42 * 5
    assert chosen == tuple(sorted(chosen, key=[layer.name for layer in _layers(48)].index))  # model order


def test_a_small_model_quantizes_every_block() -> None:
    """The tiny test sets (2 blocks) have no edge blocks to keep: the quantized path runs through all."""
    chosen = fp8_layer_names(_layers(2))
    assert {n.split("transformer_blocks.")[1][0] for n in chosen} == {"0", "1"}
    assert len(chosen) == 2 * 5


def test_no_blocks_no_layers() -> None:
    assert fp8_layer_names([LinearLayer("proj_out", 64, 64)]) == ()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"fp8": True}, "model.fp8=true was replaced by model.quantization: use model.quantization=fp8_cast"),
        (
            {"quantization": Quantization.fp8_scaled, "allow_fp8": False},
            "model.quantization=fp8_scaled contradicts model.allow_fp8=false",
        ),
        (
            {"quantization": Quantization.fp8_scaled, "device": "cpu"},
            "model.quantization=fp8_scaled needs a CUDA GPU, but model.device=cpu: use "
            "model.quantization=none",
        ),
        (
            {"quantization": Quantization.fp8_cast, "device": "mps"},
            "model.quantization=fp8_cast needs a CUDA GPU, but model.device=mps",
        ),
        (
            {"quantization": Quantization.fp8_scaled, "dtype": "fp32"},
            "model.quantization=fp8_scaled quantizes a bf16 transformer, but model.dtype=fp32: use "
            "model.dtype=bf16",
        ),
        (
            {
                "quantization": Quantization.fp8_scaled,
                "name": "ltx2_fp8",
                "checkpoints": ["checkpoints/ltx-2-19b-distilled-fp8.safetensors"],
            },
            "model=ltx2_fp8 names only fp8 checkpoints (stored for fp8_cast): use a bf16 preset",
        ),
        ({"compile": CompileMode.blocks, "device": "mps"}, "model.compile=blocks runs on cuda or cpu"),
    ],
)
def test_each_contradiction_is_named_with_its_fix(changes: dict[str, object], expected: str) -> None:
    problems = setting_problems(ModelConfig(**changes))
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_the_defaults_and_the_plain_choices_have_no_problem() -> None:
    assert setting_problems(ModelConfig()) == []
    for quantization in Quantization:
        assert setting_problems(ModelConfig(quantization=quantization)) == []  # device auto: the worker says
    for mode in CompileMode:
        assert setting_problems(ModelConfig(compile=mode, device="cpu")) == []
    # fp8 files with fp8_cast (or nothing said) are the ltx2_fp8 preset as it always was
    fp8_only = ModelConfig(checkpoints=["checkpoints/ltx-2-19b-distilled-fp8.safetensors"])
    assert setting_problems(fp8_only) == []


def test_the_launch_check_reports_them_with_the_other_settings(tmp_path: Path) -> None:
    app = compose_app("model.quantization=fp8_scaled", "model.device=cpu", "model.fp8=true")
    problems = settings_problems(app, tmp_path)
    assert [p.split(" ")[0] for p in problems] == ["model.fp8=true", "model.quantization=fp8_scaled"]
    with pytest.raises(Exception, match=r"model\.quantization"):  # Hydra refuses a value the enum lacks
        compose_app("model.quantization=int4")


def test_the_old_key_fails_a_run_before_any_file_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(compose_app("model.fp8=true"), tmp_path) == 2  # the CLI's exit code
    err = capsys.readouterr().err
    assert "model.fp8=true was replaced by model.quantization: use model.quantization=fp8_cast" in err
    assert list(tmp_path.iterdir()) == []


def test_the_sidecar_record_names_the_quantization_that_ran() -> None:
    assert TransformerPrep().as_info(fp8_cast=False) == {"quantization": "none", "compile": "off"}
    assert TransformerPrep().as_info(fp8_cast=True)["quantization"] == "fp8_cast"  # fp8 files, memory policy
    scaled = TransformerPrep(Quantization.fp8_scaled, CompileMode.blocks, Fp8Kernel.emulated)
    assert scaled.as_info(fp8_cast=False) == {
        "quantization": "fp8_scaled",
        "compile": "blocks",
        "fp8_kernel": "emulated",
    }
