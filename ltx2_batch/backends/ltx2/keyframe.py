"""The keyframe recipe (ltx_pipelines/keyframe_interpolation.py): ti2vid's guidance and LoRAs, with the images
added as guiding latents at their frames in both stages, so the video interpolates between them. The dev
checkpoint's recipe (and that of a checkpoint of unknown kind); on a distilled checkpoint the table picks
keyframe_distilled.py instead.

A module of its own (not a ti2vid parameter) because the official pipeline is its own class and the job
names it as its own kind; the difference is one block, so the class is ti2vid's with that block swapped.
Owns: the keyframe recipe's image conditioning. Must not: re-implement a block.
"""

from __future__ import annotations

from typing import Any

from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.args import ImageConditioningInput

from ltx2_batch.backends.ltx2.conditioning import guiding_images
from ltx2_batch.backends.ltx2.recipe import RecipeRun
from ltx2_batch.backends.ltx2.ti2vid import Ti2vid
from ltx2_batch.core.jobs import PipelineKind


class Keyframe(Ti2vid):
    """The keyframe `Recipe` on a dev checkpoint: ti2vid with the images as guiding latents."""

    kind: PipelineKind = PipelineKind.KEYFRAME

    def image_conditionings(
        self, run: RecipeRun, images: list[ImageConditioningInput], shape: VideoPixelShape, video_encoder: Any
    ) -> list[Any]:
        """The images as guiding latents at their frames (not replacing latents): the video interpolates."""
        return guiding_images(run, images, shape, video_encoder)
