"""A manifest's path strings -> checked, hashed input files, each distinct one once.

Owns `InputKind` (what a path names: decides where it may live and how its content is checked),
`ResolvedInput` (a real path and digest, or the reason in words), the `Resolve` callback the per-job
readers call, and `InputCache`, the loader's implementation of it: it resolves each distinct path string
once (`paths.py`: the sandbox), hashes each distinct real file once and checks each distinct (file, kind)
once (`inputs.py`: an image's header, a reference video's first frame; a LoRA file through the check the
weights offer, backends/lora_check.py, called back so that this package reads no model file itself).
Must not raise for a bad input: the reason goes back to the reader, so every problem of a manifest is
reported at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ltx2_batch.core.jobs import file_sha256
from ltx2_batch.manifest.inputs import audio_problem, image_problem, video_problem
from ltx2_batch.manifest.limits import DEFAULT_LIMITS, Limits
from ltx2_batch.manifest.paths import InputRoots, resolve_input_path
from ltx2_batch.manifest.quote import quote


@dataclass(frozen=True)
class ResolvedInput:
    """What the loader's resolver returns for one path string: a real path and digest, or an error."""

    path: str = ""
    sha256: str = ""
    error: str = ""


class InputKind(str, Enum):
    """What a manifest path names: decides where it may live (LoRAs also under models/) and how the
    loader checks its content (image headers, a reference video's first frame)."""

    IMAGE = "image"
    VIDEO = "video"
    LORA = "lora"
    AUDIO = "audio"  # a2vid's driving audio (any file with an audio stream)


Resolve = Callable[[str, InputKind], ResolvedInput]  # (raw path, kind) -> ResolvedInput
LoraCheck = Callable[[str], str | None]  # a LoRA file's path -> why it would not change the model, or None


class InputCache:
    """Resolves each distinct path string once, hashes each distinct real file once and checks each
    distinct (file, kind) once: an image's header, a reference video's first frame."""

    def __init__(
        self, roots: InputRoots, limits: Limits = DEFAULT_LIMITS, lora_check: LoraCheck | None = None
    ) -> None:
        self._roots = roots
        self._limits = limits
        self._lora_check = lora_check
        self._resolved: dict[tuple[str, InputKind], ResolvedInput] = {}
        self._digests: dict[str, str] = {}
        self._content: dict[tuple[str, InputKind], str | None] = {}

    def __call__(self, raw: str, kind: InputKind) -> ResolvedInput:
        key = (raw, kind)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(raw, kind)
        return self._resolved[key]

    def _resolve(self, raw: str, kind: InputKind) -> ResolvedInput:
        found = resolve_input_path(raw, self._roots, lora=kind is InputKind.LORA)
        if not found.ok:
            return ResolvedInput(error=found.error)
        if found.path not in self._digests:
            try:
                self._digests[found.path] = file_sha256(found.path)
            except OSError as exc:
                return ResolvedInput(error=f"cannot read {quote(raw)}: {exc}")
        if (found.path, kind) not in self._content:
            self._content[found.path, kind] = self._content_problem(found.path, kind)
        problem = self._content[found.path, kind]
        if problem:
            return ResolvedInput(error=f"{quote(raw)} {problem}")
        return ResolvedInput(found.path, self._digests[found.path])

    def _content_problem(self, path: str, kind: InputKind) -> str | None:
        if kind is InputKind.IMAGE:
            return image_problem(path, self._limits.max_image_pixels)
        if kind is InputKind.VIDEO:
            return video_problem(path, self._limits.max_image_pixels)
        if kind is InputKind.AUDIO:
            return audio_problem(path)
        # a LoRA against the model's transformer, from both headers, where the driver can read them
        return self._lora_check(path) if self._lora_check is not None else None
