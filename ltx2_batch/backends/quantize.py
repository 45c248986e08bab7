"""What happens to a built transformer before its first use: fp8_scaled quantization and torch.compile.

Owns: the rules of `model.quantization` / `model.compile` that need no device (`setting_problems`: torch-free,
the driver's settings check calls it), the device-side refusals (`device_problems`: fp8_scaled needs CUDA with
compute capability >= 8.9 and an importable torchao; compile needs its code generator), the choice of which
Linear layers go to fp8 (`fp8_layer_names`, a pure function over names and shapes), and `prepare_transformer`,
which quantizes the chosen layers with torchao and compiles, in place. `fp8_cast` is not applied here: it is
ltx-core's own loading policy (weights downcast as the checkpoint is read), which the adapter passes to the
official builders.
Must not: import torch, torchao or ltx packages at module level (the driver imports this), build or hold
models, choose devices (device.py).

Which layers stay in bf16, and why (docs/behaviour.md, "fp8 matmuls"):
- Only Linear layers inside `transformer_blocks.N.` are candidates: the attention projections and the
  feed-forward, which carry nearly all the FLOPs (the same scope as ltx-core's fp8 policies). Outside the
  blocks stay bf16: the patchify projections (the latent's 128 channels in), the timestep / AdaLN
  embeddings (one row per sample: fp8 gains nothing there and the modulation scales every block), the
  caption projection (run once per forward) and `proj_out` (its error is the predicted velocity's error).
- The first block and the last five stay bf16, as in ltx-core's own fp8 matmul list for the 48-block
  models (`fp8_scaled_mm.EXCLUDED_LAYER_SUBSTRINGS`): the blocks where quantization error costs most.
  Models with fewer than MIN_BLOCKS_FOR_EDGES blocks (the tiny test sets) keep none, so that tests run the
  quantized path through every block.
- `to_gate_logits` (LTX-2.3's gated attention: one output per head) stays bf16: a tiny matmul whose output
  is a sigmoid gate.
- A layer whose in or out features are not multiples of 16 stays bf16: `torch._scaled_mm` needs that.
"""

from __future__ import annotations

import enum
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ltx2_batch.config import CompileMode, Quantization
from ltx2_batch.core.families import is_fp8_name
from ltx2_batch.errors import ConfigError

if TYPE_CHECKING:
    from ltx2_batch.backends.device import DevicePolicy
    from ltx2_batch.config import ModelConfig

FP8_MIN_CAPABILITY = (8, 9)  # Ada / Hopper / Blackwell: fp8 tensor cores
SCALED_MM_MULTIPLE = 16  # torch._scaled_mm: both matrix dims multiples of 16
EDGE_BLOCKS_KEPT = (1, 5)  # first / last blocks left in bf16 (ltx-core's list for 48 blocks: 0 and 43-47)
MIN_BLOCKS_FOR_EDGES = 12
KEPT_LEAVES = ("to_gate_logits",)
_BLOCK = re.compile(r"(?:^|\.)transformer_blocks\.(\d+)\.")
_BF16 = ("auto", "bf16", "bfloat16")


class Fp8Kernel(str, enum.Enum):
    """How fp8_scaled matmuls run: on fp8 tensor cores, or emulated (dequantize, then a plain matmul) so a
    CPU can run the same quantized tensors through the same model code (tests, the bench's dry run)."""

    scaled_mm = "scaled_mm"
    emulated = "emulated"


@dataclass(frozen=True)
class TransformerPrep:
    """What `prepare_transformer` does to each transformer the adapter builds."""

    quantization: Quantization = Quantization.none  # only fp8_scaled acts here (fp8_cast is the loader's)
    compile: CompileMode = CompileMode.off
    kernel: Fp8Kernel = Fp8Kernel.scaled_mm

    @property
    def quantizes(self) -> bool:
        """This prep quantizes to fp8_scaled itself (fp8_cast happens in the loader instead)."""
        return self.quantization is Quantization.fp8_scaled

    def as_info(self, fp8_cast: bool) -> dict[str, str]:
        """The sidecar's record (`fp8_cast`: the loader stores the transformer in fp8)."""
        quantization = Quantization.fp8_cast if fp8_cast and not self.quantizes else self.quantization
        info = {"quantization": quantization.value, "compile": self.compile.value}
        if self.quantizes:
            info["fp8_kernel"] = self.kernel.value
        return info


NO_PREP = TransformerPrep()


@dataclass(frozen=True)
class LinearLayer:
    """A Linear layer by its dotted name in the transformer's module tree."""

    name: str
    in_features: int
    out_features: int


def setting_problems(model: ModelConfig) -> list[str]:
    """The quantization/compile settings that contradict other model settings (no device needed)."""
    problems = []
    q = model.quantization
    if model.fp8 is not None:
        problems.append(
            f"model.fp8={str(model.fp8).lower()} was replaced by model.quantization: use "
            "model.quantization=fp8_cast (fp8 weights, bf16 matmuls; was model.fp8=true), fp8_scaled (fp8 "
            "matmuls, CUDA compute capability >= 8.9) or none, and drop model.fp8"
        )
    if q is not Quantization.none and not model.allow_fp8:
        problems.append(
            f"model.quantization={q.value} contradicts model.allow_fp8=false: drop one of them "
            "(model.quantization=none keeps the model's dtype)"
        )
    if q is not Quantization.none and model.device.split(":")[0] in ("cpu", "mps"):
        problems.append(
            f"model.quantization={q.value} needs a CUDA GPU, but model.device={model.device}: use "
            "model.quantization=none or model.device=cuda"
        )
    if q is Quantization.fp8_scaled and model.dtype not in _BF16:
        problems.append(
            f"model.quantization=fp8_scaled quantizes a bf16 transformer, but model.dtype={model.dtype}: "
            "use model.dtype=bf16 (or auto)"
        )
    names = [n for n in model.checkpoints if n]
    if q is Quantization.fp8_scaled and names and all(is_fp8_name(n) for n in names):
        problems.append(
            f"model.quantization=fp8_scaled quantizes the bf16 checkpoint, but model={model.name} names only "
            "fp8 checkpoints (stored for fp8_cast): use a bf16 preset (e.g. model=ltx2_distilled) with "
            "model.quantization=fp8_scaled, or model.quantization=fp8_cast"
        )
    if model.compile is not CompileMode.off and model.device.split(":")[0] == "mps":
        problems.append(
            f"model.compile={model.compile.value} runs on cuda or cpu, not model.device=mps: use "
            "model.compile=off"
        )
    return problems


def device_problems(model: ModelConfig, policy: DevicePolicy) -> list[str]:
    """What this worker's device cannot do of the settings (checked before any file is read)."""
    problems = []
    if model.quantization is Quantization.fp8_scaled:
        problem = _fp8_scaled_problem(policy)
        if problem:
            problems.append(problem)
    if model.compile is not CompileMode.off:
        problem = _compile_problem(model.compile, policy)
        if problem:
            problems.append(problem)
    return problems


def _fp8_scaled_problem(policy: DevicePolicy) -> str | None:
    import torch

    fix = "use model.quantization=none (bf16) or model.quantization=fp8_cast (fp8 storage, bf16 matmuls)"
    if policy.kind != "cuda":
        fix = "use model.quantization=none (fp8 of either kind needs CUDA), or run on a CUDA machine"
        return (
            "model.quantization=fp8_scaled needs a CUDA GPU with fp8 tensor cores (compute capability >= "
            f"8.9: Ada, Hopper, Blackwell); this worker's device is {policy.device}: {fix}"
        )
    if policy.dtype != "bfloat16":
        return f"model.quantization=fp8_scaled needs bf16 weights, this worker runs {policy.dtype}: {fix}"
    capability = torch.cuda.get_device_capability(torch.device(policy.device))
    if tuple(capability) < FP8_MIN_CAPABILITY:
        name = torch.cuda.get_device_name(torch.device(policy.device))
        return (
            f"model.quantization=fp8_scaled needs compute capability >= 8.9 (fp8 tensor cores); "
            f"{name} has {capability[0]}.{capability[1]}: {fix}"
        )
    try:
        import torchao.quantization  # noqa: F401 - importable is the check
    except Exception as exc:  # an ImportError, or a torchao built for another torch failing as it loads
        return (
            f"model.quantization=fp8_scaled needs torchao ({type(exc).__name__}: {str(exc)[:160]}): "
            "pip install 'ltx2-batch[fp8]' (torchao>=0.18), or " + fix
        )
    return None


def _compile_problem(mode: CompileMode, policy: DevicePolicy) -> str | None:
    import importlib.util
    import os

    fix = "or model.compile=off"
    if policy.kind == "cpu":
        compiler = os.environ.get("CXX", "g++")
        if shutil.which(compiler) is None:
            return (
                f"model.compile={mode.value} on the CPU needs a C++ compiler (inductor builds C++ kernels): "
                f"{compiler} is not on PATH; install g++ {fix}"
            )
    elif policy.kind == "cuda":
        if importlib.util.find_spec("triton") is None:
            return f"model.compile={mode.value} on CUDA needs triton: pip install triton {fix}"
    else:
        return f"model.compile={mode.value} runs on cuda or cpu, not {policy.device}: use model.compile=off"
    return None


def check_files(prep: TransformerPrep, checkpoint_is_fp8: bool, checkpoint: str) -> None:
    """fp8_scaled quantizes bf16 weights: a checkpoint found stored in fp8 is refused before it is read."""
    if prep.quantizes and checkpoint_is_fp8:
        raise ConfigError(
            f"model.quantization=fp8_scaled quantizes the bf16 checkpoint, but the one found is the fp8 file "
            f"{checkpoint}: download the bf16 checkpoint (first in model.checkpoints), or use "
            "model.quantization=fp8_cast"
        )


def fp8_layer_names(layers: Iterable[LinearLayer]) -> tuple[str, ...]:
    """The Linear layers fp8_scaled quantizes, in the given order (the module docstring says which stay)."""
    layers = list(layers)
    blocks = {int(m.group(1)) for layer in layers if (m := _BLOCK.search(layer.name))}
    n_blocks = max(blocks) + 1 if blocks else 0
    first, last = EDGE_BLOCKS_KEPT if n_blocks >= MIN_BLOCKS_FOR_EDGES else (0, 0)
    chosen = []
    for layer in layers:
        match = _BLOCK.search(layer.name)
        if match is None:
            continue
        index = int(match.group(1))
        if index < first or index >= n_blocks - last:
            continue
        if any(part in KEPT_LEAVES for part in layer.name.split(".")):
            continue
        if layer.in_features % SCALED_MM_MULTIPLE or layer.out_features % SCALED_MM_MULTIPLE:
            continue
        chosen.append(layer.name)
    return tuple(chosen)


def linear_layers(model: Any) -> list[LinearLayer]:
    """Every torch.nn.Linear of `model` with its dotted name."""
    import torch

    return [
        LinearLayer(name, module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]


def prepare_transformer(model: Any, prep: TransformerPrep) -> Any:
    """Quantize (fp8_scaled) and compile `model` in place, as `prep` says; returns it."""
    if prep.quantizes:
        quantize_fp8_scaled(model, prep.kernel)
    if prep.compile is CompileMode.blocks:
        for block in _blocks(model):
            block.compile()
    elif prep.compile is CompileMode.full:
        model.compile()
    return model


def quantize_fp8_scaled(model: Any, kernel: Fp8Kernel) -> tuple[str, ...]:
    """torchao's dynamic fp8 (e4m3) quantization, per-row scales for activations and weights, on the layers
    `fp8_layer_names` picks. Returns their names."""
    chosen = fp8_layer_names(linear_layers(model))
    selected = frozenset(chosen)
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    if kernel is Fp8Kernel.scaled_mm:
        from torchao.quantization import quantize_

        config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
        quantize_(model, config, filter_fn=lambda _module, name: name in selected)
        return chosen
    # torchao refuses its config without fp8 hardware; the same tensors with an emulating matmul config
    import torch
    from torchao.float8.inference import Float8MMConfig
    from torchao.quantization import Float8Tensor
    from torchao.quantization.quantize_.workflows.float8.float8_tensor import QuantizeTensorToFloat8Kwargs

    for name in chosen:
        layer = model.get_submodule(name)
        weight = Float8Tensor.from_hp(
            layer.weight.detach(),
            float8_dtype=torch.float8_e4m3fn,
            granularity=PerRow(),
            mm_config=Float8MMConfig(emulate=True),
            act_quant_kwargs=QuantizeTensorToFloat8Kwargs(torch.float8_e4m3fn, PerRow()),
        )
        layer.weight = torch.nn.Parameter(weight, requires_grad=False)
    return chosen


def _blocks(model: Any) -> list[Any]:
    """The transformer blocks of an LTX model (inside ltx-core's X0Model wrapper)."""
    for module in model.modules():
        blocks = getattr(module, "transformer_blocks", None)
        if blocks is not None:
            return list(blocks)
    raise ConfigError(f"model.compile=blocks: {type(model).__name__} has no transformer_blocks to compile")
