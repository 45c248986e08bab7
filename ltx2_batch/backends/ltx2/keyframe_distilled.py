"""The keyframe recipe on a distilled checkpoint: keyframe interpolation (the images as guiding latents at
their frames, in both stages, as keyframe_interpolation.py conditions them) over the distilled recipe
(distilled.py: the fixed 8 sigmas unguided, then the 3 refinement sigmas; no distilled LoRA, which a
distilled checkpoint does not need). 8 + 3 transformer forwards where the guided recipe on a dev checkpoint
takes 40 guided steps of up to 4 forwards each.

Not an official class: ltx-pipelines 1.0.0 ships keyframe interpolation for the dev checkpoint only. It is
composed of two official pieces, unchanged: `image_conditionings_by_adding_guiding_latent` (through
conditioning.guiding_images) and the distilled sigma schedules (through guidance.py), so there is no class
to compare it with bit for bit; tests/integration/test_keyframe_distilled.py shows what it runs instead.
Owns: that composition (the table in recipes.py picks it for a keyframe job on a distilled checkpoint).
Must not: re-implement a block, or run on a dev checkpoint (the guided recipe, keyframe.py, does).
"""

from __future__ import annotations

from typing import Any

from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.args import ImageConditioningInput

from ltx2_batch.backends.ltx2.conditioning import guiding_images
from ltx2_batch.backends.ltx2.distilled import Distilled
from ltx2_batch.backends.ltx2.recipe import RecipeRun
from ltx2_batch.core.jobs import PipelineKind


class DistilledKeyframe(Distilled):
    """The keyframe `Recipe` on a distilled checkpoint: distilled, with the images as guiding latents."""

    kind: PipelineKind = PipelineKind.KEYFRAME

    def image_conditionings(
        self, run: RecipeRun, images: list[ImageConditioningInput], shape: VideoPixelShape, video_encoder: Any
    ) -> list[Any]:
        """The images as guiding latents at their frames, as keyframe_interpolation.py conditions them."""
        return guiding_images(run, images, shape, video_encoder)
