"""The image conditioning block: a job's images as the official conditionings of one stage.

Owns: the job's images as the official `ImageConditioningInput`s, and the two ways the official recipes
condition on them: replacing the latent at the image's frame (`replacing_images`: distilled.py,
ti2vid_*.py, ic_lora.py, a2vid_two_stage.py) or adding a guiding latent (`guiding_images`:
keyframe_interpolation.py). A recipe picks one; both have the `ImageConditioner` signature.
Must not: decide which recipe uses which, or load images other than through the official helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.args import ImageConditioningInput
from ltx_pipelines.utils.helpers import (
    combined_image_conditionings,
    image_conditionings_by_adding_guiding_latent,
)

from ltx2_batch.backends.ltx2.recipe import RecipeRun

ImageConditioner = Callable[[RecipeRun, list[ImageConditioningInput], VideoPixelShape, Any], list[Any]]


def image_inputs(run: RecipeRun) -> list[ImageConditioningInput]:
    """The job's conditioning images, as the official helpers take them."""
    return [
        ImageConditioningInput(path=i.path, frame_idx=i.frame_idx, strength=i.strength)
        for i in run.job.images
    ]


def first_image(images: list[ImageConditioningInput]) -> str | None:
    """The image an enhanced prompt looks at (the official pipelines pass the first one)."""
    return images[0].path if images else None


def replacing_images(
    run: RecipeRun, images: list[ImageConditioningInput], shape: VideoPixelShape, video_encoder: Any
) -> list[Any]:
    """Each image's latent replaces the latent at its frame (combined_image_conditionings)."""
    return _encoded(combined_image_conditionings, run, images, shape, video_encoder)


def guiding_images(
    run: RecipeRun, images: list[ImageConditioningInput], shape: VideoPixelShape, video_encoder: Any
) -> list[Any]:
    """Each image's latent is added as a guiding latent at its frame (keyframe interpolation)."""
    return _encoded(image_conditionings_by_adding_guiding_latent, run, images, shape, video_encoder)


def _encoded(
    conditionings: Any,
    run: RecipeRun,
    images: list[ImageConditioningInput],
    shape: VideoPixelShape,
    video_encoder: Any,
) -> list[Any]:
    """The official helper's conditionings for `images`, at the clip's size, dtype and device."""
    return list(
        conditionings(
            images=images,
            height=shape.height,
            width=shape.width,
            video_encoder=video_encoder,
            dtype=run.dtype,
            device=run.device,
        )
    )
