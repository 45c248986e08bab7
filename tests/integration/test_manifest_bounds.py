"""Validation is bounded: the whole bad-manifest corpus is refused in one child process whose address
space and CPU time are capped.

A refusal that needs gigabytes or minutes (an alias bomb walked whole, a 10^7-chunk plan, a decompression
bomb decoded) dies here instead of passing: each file must end in a ManifestError of readable size, never
a MemoryError, a RecursionError or a hang. One child for the whole corpus: the limits hold per process,
and one interpreter start is cheap next to one per file. Each file's messages are checked in process by
tests/unit/test_manifest_corpus.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.manifests import CORPUS_FILES, corpus_folder

ADDRESS_SPACE_BYTES = 3 << 30
CPU_SECONDS = 240
MAX_MESSAGE_CHARS = 20_000

_BOUNDED_LOADER = textwrap.dedent(
    f"""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE_BYTES}, {ADDRESS_SPACE_BYTES}))
    resource.setrlimit(resource.RLIMIT_CPU, ({CPU_SECONDS}, {CPU_SECONDS}))
    from ltx2_batch.config import ChainingConfig, PathsConfig
    from ltx2_batch.errors import ManifestError
    from ltx2_batch.manifest.load import open_manifest
    out = {{}}
    for path in sys.argv[1:]:
        try:
            stream = open_manifest(
                path, chaining=ChainingConfig(), paths=PathsConfig(), model_fingerprint="fp"
            )
            sum(1 for _ in stream.iter_jobs())
            out[path] = "accepted"
        except ManifestError as exc:
            out[path] = "refused" if len(str(exc)) < {MAX_MESSAGE_CHARS} else "refused with a huge message"
        except BaseException as exc:
            out[path] = type(exc).__name__
    print(json.dumps(out))
    """
)


def test_every_bad_manifest_is_refused_within_bounded_memory_and_cpu(tmp_path: Path) -> None:
    folder = corpus_folder(tmp_path)
    targets = [str(shutil.copy(path, folder / path.name)) for path in CORPUS_FILES]
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED_LOADER, *targets],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == dict.fromkeys(targets, "refused")
