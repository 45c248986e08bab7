"""Every key a manifest may hold, as plain data: one table per section, each key with its kind and default.

Owns the tables (top level, sweep, job, each nested section, prompt files, storyboards), the words for
each kind of value, and the sets derived from them that the expander and the readers consult (which
fields merge one level deep, which may not be swept or defaulted, the built-in defaults). A table's
order is the order "valid: ..." messages and suggestions list its keys in. The readers take their
defaults from here, so a field reference generated from these tables states what validation does.
Must hold data only: no checks, no messages, no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One key of a section: the kind of value it holds (a word of KIND_WORDS), the value a missing key
    takes (None: absent, or null), whether it must be given, and the section its value (a mapping, or
    each mapping of a list) is read with."""

    kind: str
    default: object = None
    required: bool = False
    section: Mapping[str, Key] | None = None


Section = Mapping[str, Key]

# The words a message or a field reference uses for each kind. The scalar kinds are checked by
# `values.expect`; the others by the section readers.
KIND_WORDS = {
    "str": "a string",
    "int?": "an integer or null",
    "int": "an integer",
    "number": "a finite number",
    "bool": "true or false",
    "mapping": "a mapping",
    "list": "a list",
    "path": "a path string",
    "ints": "a list of non-negative integers",
    "scale": "true, false or 1.5",
    "strs": "a list of non-empty strings",
    "items": "a list of mappings",
    "item lists": "a list of lists of mappings",
}
SCALAR_KINDS = frozenset({"str", "int", "int?", "number", "bool"})

# null (the default) takes the pipeline's own value
GUIDER: Section = {
    "cfg_scale": Key("number"),
    "stg_scale": Key("number"),
    "rescale_scale": Key("number"),
    "modality_scale": Key("number"),
    "skip_step": Key("int"),
    "stg_blocks": Key("ints"),
}
UPSCALE: Section = {"spatial": Key("scale", True), "temporal": Key("bool", False)}
IMAGE: Section = {
    "path": Key("path", required=True),
    "frame_idx": Key("int", 0),
    "strength": Key("number", 1.0),
}
LORA: Section = {
    "path": Key("path", required=True),
    "strength": Key("number", 1.0),
    "type": Key("str", "lora"),  # one of core.jobs.LoraKind
}
VIDEO: Section = {"path": Key("path", required=True), "strength": Key("number", 1.0)}
AUDIO: Section = {
    "path": Key("path", required=True),
    "start": Key("number", 0.0),  # seconds into the file
    "max_duration": Key("number"),  # seconds; null: to the end
}
RETAKE: Section = {
    "path": Key("path", required=True),
    "start": Key("number", required=True),  # seconds: the window to regenerate
    "end": Key("number", required=True),
    "regenerate_video": Key("bool", True),
    "regenerate_audio": Key("bool", True),
}
DEFAULT_PROMPT_COLUMN = "prompt"
PROMPTS: Section = {  # a .txt file has no columns: one prompt per line
    "path": Key("path", required=True),
    "column": Key("str", DEFAULT_PROMPT_COLUMN),
}
SWEEP: Section = {"grid": Key("mapping"), "zip": Key("mapping")}  # field -> list of values

JOB: Section = {
    "name": Key("str"),  # missing: job<index> (expand.py)
    "prompt": Key("str", required=True),
    "negative_prompt": Key("str", ""),
    "width": Key("int", 768),
    "height": Key("int", 512),
    "num_frames": Key("int", 121),
    "frame_rate": Key("number", 24),
    "seed": Key("int?"),  # missing or null: derived from base_seed and the job's fields (seeds.py)
    "num_inference_steps": Key("int?"),  # null: the recipe's own count
    "video_guider_params": Key("mapping", section=GUIDER),
    "audio_guider_params": Key("mapping", section=GUIDER),
    "pipeline": Key("str", "auto"),  # one of core.jobs.PipelineKind
    "images": Key("items", section=IMAGE),
    "loras": Key("items", section=LORA),
    "video_conditioning": Key("items", section=VIDEO),
    "audio_conditioning": Key("mapping", section=AUDIO),
    "retake": Key("mapping", section=RETAKE),
    "audio": Key("bool", True),
    "enhance_prompt": Key("bool", False),
    "upscale": Key("mapping", section=UPSCALE),
    "chunk_prompts": Key("strs"),  # chained jobs: one prompt per chunk
    "chunk_images": Key("item lists", section=IMAGE),  # chained jobs: the images of each chunk
    "tags": Key("mapping"),  # free-form: string keys, any values
    "prompts": Key("mapping", section=PROMPTS),  # one job per row of the file (prompts.py)
    "sweep": Key("mapping", section=SWEEP),
}
TOP: Section = {
    "base_seed": Key("int", 0),
    "defaults": Key("mapping", section=JOB),
    "sweep": Key("mapping", section=SWEEP),
    "jobs": Key("items", required=True, section=JOB),
}

ELEMENT: Section = {
    "name": Key("str", required=True),
    "trigger": Key("str", required=True),  # the word that replaces `@name` in prompts
    "description": Key("str", ""),
}
SHOT_ONLY: Section = {
    "action": Key("str"),  # missing: the shot's prompt, in the next shot's narrative prefix
    "elements": Key("list"),  # element names to feature though the prompt does not mention them
}
SCENE: Section = {"name": Key("str", required=True), "shots": Key("items", required=True, section=JOB)}
STORYBOARD: Section = {
    "base_seed": Key("int", 0),
    "defaults": Key("mapping", section=JOB),
    "elements": Key("items", section=ELEMENT),
    "scenes": Key("items", required=True, section=SCENE),
}

# Job fields whose value is a mapping that defaults merge into one level deep and that a dotted sweep
# key (`upscale.temporal`) can reach into; None: free-form keys.
NESTED_KEYS: dict[str, tuple[str, ...] | None] = {
    "video_guider_params": tuple(GUIDER),
    "audio_guider_params": tuple(GUIDER),
    "upscale": tuple(UPSCALE),
    "audio_conditioning": tuple(AUDIO),
    "retake": tuple(RETAKE),
    "tags": None,
}
NOT_IN_DEFAULTS = frozenset({"name", "sweep", "prompts"})
NOT_SWEPT = frozenset({"sweep", "prompts"})
# The fields that may differ between jobs sharing one validated template (a sweep over seeds or prompts,
# a prompts file's rows): `job_rules.job_varying` checks them per job, `job_rules.parse_template` the rest.
VARYING_FIELDS = frozenset({"name", "prompt", "seed"})
# Fields whose missing value is computed per job rather than a constant: they have no built-in default.
COMPUTED = frozenset({"name", "seed"})
# The value a missing scalar job field takes.
BUILTIN_DEFAULTS: dict[str, object] = {
    name: key.default
    for name, key in JOB.items()
    if key.kind in SCALAR_KINDS and not key.required and name not in COMPUTED
}
