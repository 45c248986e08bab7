"""Storyboard manifests: scenes of ordered shots, turned into ordinary jobs (docs/behaviour.md, "Storyboard
prompts").

    elements: [{name: Max, trigger: "max_corgi", description: "a corgi with a red collar"}]
    defaults: {width: 768, height: 512, pipeline: ti2vid}
    scenes:
      - name: park
        shots:
          - {prompt: "@Max runs across the park", action: "Max chases a ball", num_frames: 97}
          - {prompt: "@Max catches the ball mid-air", action: "Max catches the ball"}

Each shot after the first of its scene gets the narrative prefix, "Following the previous shot
where {previous action}. {prompt}", and is linked to the previous shot (`RenderJob.after`): the executor
conditions its frame 0 on that shot's last frame, and the scheduler runs it only after that shot is done.
Scenes are independent, so they run in parallel. Element trigger words replace `@Name` mentions; elements
listed in a shot's `elements` but not mentioned are appended ("Featuring ..."). The length of a prompt
after both is counted before it is built (`injected_length`): over `limits.max_prompt_chars` it is refused
without ever existing. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ltx2_batch.errors import FieldProblem
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.names import valid_name
from ltx2_batch.manifest.quote import quote
from ltx2_batch.manifest.vocabulary import ELEMENT, SCENE, SHOT_ONLY, STORYBOARD

NARRATIVE_PREFIX = "Following the previous shot where {action}. {prompt}"
_MENTION = re.compile(r"@([A-Za-z0-9_][A-Za-z0-9_-]*)")


@dataclass(frozen=True)
class Element:
    """A storyboard element: `@name` in a prompt becomes its trigger word."""

    name: str
    trigger: str
    description: str = ""


@dataclass(frozen=True)
class StoryboardJobs:
    """An ordinary manifest document plus, per job, its scene."""

    document: dict[str, Any]
    scenes: tuple[str, ...]  # scenes[i] is job i's scene


def is_storyboard(doc: Mapping[str, Any]) -> bool:
    """The document is written as scenes of shots rather than a `jobs:` list."""
    return "scenes" in doc


def inject_elements(prompt: str, listed: list[str], elements: Mapping[str, Element]) -> tuple[str, list[str]]:
    """Replace `@Name` with the element's trigger word; append listed elements not mentioned. Returns the
    prompt and the names that are not defined (for the caller to report). `injected_length` says how long
    the result will be without building it: call that first on untrusted input."""
    pieces, extras, unknown = _injection(prompt, listed, elements)
    text = "".join(pieces)
    if extras:
        featured = ", ".join(f"{e.trigger} ({e.description})" if e.description else e.trigger for e in extras)
        text = f"{text.rstrip()} Featuring {featured}."
    return text, unknown


def injected_length(prompt: str, listed: list[str], elements: Mapping[str, Element]) -> int:
    """The length `inject_elements` gives, by arithmetic on the parts: a 60,000-character trigger word
    mentioned 20,000 times is counted (1.2 billion), never built."""
    pieces, extras, _unknown = _injection(prompt, listed, elements)
    length = sum(map(len, pieces))
    if not extras:
        return length
    for piece in reversed(pieces):  # rstrip, across the pieces
        kept = len(piece.rstrip())
        length -= len(piece) - kept
        if kept:
            break
    featured = sum(len(e.trigger) + (len(e.description) + 3 if e.description else 0) for e in extras)
    return length + len(" Featuring ") + featured + 2 * (len(extras) - 1) + len(".")


def _injection(
    prompt: str, listed: list[str], elements: Mapping[str, Element]
) -> tuple[list[str], list[Element], list[str]]:
    """The injected prompt as pieces (slices of the prompt and the trigger strings themselves, not copies of
    them), the elements to append and the unknown names."""
    pieces: list[str] = []
    unknown: list[str] = []
    mentioned: set[str] = set()
    pos = 0
    for match in _MENTION.finditer(prompt):
        name = match.group(1)
        element = elements.get(name)
        pieces.append(prompt[pos : match.start()])
        if element is None:
            unknown.append(name)
            pieces.append(match.group(0))
        else:
            mentioned.add(name)
            pieces.append(element.trigger)
        pos = match.end()
    pieces.append(prompt[pos:])
    extras = []
    for name in listed:
        if name not in elements:
            unknown.append(name)
        elif name not in mentioned:
            extras.append(elements[name])
    return pieces, extras, unknown


def _elements(doc: Mapping[str, Any], source: str, problems: list[FieldProblem]) -> dict[str, Element]:
    found: dict[str, Element] = {}
    raw = doc.get("elements", [])
    if not isinstance(raw, list):
        problems.append(FieldProblem(source, "elements", "must be a list of {name, trigger, description}"))
        return found
    for i, item in enumerate(raw):
        where = f"elements[{i}]"
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("trigger"), str)
        ):
            problems.append(
                FieldProblem(source, where, "needs string 'name' and 'trigger' (description optional)")
            )
            continue
        for key in item:
            if key not in ELEMENT:
                problems.append(
                    FieldProblem(source, f"{where}.{key}", f"unknown key; valid: {', '.join(ELEMENT)}")
                )
        found[item["name"]] = Element(item["name"], item["trigger"], str(item.get("description", "")))
    return found


def storyboard_jobs(
    doc: Mapping[str, Any], source: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[StoryboardJobs, list[FieldProblem]]:
    """Flatten scenes into the `jobs` list the ordinary validator checks (sizes, frames, files...)."""
    problems = [
        FieldProblem(
            source, str(key), f"unknown key in a storyboard manifest; valid: {', '.join(STORYBOARD)}"
        )
        for key in doc
        if key not in STORYBOARD
    ]
    elements = _elements(doc, source, problems)
    jobs: list[dict[str, Any]] = []
    scenes: list[str] = []
    raw_scenes = doc.get("scenes")
    if not isinstance(raw_scenes, list) or not raw_scenes:
        problems.append(FieldProblem(source, "scenes", "must be a non-empty list of {name, shots}"))
    for s, scene in enumerate(raw_scenes if isinstance(raw_scenes, list) else []):
        usable = _usable_scene(scene, f"scenes[{s}]", source, problems)
        if usable is not None:
            name, shots = usable
            shot_jobs = _shot_jobs(shots, name, f"scenes[{s}]", elements, source, problems, limits)
            jobs += shot_jobs
            scenes += [name] * len(shot_jobs)
    document = {key: doc[key] for key in ("base_seed", "defaults") if key in doc}
    document["jobs"] = jobs
    return StoryboardJobs(document, tuple(scenes)), problems


def _usable_scene(
    scene: object, where: str, source: str, problems: list[FieldProblem]
) -> tuple[str, list[object]] | None:
    """(name, shots) of a scene with a usable shape and name; unknown keys are reported, not fatal."""
    if (
        not isinstance(scene, Mapping)
        or not isinstance(scene.get("name"), str)
        or not isinstance(scene.get("shots"), list)
        or not scene["shots"]
    ):
        problems.append(FieldProblem(source, where, "needs a string 'name' and a non-empty 'shots' list"))
        return None
    name, shots = scene["name"], scene["shots"]
    if not valid_name(name):
        message = (
            f"scene name {quote(name)} cannot name its shots' jobs (<scene>__shotNN): use a "
            "non-empty name without '/', '\\', control or bidi characters"
        )
        problems.append(FieldProblem(source, f"{where}.name", message))
        return None
    for key in scene:
        if key not in SCENE:
            problems.append(FieldProblem(source, f"{where}.{key}", f"unknown key; valid: {', '.join(SCENE)}"))
    return name, shots


def _shot_jobs(
    shots: list[object],
    scene: str,
    where: str,
    elements: Mapping[str, Element],
    source: str,
    problems: list[FieldProblem],
    limits: Limits,
) -> list[dict[str, Any]]:
    """One job per usable shot: elements injected, each shot after the first prefixed with the previous
    shot's action, named `<scene>__shotNN` unless it names itself."""
    jobs = []
    previous_action: str | None = None
    for k, shot in enumerate(shots):
        at = f"{where}.shots[{k}]"
        if not isinstance(shot, Mapping) or not isinstance(shot.get("prompt"), str):
            problems.append(FieldProblem(source, at, "a shot needs at least a string 'prompt'"))
            continue
        if "sweep" in shot:
            problems.append(FieldProblem(source, f"{at}.sweep", "sweeps are not allowed inside a storyboard"))
        listed = shot.get("elements", [])
        if not isinstance(listed, list):
            problems.append(FieldProblem(source, f"{at}.elements", "must be a list of element names"))
        names = [str(x) for x in listed] if isinstance(listed, list) else []
        prefix = NARRATIVE_PREFIX.format(action=previous_action, prompt="") if k > 0 else ""
        length = len(prefix) + injected_length(shot["prompt"], names, elements)
        if length > limits.max_prompt_chars:  # counted first: built, it could be billions of characters
            message = (
                f"is {length:,} characters once @mentions become trigger words"
                + (" and the previous shot's action is prefixed" if prefix else "")
                + f", over the limit of {limits.max_prompt_chars:,}; shorten it (or the triggers) or raise "
                "limits.max_prompt_chars"
            )
            problems.append(FieldProblem(source, f"{at}.prompt", message))
            prompt, unknown = shot["prompt"][: limits.max_prompt_chars], list[str]()  # a stand-in: refused
        else:
            prompt, unknown = inject_elements(shot["prompt"], names, elements)
            prompt = prefix + prompt
        for name in dict.fromkeys(unknown):
            known = ", ".join(elements) or "none defined"
            message = f"unknown element {quote(name)}; known: {known[:200]}"
            problems.append(FieldProblem(source, f"{at}.elements", message))
        action = shot.get("action")
        previous_action = str(action) if action else shot["prompt"]
        job = {key: value for key, value in shot.items() if key not in SHOT_ONLY}
        job["prompt"] = prompt
        job.setdefault("name", f"{scene}__shot{k + 1:02d}")
        jobs.append(job)
    return jobs
