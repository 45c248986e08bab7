"""sha256 of a run's media files and of each sidecar's parameters (timings and run ids left out).

Used to show that a refactor keeps outputs byte-identical: run `make demo` at two commits and diff the
output of `python bench/demo_digest.py outputs/demo` (paths inside the checkout are shown as <repo>).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

STABLE_KEYS = ("params", "job_id", "frames_written", "duration_s", "model_fingerprint", "name", "tags")


def digest_lines(run_dir: Path, repo: Path) -> list[str]:
    lines = []
    for sub in ("generated", "thumbnails"):
        for path in sorted((run_dir / sub).iterdir()):
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()[:16]} {sub}/{path.name}")
    for path in sorted((run_dir / "metadata").glob("*.json")):
        sidecar = json.loads(path.read_text())
        stable = json.dumps({k: sidecar[k] for k in STABLE_KEYS}, sort_keys=True).replace(str(repo), "<repo>")
        lines.append(f"{hashlib.sha256(stable.encode()).hexdigest()[:16]} params/{path.name}")
    return lines


if __name__ == "__main__":
    run_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/demo").resolve()
    print("\n".join(digest_lines(run_dir, Path(__file__).resolve().parents[1])))
