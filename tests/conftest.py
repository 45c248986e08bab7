"""Shared test helpers: compose the real Hydra config, and small manifests written into tmp dirs."""

from __future__ import annotations

import copy
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ltx2_batch.cli import CONF_DIR, to_app_config
from ltx2_batch.config import AppConfig
from ltx2_batch.core.jobs import PipelineKind, RenderJob, RenderMode
from ltx2_batch.core.tool_paths import MODELS_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent

# Expensive shared things (tiny backends, Ray) live in tests/fixtures/, one module per kind.
pytest_plugins = [
    "tests.fixtures.backends",
    "tests.fixtures.ray",
    "tests.fixtures.run_backends",
    "tests.fixtures.s3",
]

# A private local Ray for tests does not need token auth (it would write ~/.ray/auth_token).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The unit tier first (a stable sort: files keep their order): its failures come in seconds, and its
    import guard (tests/unit/conftest.py) sees a process that has not loaded torch or Ray yet."""
    unit = REPO_ROOT / "tests" / "unit"
    items.sort(key=lambda item: 0 if item.path.is_relative_to(unit) else 1)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout_s` (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        pause.wait(poll_s)


def _parent_and_session(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[3])


def _descends_from(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        pid = _parent_and_session(pid)[0]
    return False


def pids_titled(prefix: bytes, *, under: int | None = None, session: int | None = None) -> list[int]:
    """Processes of this test's own whose command line starts with `prefix` (Ray titles an actor
    `ray::Class.method`): descendants of `under` (this process, by default: an in-process Ray's workers
    are its raylet's children), or members of the process session `session` (a command started with
    start_new_session: its private Ray's workers stay in that session after it exits). Other programs'
    Ray workers on the same machine are never counted (nor killed)."""
    root = os.getpid() if under is None and session is None else under
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            try:
                if not (entry / "cmdline").read_bytes().startswith(prefix):
                    continue
                if (session is not None and _parent_and_session(pid)[1] == session) or (
                    root is not None and _descends_from(pid, root)
                ):
                    found.append(pid)
            except (OSError, IndexError, ValueError):  # gone while being read
                continue
    return found


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's one models root, as `$LTX2_BATCH_MODELS` (restored afterwards): in-process runs, CLI
    subprocesses and Ray workers all resolve an unset `model.root` to it, so the tiny set (and tiny23, the
    random sets) is built once per session, by whichever test needs it first, and nothing builds it twice.
    Nothing is built here."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_ENV, str(root))
        yield root


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """torch renders on one intra-op thread in this process, in CLI subprocesses and Ray workers
    (`OMP_NUM_THREADS=1`, restored after; Ray sets it for its workers anyway when unset). The tiny models
    gain nothing from threads, and beside ffmpeg, a stitch thread and the other tests on a small or shared
    CPU two spinning torch threads made a tiny render 10-70x slower (64x64 two-stage: 8.3 s vs 0.12 s)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        torch = sys.modules.get("torch")  # imported at collection when an integration module needs it;
        before = torch.get_num_threads() if torch is not None else None  # else the variable applies
        if torch is not None:
            torch.set_num_threads(1)
        yield
        if torch is not None and before is not None:
            torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_root(models_dir: Path) -> Path:
    """The embedded tiny (LTX-2) set in the session's models root, built on first use."""
    from ltx2_batch.backends.tiny import TINY_DIR_NAME, ensure_tiny_models

    ensure_tiny_models(models_dir / TINY_DIR_NAME)
    return models_dir / TINY_DIR_NAME


@pytest.fixture(scope="session")
def tiny23_root(models_dir: Path) -> Path:
    """The embedded tiny23 (LTX-2.3) set beside it, built on first use."""
    from ltx2_batch.backends import tiny23

    tiny23.ensure_tiny_models(models_dir / tiny23.TINY_DIR_NAME)
    return models_dir / tiny23.TINY_DIR_NAME


def compose_app(*overrides: str) -> AppConfig:
    """The typed config the CLI would compose from these overrides (a fresh copy: tests may change it).

    Hydra is initialised on conf/ once for the session (each initialisation costs a fifth of a compose)
    and a composition is kept per override list (the same overrides compose the same config): the
    unit tier composes about 120 times, at 80-150 ms each on this machine."""
    return copy.deepcopy(_composed(overrides))


@functools.lru_cache(maxsize=256)
def _composed(overrides: tuple[str, ...]) -> AppConfig:
    if not GlobalHydra.instance().is_initialized():
        initialize_config_dir(config_dir=CONF_DIR, version_base="1.3")  # not as a context: it stays
    return to_app_config(compose("config", overrides=list(overrides)))


class AppFactory(Protocol):
    """What the `app_factory` fixture gives a test: `compose_app` with outputs under its tmp_path."""

    def __call__(self, *overrides: str) -> AppConfig: ...


@pytest.fixture
def app_factory(tmp_path: Path) -> AppFactory:
    """compose_app with outputs under tmp_path and progress lines on."""

    def make(*overrides: str) -> AppConfig:
        return compose_app(f"output.root={tmp_path / 'outputs'}", *overrides)

    return make


def write_manifest(folder: Path, text: str, name: str = "m.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _tiny_mp4(path: Path) -> None:
    """Nine 32x32 frames with PyAV: a real reference video, made in milliseconds."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(9):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_input_files(folder: Path, names: tuple[str, ...]) -> None:
    """Input files a manifest names, real enough for validation: images open, videos decode; other files
    (LoRAs) hold their own name as bytes (validation only hashes them)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        target = folder / name
        if target.suffix == ".png":
            Image.new("RGB", (16, 16), (40 * i % 256, 90, 160)).save(target)
        elif target.suffix == ".mp4":
            _tiny_mp4(target)
        else:
            target.write_bytes(name.encode())


TINY_PROMPT = "A cat walks on a sunny street, soft piano music."


def tiny_job(**kw: object) -> RenderJob:
    """A small distilled job for the tiny model (64x64, 9 frames, seed 3); `kw` replaces any field."""
    base = {
        "name": "t",
        "prompt": TINY_PROMPT,
        "width": 64,
        "height": 64,
        "num_frames": 9,
        "frame_rate": 24.0,
        "seed": 3,
        "pipeline": PipelineKind.DISTILLED,
        "mode": RenderMode.VIDEO,
        "num_inference_steps": 2,
    }
    return RenderJob(**{**base, **kw})  # type: ignore[arg-type]
