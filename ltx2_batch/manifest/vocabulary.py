"""Every key a manifest may hold, as plain data: one table per section, each key with its kind and default.

Owns the tables (top level, sweep, job, each nested section, prompt files, storyboards), the words for
each kind of value, and the sets derived from them that the expander and the readers consult (which
fields merge one level deep, which may not be swept or defaulted, the built-in defaults). A table's
order is the order "valid: ..." messages and suggestions list its keys in. The readers take their
defaults from here, and docs/manifest.md is generated from them (`reference.py`: each key's `doc` and
`example` too), so the field reference states what validation does. Over 400 lines for that reason: every
key carries its description beside its kind and default, one place for both.
Must hold data only: no checks, no messages, no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One key of a section: the kind of value it holds (a word of KIND_WORDS), the value a missing key
    takes (None: absent, or null), whether it must be given, the section its value (a mapping, or each
    mapping of a list) is read with, and what docs/manifest.md says of it: `doc` (what it does, in a
    sentence or two) and `example` (a YAML value for it)."""

    kind: str
    default: object = None
    required: bool = False
    section: Mapping[str, Key] | None = None
    doc: str = ""
    example: str = ""


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
    "cfg_scale": Key(
        "number",
        doc="Classifier-free guidance scale: prompt against negative prompt (1: off).",
        example="3.0",
    ),
    "stg_scale": Key(
        "number",
        doc="Spatio-temporal guidance: away from a perturbed prediction (0: off).",
        example="1.0",
    ),
    "rescale_scale": Key(
        "number",
        doc="Pulls the guided prediction's spread back to the conditional one's (0: off).",
        example="0.7",
    ),
    "modality_scale": Key(
        "number",
        doc="Cross-modal guidance: away from the other modality isolated (1: off).",
        example="3.0",
    ),
    "skip_step": Key("int", doc="Guide only every (n+1)-th step (0: every step).", example="0"),
    "stg_blocks": Key("ints", doc="Transformer blocks STG perturbs.", example="[29]"),
}
UPSCALE: Section = {
    "spatial": Key(
        "scale",
        True,
        doc="`true` (or `2`): two stages with the x2 spatial upsampler (sizes multiple of 64); `1.5`: the "
        "x1.5 one (LTX-2.3, multiples of 96); `false`: one stage (multiples of 32).",
        example="false",
    ),
    "temporal": Key(
        "bool",
        False,
        doc="Doubles frames and frame rate after the last stage (one-window jobs only).",
        example="true",
    ),
}
IMAGE: Section = {
    "path": Key(
        "path",
        required=True,
        doc="The image (relative to the manifest, `/projects/...`, or a URL's path).",
        example="assets/cat.png",
    ),
    "frame_idx": Key(
        "int", 0, doc="The frame it conditions (0-based, within the clip or the chunk).", example="0"
    ),
    "strength": Key("number", 1.0, doc="Conditioning strength in [0, 1].", example="1.0"),
}
LORA: Section = {
    "path": Key(
        "path",
        required=True,
        doc="The LoRA file (also looked for under the models root: `model.root`, else the models home).",
        example="style.safetensors",
    ),
    "strength": Key("number", 1.0, doc="In [-2, 2].", example="0.8"),
    "type": Key(
        "str", "lora", doc="`lora`, or `ic_lora` (selects the ic_lora pipeline).", example="ic_lora"
    ),  # one of core.jobs.LoraKind
}
VIDEO: Section = {
    "path": Key(
        "path",
        required=True,
        doc="The reference video an IC-LoRA follows (its first frame is decoded at validation).",
        example="ref.mp4",
    ),
    "strength": Key("number", 1.0, doc="In [0, 1].", example="1.0"),
}
AUDIO: Section = {
    "path": Key(
        "path",
        required=True,
        doc="A file with an audio stream (any channel count); its packets must reach the clip's end from "
        "`start`.",
        example="voice.m4a",
    ),
    "start": Key(
        "number", 0.0, doc="Seconds into the file the clip's audio starts.", example="2.5"
    ),  # seconds into the file
    "max_duration": Key(
        "number", doc="Seconds read at most (null: to the end); not shorter than the clip.", example="10"
    ),  # seconds; null: to the end
}
RETAKE: Section = {
    "path": Key(
        "path",
        required=True,
        doc="The source video: 8k+1 frames, the job's size and rate; probed whole (packets), never decoded.",
        example="take1.mp4",
    ),
    "start": Key(
        "number", required=True, doc="Seconds: start of the window to regenerate.", example="1.0"
    ),  # seconds: the window to regenerate
    "end": Key("number", required=True, doc="Seconds: end of the window (inside the source).", example="2.5"),
    "regenerate_video": Key(
        "bool", True, doc="Regenerate the picture inside the window (false: keep it all).", example="true"
    ),
    "regenerate_audio": Key(
        "bool",
        True,
        doc="Regenerate the sound inside the window (false: keep it all; needs an audio stream).",
        example="false",
    ),
}
DEFAULT_PROMPT_COLUMN = "prompt"
PROMPTS: Section = {  # a .txt file has no columns: one prompt per line
    "path": Key(
        "path",
        required=True,
        doc="A `.txt` (one prompt per line), `.csv`/`.tsv`, `.jsonl` or `.parquet` file.",
        example="captions.csv",
    ),
    "column": Key(
        "str",
        DEFAULT_PROMPT_COLUMN,
        doc="The column holding the prompts (not for `.txt`).",
        example="caption",
    ),
}
SWEEP: Section = {
    "grid": Key(
        "mapping",
        doc="field -> list of values: every combination (a cartesian product).",
        example="{seed: [1, 2], num_frames: [9, 17]}",
    ),
    "zip": Key(
        "mapping",
        doc="field -> list of values, all lists the same length: advanced together, row by row.",
        example='{name: [storm, calm], prompt: ["A storm", "A calm sea"]}',
    ),
}  # field -> list of values

JOB: Section = {
    "name": Key(
        "str",
        doc="Unique name (no `/`, control or bidi characters); swept jobs get `__<label>` suffixes. "
        "Missing: `job<index>`.",
        example="cat",
    ),  # missing: job<index> (expand.py)
    "prompt": Key(
        "str",
        required=True,
        doc="What to render (at most `limits.max_prompt_chars`); with `prompts:` a template holding "
        "`{prompt}`.",
        example='"A cat walks along a sunny street"',
    ),
    "negative_prompt": Key(
        "str", "", doc="What to steer away from (empty: the pipeline's own).", example='"blurry, low quality"'
    ),
    "width": Key(
        "int",
        768,
        doc="Output width in pixels (multiple of 64 two-stage, 32 one-stage, 96 at x1.5).",
        example="768",
    ),
    "height": Key("int", 512, doc="Output height in pixels (as `width`).", example="512"),
    "num_frames": Key(
        "int",
        121,
        doc="Frames: 8k+1 within one window; longer ti2vid/distilled jobs are chained and may be any length.",
        example="121",
    ),
    "frame_rate": Key(
        "number", 24, doc="Frames per second (a retake: its source's, e.g. 23.976).", example="24"
    ),
    "seed": Key(
        "int?",
        doc="Missing or null: derived from `base_seed` and the job's fields; the CLI's `seed=N` replaces "
        "`base_seed`, never an explicit seed.",
        example="42",
    ),  # missing or null: derived from base_seed and the job's fields (seeds.py)
    "num_inference_steps": Key(
        "int?", doc="Stage-1 denoising steps (null: the recipe's own count).", example="30"
    ),  # null: the recipe's own count
    "video_guider_params": Key(
        "mapping",
        section=GUIDER,
        doc="Guidance of the video stream; each key null: the pipeline's own.",
        example="{cfg_scale: 3.0, stg_blocks: [29]}",
    ),
    "audio_guider_params": Key(
        "mapping",
        section=GUIDER,
        doc="Guidance of the audio stream; each key null: the pipeline's own.",
        example="{cfg_scale: 7.0}",
    ),
    "pipeline": Key(
        "str",
        "auto",
        doc="`auto`, `distilled`, `ti2vid`, `keyframe`, `ic_lora`, `hq`, `a2vid` or `retake`; `auto` picks "
        "from the images, the LoRAs and the checkpoint.",
        example="ti2vid",
    ),  # one of core.jobs.PipelineKind
    "images": Key(
        "items",
        section=IMAGE,
        doc="Conditioning images; two or more at different frames make `auto` pick keyframe.",
        example="[{path: cat.png, frame_idx: 0, strength: 1.0}]",
    ),
    "loras": Key(
        "items",
        section=LORA,
        doc="LoRAs applied to the transformer.",
        example="[{path: style.safetensors, strength: 0.8}]",
    ),
    "video_conditioning": Key(
        "items",
        section=VIDEO,
        doc="Reference videos for an IC-LoRA.",
        example="[{path: ref.mp4, strength: 1.0}]",
    ),
    "audio_conditioning": Key(
        "mapping",
        section=AUDIO,
        doc="The audio that drives an a2vid job (written back into the clip).",
        example="{path: voice.m4a, start: 0}",
    ),
    "retake": Key(
        "mapping",
        section=RETAKE,
        doc="The source and the window a retake regenerates; the rest is kept.",
        example="{path: take1.mp4, start: 1.0, end: 2.5}",
    ),
    "audio": Key("bool", True, doc="Generate and write a soundtrack.", example="false"),
    "enhance_prompt": Key(
        "bool",
        False,
        doc='Let the text encoder (Gemma 3) rewrite the prompt before rendering; see "Prompt enhancement".',
        example="true",
    ),
    "upscale": Key(
        "mapping",
        section=UPSCALE,
        doc="Spatial (two-stage) and temporal upsampling.",
        example="{spatial: false}",
    ),
    "chunk_prompts": Key(
        "strs",
        doc="Chained jobs: one prompt per chunk (at most as many as chunks).",
        example='["A walk at dusk", "The walker stops"]',
    ),  # chained jobs: one prompt per chunk
    "chunk_images": Key(
        "item lists",
        section=IMAGE,
        doc="Chained jobs: each chunk's images, frame indices within that chunk.",
        example="[[], [{path: turn.png, frame_idx: 40}]]",
    ),  # chained jobs: the images of each chunk
    "tags": Key(
        "mapping",
        doc="Free-form labels (string keys, any values) copied to the ledger and sidecar; not part of the "
        "job id.",
        example="{batch: demo}",
    ),  # free-form: string keys, any values
    "prompts": Key(
        "mapping",
        section=PROMPTS,
        doc="One job per row of a prompts file, named `<name>__p<row>`.",
        example="{path: captions.csv, column: caption}",
    ),  # one job per row of the file (prompts.py)
    "sweep": Key(
        "mapping",
        section=SWEEP,
        doc="This job's own sweep; it multiplies the manifest's.",
        example="{grid: {seed: [1, 2, 3]}}",
    ),
}
TOP: Section = {
    "base_seed": Key(
        "int",
        0,
        doc="Seeds of jobs without their own are derived from it (the CLI's `seed=N` replaces it).",
        example="7",
    ),
    "defaults": Key(
        "mapping",
        section=JOB,
        doc="Fields every job starts from (not `name`, `prompts`, `sweep`); mappings merge one level deep.",
        example="{width: 768, height: 512}",
    ),
    "sweep": Key(
        "mapping", section=SWEEP, doc="A sweep applied to every job.", example="{grid: {seed: [1, 2]}}"
    ),
    "jobs": Key(
        "items", required=True, section=JOB, doc="The job entries.", example='[{name: cat, prompt: "A cat"}]'
    ),
}

ELEMENT: Section = {
    "name": Key("str", required=True, doc="What prompts mention as `@name`.", example="Max"),
    "trigger": Key(
        "str", required=True, doc="The word that replaces `@name` in prompts.", example="max_corgi"
    ),  # the word that replaces `@name` in prompts
    "description": Key(
        "str",
        "",
        doc="Appended with the trigger when a shot lists the element without mentioning it.",
        example='"a corgi with a red collar"',
    ),
}
SHOT_ONLY: Section = {
    "action": Key(
        "str",
        doc="What happens in the shot; the next shot's prompt is prefixed with it. Missing: the shot's "
        "prompt.",
        example='"Max catches the ball"',
    ),  # missing: the shot's prompt, in the next shot's narrative prefix
    "elements": Key(
        "list", doc="Element names to feature though the prompt does not mention them.", example="[Lia]"
    ),  # element names to feature though the prompt does not mention them
}
SCENE: Section = {
    "name": Key("str", required=True, doc="Names its shots' jobs `<scene>__shotNN`.", example="park"),
    "shots": Key(
        "items",
        required=True,
        section=JOB,
        doc="Ordered shots: job fields (no `sweep`) plus `action` and `elements`.",
        example='[{prompt: "@Max runs", action: "Max runs"}]',
    ),
}
STORYBOARD: Section = {
    "base_seed": Key("int", 0, doc="As at the top of an ordinary manifest.", example="21"),
    "defaults": Key(
        "mapping", section=JOB, doc="Fields every shot starts from.", example="{width: 64, height: 64}"
    ),
    "elements": Key(
        "items",
        section=ELEMENT,
        doc="Characters and objects prompts mention as `@name`.",
        example="[{name: Max, trigger: max_corgi}]",
    ),
    "scenes": Key(
        "items",
        required=True,
        section=SCENE,
        doc="Scenes of ordered shots; scenes run in parallel.",
        example="[{name: park, shots: [...]}]",
    ),
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
