"""Input path resolution (docs/behaviour.md): URLs, /projects, manifest-relative paths, the sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ltx2_batch.config import PathsConfig
from ltx2_batch.manifest.paths import InputRoots, resolve_input_path, url_to_path


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, InputRoots]:
    """cwd/manifests/m.yaml + cwd/projects/p1/assets/... + cwd/models/loras + an outside folder."""
    cwd = tmp_path / "cwd"
    (cwd / "manifests" / "img").mkdir(parents=True)
    (cwd / "manifests" / "img" / "cat.png").write_bytes(b"cat")
    (cwd / "projects" / "p1" / "assets").mkdir(parents=True)
    (cwd / "projects" / "p1" / "assets" / "my image.png").write_bytes(b"a")
    (cwd / "projects" / "p1" / "assets" / "café ☕.png").write_bytes(b"b")
    (cwd / "models" / "loras").mkdir(parents=True)
    (cwd / "models" / "loras" / "style.safetensors").write_bytes(b"l")
    (cwd / "shared").mkdir()
    (cwd / "shared" / "ok.png").write_bytes(b"s")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.png").write_bytes(b"x")
    roots = InputRoots.for_manifest("manifests/m.yaml", PathsConfig(allowed_roots=["shared"]), cwd, "models")
    return cwd, roots


def test_url_is_reduced_to_its_decoded_path() -> None:
    assert url_to_path("http://localhost:5173/projects/abc/assets/my%20image.png") == (
        "/projects/abc/assets/my image.png"
    )
    assert url_to_path("https://h/projects/a/caf%C3%A9%20%E2%98%95.png?x=1#f") == "/projects/a/café ☕.png"
    assert url_to_path("img/cat.png") == "img/cat.png"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("img/cat.png", "manifests/img/cat.png"),
        ("./img/../img/cat.png", "manifests/img/cat.png"),
        ("/projects/p1/assets/my image.png", "projects/p1/assets/my image.png"),
        ("http://localhost:5173/projects/p1/assets/my%20image.png", "projects/p1/assets/my image.png"),
        (
            "https://example.org/projects/p1/assets/caf%C3%A9%20%E2%98%95.png",
            "projects/p1/assets/café ☕.png",
        ),
    ],
)
def test_resolves_inside_roots(layout: tuple[Path, InputRoots], raw: str, expected: str) -> None:
    cwd, roots = layout
    found = resolve_input_path(raw, roots)
    assert found.ok, found.error
    assert found.path == os.path.realpath(cwd / expected)


def test_absolute_path_under_an_allowed_root(layout: tuple[Path, InputRoots]) -> None:
    cwd, roots = layout
    assert resolve_input_path(str(cwd / "shared" / "ok.png"), roots).path == str(cwd / "shared" / "ok.png")
    assert resolve_input_path(str(cwd / "manifests" / "img" / "cat.png"), roots).ok


def test_absolute_path_outside_is_rejected(layout: tuple[Path, InputRoots]) -> None:
    cwd, roots = layout
    found = resolve_input_path(str(cwd.parent / "outside" / "secret.png"), roots)
    assert not found.ok
    assert "outside the allowed folders" in found.error
    assert "paths.allowed_roots" in found.error


@pytest.mark.parametrize(
    "raw",
    [
        "../../outside/secret.png",
        "img/../../../outside/secret.png",
        "/projects/../../outside/secret.png",
        "http://h/projects/..%2F..%2Foutside/secret.png",
    ],
)
def test_dotdot_traversal_is_rejected(layout: tuple[Path, InputRoots], raw: str) -> None:
    _, roots = layout
    found = resolve_input_path(raw, roots)
    assert not found.ok
    assert "escapes the allowed folders" in found.error or "outside the allowed folders" in found.error
    assert found.path == ""


def test_dotdot_that_stays_inside_is_fine(layout: tuple[Path, InputRoots]) -> None:
    # manifests/../shared is outside the manifest folder but inside an allowed root
    cwd, roots = layout
    assert resolve_input_path("../shared/ok.png", roots).path == str(cwd / "shared" / "ok.png")


def test_symlink_out_is_rejected(layout: tuple[Path, InputRoots]) -> None:
    cwd, roots = layout
    (cwd / "manifests" / "img" / "link.png").symlink_to(cwd.parent / "outside" / "secret.png")
    (cwd / "manifests" / "dirlink").symlink_to(cwd.parent / "outside")
    for raw in ("img/link.png", "dirlink/secret.png"):
        found = resolve_input_path(raw, roots)
        assert not found.ok
        assert "symlink" in found.error
        assert "outside" in found.error


def test_symlink_within_roots_is_followed(layout: tuple[Path, InputRoots]) -> None:
    cwd, roots = layout
    (cwd / "manifests" / "img" / "inner.png").symlink_to(cwd / "shared" / "ok.png")
    assert resolve_input_path("img/inner.png", roots).path == str(cwd / "shared" / "ok.png")


def test_missing_directory_and_odd_inputs(layout: tuple[Path, InputRoots]) -> None:
    _, roots = layout
    assert "file not found" in resolve_input_path("img/dog.png", roots).error
    assert "not a regular file" in resolve_input_path("img", roots).error
    assert "empty" in resolve_input_path("  ", roots).error
    assert "NUL" in resolve_input_path("a\x00b", roots).error
    assert "unsupported URL scheme" in resolve_input_path("ftp://h/projects/p1/x.png", roots).error
    assert "unsupported URL scheme" in resolve_input_path("file:///etc/passwd", roots).error


def test_loras_may_live_under_models(layout: tuple[Path, InputRoots]) -> None:
    cwd, roots = layout
    models = cwd / "models" / "loras" / "style.safetensors"
    assert resolve_input_path("loras/style.safetensors", roots, lora=True).path == str(models)
    assert resolve_input_path(str(models), roots, lora=True).ok
    # images may not: models/ is an allowed root for LoRAs only
    assert not resolve_input_path(str(models), roots).ok
    assert not resolve_input_path("loras/style.safetensors", roots).ok
    missing = resolve_input_path("loras/other.safetensors", roots, lora=True).error
    assert missing.startswith("file not found") and missing.count("other.safetensors") == 3  # both places


def test_the_lora_root_is_the_models_home_not_the_launch_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a model root the LoRA root is the models home ($LTX2_BATCH_MODELS here), wherever the
    launch is: a `models/` folder in the launch directory is not looked in."""
    home = tmp_path / "home"
    (home / "loras").mkdir(parents=True)
    (home / "loras" / "style.safetensors").write_bytes(b"l")
    (tmp_path / "cwd" / "models" / "loras").mkdir(parents=True)
    (tmp_path / "cwd" / "models" / "loras" / "local.safetensors").write_bytes(b"l")
    monkeypatch.setenv("LTX2_BATCH_MODELS", str(home))
    for cwd in (tmp_path / "cwd", tmp_path):
        roots = InputRoots.for_manifest(tmp_path / "m.yaml", PathsConfig(), cwd)
        assert roots.models_root == str(home)
        assert resolve_input_path("loras/style.safetensors", roots, lora=True).path == str(
            home / "loras" / "style.safetensors"
        )
        assert not resolve_input_path("loras/local.safetensors", roots, lora=True).ok


def test_relative_config_roots_are_taken_from_cwd(tmp_path: Path) -> None:
    roots = InputRoots.for_manifest(tmp_path / "m" / "x.yaml", PathsConfig(projects_root="pr"), tmp_path)
    assert roots.manifest_dir == os.path.realpath(tmp_path / "m")
    assert roots.projects_root == os.path.realpath(tmp_path / "pr")
    absolute = InputRoots.for_manifest("x.yaml", PathsConfig(projects_root=str(tmp_path / "abs")), "/")
    assert absolute.projects_root == os.path.realpath(tmp_path / "abs")
