"""The prompt-embedding cache on the tiny model: a seed sweep encodes its prompt once (text-encoder calls are
counted on the real Gemma module), cached encodings render the same bits as fresh ones, the LRU is bounded,
and closing the backend (a model swap) clears it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ltx2_batch.backends.base import RenderRequest
from ltx2_batch.backends.caches import PromptCache
from ltx2_batch.backends.factory import create_backend
from ltx2_batch.config import ModelConfig
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode

pytestmark = pytest.mark.slow
PROMPT = "A cat walks on a sunny street, soft piano music."


def _job(**kw: object) -> RenderJob:
    base = {
        "name": "t",
        "prompt": PROMPT,
        "width": 64,
        "height": 64,
        "num_frames": 9,
        "frame_rate": 24.0,
        "seed": 1,
        "pipeline": PipelineKind.DISTILLED,
        "mode": RenderMode.VIDEO,
        "num_inference_steps": 2,
    }
    return RenderJob(**{**base, **kw})  # type: ignore[arg-type]


class _CountedBackend:
    """A real backend whose text encoder's `encode` calls are counted (the real method still runs)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.encoded: list[str] = []
        backend.prepare(PipelineKind.DISTILLED, ())
        encoder = backend.cache.get("text_encoder")
        real = encoder.encode

        def counted(text: str, *args: object, **kwargs: object) -> object:
            self.encoded.append(text)
            return real(text, *args, **kwargs)

        encoder.encode = counted

    def render(self, **kw: object) -> object:
        return self.backend.render(RenderRequest(job=_job(**kw)))


@pytest.fixture
def counted(tiny_root: Path) -> Iterator[_CountedBackend]:
    backend = create_backend(ModelConfig(root=str(tiny_root)), Path("/"))
    yield _CountedBackend(backend)
    backend.close()


def test_seed_sweep_encodes_the_prompt_once(counted: _CountedBackend) -> None:
    results = [counted.render(seed=seed) for seed in (1, 2, 3)]
    assert counted.encoded == [PROMPT]  # distilled: no negative prompt
    assert counted.backend.prompts.hits == 2 and counted.backend.prompts.misses == 1
    assert results[-1].info["prompt_cache"] == {"hits": 2, "misses": 1}
    assert not np.array_equal(results[0].frames, results[1].frames)  # the seeds still differ

    counted.render(prompt="A drone shot of mountains at sunset.", seed=1)
    assert counted.encoded == [PROMPT, "A drone shot of mountains at sunset."]
    counted.render(seed=9)
    assert len(counted.encoded) == 2  # still cached

    # guided (ti2vid) adds the negative prompt, itself encoded once for every later job
    counted.render(pipeline=PipelineKind.TI2VID, seed=4)
    counted.render(pipeline=PipelineKind.TI2VID, seed=5)
    assert len(counted.encoded) == 3 and counted.encoded[-1] != PROMPT


def test_cached_encoding_renders_the_same_bits(tiny_root: Path, counted: _CountedBackend) -> None:
    counted.render(seed=1)
    cached = counted.render(seed=2)
    assert len(counted.encoded) == 1
    fresh_backend = create_backend(ModelConfig(root=str(tiny_root), prompt_cache_size=0), Path("/"))
    try:
        fresh = fresh_backend.render(RenderRequest(job=_job(seed=2)))
        assert fresh_backend.prompts.misses == 1 and len(fresh_backend.prompts) == 0  # size 0: no caching
    finally:
        fresh_backend.close()
    assert np.array_equal(cached.frames, fresh.frames)
    assert np.array_equal(cached.audio, fresh.audio)


def test_close_clears_the_cache(counted: _CountedBackend) -> None:
    counted.render(seed=1)
    assert len(counted.backend.prompts) == 1
    counted.backend.close()
    assert len(counted.backend.prompts) == 0


def test_lru_is_bounded_and_keeps_recent_entries() -> None:
    cache = PromptCache(2)
    made: list[str] = []

    def make(text: str) -> str:
        made.append(text)
        return text.upper()

    for text in ("a", "b", "a", "c", "a", "b"):
        assert cache.get_or_make(text, lambda t=text: make(t)) == text.upper()
    # "b" was evicted by "c" (least recently used after "a" was touched), so it is made twice
    assert made == ["a", "b", "c", "b"]
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 4)
