"""The LTX-2 adapter: `Ltx2Backend`, the RenderBackend on Lightricks' official packages, and the recipes it
renders with, one module per official pipeline over shared blocks (as ltx_pipelines ships distilled.py,
retake.py ... over utils/helpers.py).

The only package that imports ltx_pipelines, and only backends.factory imports it (after the compat shims;
tests/unit/test_import_graph.py holds both rules). Map:
  backend.py       Ltx2Backend: model loading and caches, memory policy, check, render / denoise / decode
  recipes.py       the table (PipelineKind, checkpoint kind) -> recipe, and resolving a job's recipe (once)
  recipe.py        what a recipe is: the Recipe protocol, the per-job RecipeRun, the LoRAs of each stage
  checks.py        the checks every recipe shares (sizes, files, the family's window)
  blocks:          text.py (prompt encoding, Gemma scope) · conditioning.py (images) · handoff.py (chaining)
                   guidance.py (sigmas, denoising functions) · stage.py (THE stage runner) · loops.py
                   (samplers, step counting) · upsample.py · staged.py (the flow five recipes share, and the
                   refinement stage) · decode.py · clock.py (phase timings)
  recipes:         distilled.py · ti2vid.py (one- and two-stage) · keyframe.py · keyframe_distilled.py
                   (keyframe on a distilled checkpoint) · ic_lora.py · hq.py · a2vid.py · retake.py
A new recipe is one module implementing recipe.Recipe (usually a staged.StagedRecipe) and one row in
recipes.RECIPES; the shared blocks take no per-kind flags.
Must not: be imported except through backends.factory; re-implement model math (every computation is an
official call); write files or choose devices.
"""

from ltx2_batch.backends.ltx2.backend import Ltx2Backend

__all__ = ["Ltx2Backend"]
