"""The identity of the tool's own code: one hash of the installed package's source files.

A warm pool's actors keep running the code they were started with. A launch sends its jobs only to actors
whose code hash is its own (runners/pool_key.py), so an edited checkout, an upgraded install or another
user's version never renders a job with other code. `__version__` cannot tell: a checkout's edits and a
reinstall from another commit keep it.
Owns: which files count (every `.py` and `.yaml` file under the package, by relative path and content) and
the hash of them. Must not: import anything beyond the standard library, or write files.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ltx2_batch.core.tool_paths import PACKAGE_DIR

SOURCE_SUFFIXES = (".py", ".yaml")
CODE_HASH_CHARS = 16


def source_files(package_dir: Path) -> list[Path]:
    """The files whose bytes make the code's identity, in a stable order (compiled caches left out)."""
    found = [
        path
        for path in package_dir.rglob("*")
        if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts and path.is_file()
    ]
    return sorted(found, key=lambda path: path.relative_to(package_dir).as_posix())


@functools.cache
def code_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """A short hex digest of every source file's relative path and bytes (computed once per process: about
    110 files, a few milliseconds)."""
    digest = hashlib.sha256()
    for path in source_files(package_dir):
        relative = path.relative_to(package_dir).as_posix().encode()
        content = path.read_bytes()
        digest.update(len(relative).to_bytes(4, "big") + relative + len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()[:CODE_HASH_CHARS]
