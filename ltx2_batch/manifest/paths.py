"""Input-file path resolution for manifests, with a sandbox (docs/behaviour.md, "Input file paths").

Owns how a path string written in a manifest (image, LoRA, reference video) becomes an absolute, real
file path, and the rule that the file must lie under an allowed root after symlinks are followed. URLs are
reduced to their decoded path and never fetched. Must not hash or read files (`resolver.py` does that once
per distinct file) and must not raise for a bad path: it returns the reason so the loader can report every
problem at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ltx2_batch.config import PathsConfig
from ltx2_batch.core.tool_paths import models_home
from ltx2_batch.manifest.quote import quote

PROJECTS_PREFIX = "/projects"
_NOT_FOUND = "file not found: "
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class InputRoots:
    """Where input files may live. Every path here is absolute and already passed through realpath."""

    manifest_dir: str
    projects_root: str
    extra: tuple[str, ...] = ()
    models_root: str = ""  # LoRAs only: the model's root (model.root, else the models home)

    @classmethod
    def for_manifest(
        cls,
        manifest_path: str | Path,
        paths: PathsConfig,
        cwd: str | Path,
        models_root: str | Path | None = None,
    ) -> InputRoots:
        """Relative config roots are taken from `cwd` (the launch directory), not from the manifest. LoRAs
        are also looked for under `models_root` (default: the models home, never the launch directory)."""
        base = Path(cwd)

        def real(p: str | Path) -> str:
            """`p` taken from the launch directory, symlinks resolved."""
            return os.path.realpath(base / p)

        return cls(
            manifest_dir=str(Path(real(manifest_path)).parent),
            projects_root=real(paths.projects_root),
            extra=tuple(real(p) for p in paths.allowed_roots),
            models_root=real(models_root if models_root is not None else models_home()),
        )

    def allowed(self, *, lora: bool) -> tuple[str, ...]:
        """The roots a file may lie under; a LoRA may also come from the models folder."""
        roots = (self.manifest_dir, self.projects_root, *self.extra)
        return (*roots, self.models_root) if lora and self.models_root else roots


@dataclass(frozen=True)
class ResolvedPath:
    """Either `path` (absolute, real, a regular file) or `error` (why not, in words for the user)."""

    path: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        """The path resolved (no error)."""
        return not self.error


_HTTP = ("http://", "https://")


def is_http_url(raw: str) -> bool:
    """URL schemes are case-insensitive (RFC 3986): `HTTP://` is `http://`."""
    return raw[:8].lower().startswith(_HTTP)


def url_to_path(raw: str) -> str:
    """`http(s)://host/projects/a/my%20image.png` -> `/projects/a/my image.png`; other strings unchanged."""
    if is_http_url(raw):
        return unquote(urlparse(raw).path)
    return raw


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _candidate(path: str, base: str, roots: InputRoots) -> str:
    """Absolute, lexically normalised path; `/projects/...` is re-rooted under the projects root."""
    joined: str | Path = path
    if path == PROJECTS_PREFIX or path.startswith(PROJECTS_PREFIX + "/"):
        joined = Path(roots.projects_root, path[len(PROJECTS_PREFIX) :].lstrip("/"))
    elif not Path(path).is_absolute():
        joined = Path(base, path)
    return os.path.normpath(joined)  # lexical: `..` collapses before the allowed-folder check


def resolve_input_path(raw: str, roots: InputRoots, *, lora: bool = False) -> ResolvedPath:
    """Resolve one manifest path string; LoRA paths are also searched under the models root."""
    if not raw.strip():
        return ResolvedPath(error="path is empty")
    if "\x00" in raw:
        return ResolvedPath(error="path contains a NUL byte")
    if _URL_SCHEME.match(raw) and not is_http_url(raw):
        return ResolvedPath(error=f"unsupported URL scheme in {quote(raw)}: only http(s) URLs and file paths")
    path = url_to_path(raw)
    if "\x00" in path:  # `%00` decodes to NUL, which no file name may hold
        return ResolvedPath(error=f"URL {quote(raw)} decodes to a path with a NUL byte (%00); remove it")
    bases = [roots.manifest_dir]
    if lora and roots.models_root:
        bases.append(roots.models_root)
    candidates = [_candidate(path, base, roots) for base in bases]
    return _first_found(raw, [_check(raw, c, roots.allowed(lora=lora)) for c in candidates], candidates)


def _first_found(raw: str, results: list[ResolvedPath], candidates: list[str]) -> ResolvedPath:
    """The first place that holds the file; when none does, a not-found that names every place looked."""
    found = next((r for r in results if r.ok), None)
    if found is not None:
        return found
    if len(results) > 1 and all(r.error.startswith(_NOT_FOUND) for r in results):
        return ResolvedPath(error=f"{_NOT_FOUND}{quote(raw)} (looked for {' and '.join(candidates)})")
    return results[0]


def _check(raw: str, candidate: str, allowed: tuple[str, ...]) -> ResolvedPath:
    allowed_text = ", ".join(allowed)
    if not any(_within(candidate, root) for root in allowed):
        how = (
            "escapes the allowed folders via '..'"
            if ".." in Path(raw).parts
            else "is outside the allowed folders"
        )
        return ResolvedPath(
            error=f"{quote(raw)} {how} (resolves to {candidate}); allowed: {allowed_text} "
            "(add a folder to paths.allowed_roots to allow it)"
        )
    real = os.path.realpath(candidate)
    if not any(_within(real, root) for root in allowed):
        return ResolvedPath(
            error=f"{quote(raw)} is a symlink that leads outside the allowed folders ({candidate} -> "
            f"{real}); allowed: {allowed_text}"
        )
    # os.path answers False for every OSError (a name too long); Path.exists/is_file raise on it
    if not os.path.exists(real):  # noqa: PTH110 - a hostile name must get this message, not a traceback
        return ResolvedPath(error=f"{_NOT_FOUND}{quote(raw)} (looked for {candidate})")
    if not os.path.isfile(real):  # noqa: PTH113 - as above: False, not OSError, for a name too long
        return ResolvedPath(error=f"{quote(raw)} is not a regular file ({real})")
    return ResolvedPath(path=real)
