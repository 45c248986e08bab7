"""The tiny Gemma-3 folder of the embedded model sets (tiny.py, tiny23.py): config, a locally trained
tokenizer, processor files and seeded weights, in Hugging Face layout with the checkpoint's key names.

Owns: the tiny Gemma's config (GEMMA_CONFIG, which also sizes the tiny transformers' caption projection), its
tokenizer (trained here on a fixed corpus: nothing is downloaded) and its weights, drawn from the build's
generator alone. Importing it is cheap and torch-free.
Must not: write anywhere but the folder it is given, or leave ltx-core's Gemma constant changed: the model
is built inside `compat.gemma_config(GEMMA_CONFIG)`, as everything else that reads the constant must be.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GEMMA_HIDDEN = 64
GEMMA_VOCAB = 512

# fmt: off
GEMMA_CONFIG: dict[str, Any] = {
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
    "boi_token_index": 5, "eoi_token_index": 6, "image_token_index": 7, "eos_token_id": [1],
    "mm_tokens_per_image": 4, "initializer_range": 0.02, "torch_dtype": "bfloat16",
    "text_config": {
        "model_type": "gemma3_text", "hidden_size": GEMMA_HIDDEN, "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "query_pre_attn_scalar": 32,
        "vocab_size": GEMMA_VOCAB, "sliding_window": 64, "sliding_window_pattern": 6,
        "max_position_embeddings": 2048, "rope_theta": 1000000, "rope_local_base_freq": 10000,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
    },
    "vision_config": {
        "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
        "num_channels": 3, "vision_use_head": False,
    },
}
_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>",
                   "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"]
_CORPUS = [
    "A cat walks on a sunny street, camera pans left, soft piano music.",
    "The quick brown fox jumps over the lazy dog while birds sing.",
    "A drone shot of mountains at sunset with wind noise and distant thunder.",
    "Close up of a person talking, natural light, clear dialogue audio.",
]
_CHAT_TEMPLATE = (
    "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% else %}<start_of_image>"
    "{% endif %}{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

# fmt: on


def build_gemma(path: Path, gen: Any, dtype: Any) -> None:
    """A Gemma-3 folder in Hugging Face layout: config, fast tokenizer, processor files, weights (stored in
    `dtype`, drawn from `gen`)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(GEMMA_CONFIG, indent=1))
    _write_tokenizer(path)
    _write_processor_files(path)
    _write_weights(path, gen, dtype)


def _write_tokenizer(path: Path) -> None:
    """A byte-level BPE tokenizer trained on the fixed corpus, with Gemma's special and image tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=GEMMA_VOCAB,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer.post_processor = TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    tokenizer.save(str(path / "tokenizer.json"))


def _write_processor_files(path: Path) -> None:
    """The tokenizer's and the image processor's config files, as transformers' Gemma3Processor reads them."""
    specials = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    image_tokens = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
    }
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": 1024,
                **specials,
                "padding_side": "left",
                "add_bos_token": True,
                "add_eos_token": False,
                "extra_special_tokens": image_tokens,
                "chat_template": _CHAT_TEMPLATE,
            },
            indent=1,
        )
    )
    (path / "special_tokens_map.json").write_text(json.dumps({**specials, **image_tokens}))
    # ltx-core finds the tokenizer folder by a file named tokenizer.model (sentencepiece in the real Gemma);
    # transformers then loads the fast tokenizer.json next to it.
    (path / "tokenizer.model").write_bytes(b"placeholder: the tiny tokenizer lives in tokenizer.json\n")
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Gemma3ImageProcessor",
                "processor_class": "Gemma3Processor",
                "size": {"height": 28, "width": 28},
                "do_resize": True,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.5] * 3,
                "image_std": [0.5] * 3,
                "do_convert_rgb": True,
                "resample": 2,
                "do_pan_and_scan": False,
            },
            indent=1,
        )
    )


def _write_weights(path: Path, gen: Any, dtype: Any) -> None:
    """The model as ltx-core builds it from its Gemma constant (pointed at GEMMA_CONFIG), every tensor
    regenerated from `gen`, saved under the checkpoint's key names (lm_head is tied to the embeddings)."""
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from safetensors.torch import save_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from ltx2_batch.backends import compat

    with compat.gemma_config(GEMMA_CONFIG):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(GEMMA3_CONFIG_FOR_LTX.to_dict()))
    renames = (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    )
    tensors = {}
    for key, value in _regenerate(model.state_dict(), gen, dtype).items():
        if key.startswith("lm_head."):
            continue  # tied to the embeddings
        src, dst = next((s, d) for s, d in renames if key.startswith(s))
        tensors[dst + key[len(src) :]] = value
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


def _regenerate(state: dict[str, Any], gen: Any, dtype: Any) -> dict[str, Any]:
    """Every tensor drawn from `gen` alone, whatever the constructor left there: transformers' own weight
    init is not reproducible across processes here (two fresh builds differed only in the Gemma weights),
    so nothing of it is kept. Norms get neutral values: Gemma's RMSNorm scales by (1 + w), so w = 0;
    SigLIP's LayerNorm takes weight 1, bias 0."""
    import torch

    out = {}
    for key, value in state.items():
        if "norm" in key and "vision_tower" in key:
            tensor = torch.ones(value.shape) if key.endswith("weight") else torch.zeros(value.shape)
        elif "norm" in key:
            tensor = torch.zeros(value.shape)
        else:
            tensor = torch.randn(value.shape, generator=gen) * 0.02
        out[key] = tensor.to(dtype)
    return out
