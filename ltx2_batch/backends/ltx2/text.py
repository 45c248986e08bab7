"""The text block: a job's prompt as rendered (enhanced when asked) and its encodings, through the backend's
prompt cache, inside the backend's Gemma scope.

Owns: the two official calls of `encode_prompts` (the Gemma encoder, then the embeddings processor) without
its per-call gc/empty_cache, `generate_enhanced_prompt` on the loaded Gemma (with its image processor matched
to the model's vision projector), caching encodings per text, parking the encoder afterwards when the memory
policy offloads it, and the Gemma scope: ltx-core reads its Gemma config from a process-wide constant, so
whatever builds or runs this backend's Gemma does so inside `gemma_scope()` (compat.gemma_config), which
points the constant at this backend's Gemma folder and restores it after.
Must not: decide whether a recipe is guided (the recipe says whether the negative prompt is encoded), or
hold encodings beyond the backend that made them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT
from ltx_pipelines.utils.helpers import generate_enhanced_prompt

from ltx2_batch.backends import compat
from ltx2_batch.backends.caches import ModelCache, PromptCache
from ltx2_batch.core.jobs import RenderJob


class PromptEncoder:
    """One backend's text encoding: its model cache (text encoder, embeddings processor), its prompt cache and
    the Gemma config its folder describes (compat.read_gemma_config; None: the shipped 12B one)."""

    def __init__(self, cache: ModelCache, prompts: PromptCache, gemma: dict[str, Any] | None) -> None:
        self._cache = cache
        self._prompts = prompts
        self._gemma = gemma

    def gemma_scope(self) -> AbstractContextManager[None]:
        """ltx-core's Gemma constant describes this backend's Gemma inside the block (and only there)."""
        return compat.gemma_config(self._gemma)

    def encode(self, job: RenderJob, image: str | None, negative: bool) -> tuple[str, list[Any]]:
        """The prompt as rendered and its encodings: [prompt] or, with `negative`, [prompt, negative prompt].
        `image` is what an enhanced prompt looks at (the first conditioning image). Parks the text encoder
        afterwards when the memory policy offloads it."""
        with self.gemma_scope():
            prompt = job.prompt
            if job.enhance_prompt:
                prompt = self._prompts.get_or_make(
                    ("enhanced", job.prompt, image, job.seed),
                    lambda: generate_enhanced_prompt(
                        _image_tokens_matched(self._cache.get("text_encoder")),
                        job.prompt,
                        image,
                        seed=job.seed,
                    ),
                )
            texts = [prompt, job.negative_prompt or DEFAULT_NEGATIVE_PROMPT] if negative else [prompt]
            contexts = [self._encoded(text) for text in texts]
        self._cache.park("text_encoder")  # memory policy offload_text_encoder: off the device until needed
        return prompt, contexts

    def _encoded(self, text: str) -> Any:
        """One text's encoding, from the prompt cache when this backend encoded it before. Keyed by the text
        alone: the prompt and the negative prompt are cached separately (the official code encodes each on
        its own, so a cached encoding is bit-identical to a fresh one), and an enhanced prompt is keyed by
        what it was enhanced from (above)."""
        return self._prompts.get_or_make(("encoded", text), lambda: self._encode(text))

    def _encode(self, text: str) -> Any:
        """encode_prompts() for one text, without its per-call gc.collect()/empty_cache(): those free the
        models it builds per call (~0.2 s each here); ours are held. Same two official calls, same order."""
        hidden, mask = self._cache.get("text_encoder").encode(text)
        return self._cache.get("embeddings_processor").process_hidden_states(hidden, mask)


def _image_tokens_matched(text_encoder: Any) -> Any:
    """`text_encoder` with its processor expanding an image into as many soft tokens as the model's vision
    projector makes (`mm_tokens_per_image`). ltx-core builds the processor with transformers' default of
    256, which is real Gemma 3's value; a smaller Gemma (the embedded sets use 4) needs its own, or the
    image-to-video enhancement fails in Gemma's forward ("Image features and image tokens do not match")."""
    processor = text_encoder.processor
    wanted = getattr(getattr(text_encoder.model, "config", None), "mm_tokens_per_image", None)
    if processor is None or wanted is None or processor.image_seq_length == wanted:
        return text_encoder
    from transformers import Gemma3Processor

    text_encoder.processor = Gemma3Processor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        chat_template=processor.chat_template,
        image_seq_length=wanted,
    )
    return text_encoder
