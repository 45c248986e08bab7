"""Every path a run writes resolves inside output.root: run names are one folder name, and symlinked run
folders are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.errors import ConfigError
from ltx2_batch.run.planning import output_dir_for
from ltx2_batch.storage.layout import run_name_problem
from tests.conftest import compose_app


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "a/b", "a\\b", ".", "..", "x\u202ey", "x\x00"])
def test_a_run_name_that_is_not_one_folder_name_is_refused(name: str, tmp_path: Path) -> None:
    assert run_name_problem(name)
    app = compose_app(f"output.root={tmp_path / 'out'}")
    app.output.run_name = name
    with pytest.raises(ConfigError, match=r"output\.run_name=<one folder name>"):
        output_dir_for(app, tmp_path / "m.yaml", tmp_path)


def test_a_manifest_whose_stem_is_dot_dot_is_refused(tmp_path: Path) -> None:
    app = compose_app(f"output.root={tmp_path / 'out'}")
    with pytest.raises(ConfigError, match=r"manifest's file stem \(\.\.\.yaml\) is '\.\.'"):
        output_dir_for(app, tmp_path / "...yaml", tmp_path)


def test_ordinary_names_and_a_symlinked_root_are_fine(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "disk")  # outputs on another disk: allowed
    app = compose_app(f"output.root={tmp_path / 'out'}")
    assert output_dir_for(app, tmp_path / "demo.yaml", tmp_path) == tmp_path / "out" / "demo"
    app.output.run_name = "try 1 (café)"
    assert output_dir_for(app, tmp_path / "demo.yaml", tmp_path).name == "try 1 (café)"


@pytest.mark.parametrize("folder", ["generated", "metadata", "ledger", "chunks"])
def test_a_symlinked_run_folder_is_refused(folder: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = tmp_path / "out" / "demo"
    run_dir.mkdir(parents=True)
    (run_dir / folder).symlink_to(elsewhere)
    app = compose_app(f"output.root={tmp_path / 'out'}")
    with pytest.raises(ConfigError, match=f"{folder} is a symlink"):
        output_dir_for(app, tmp_path / "demo.yaml", tmp_path)


def test_a_symlinked_run_dir_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "demo").symlink_to(tmp_path / "elsewhere")
    app = compose_app(f"output.root={tmp_path / 'out'}")
    with pytest.raises(ConfigError, match=r"outside output\.root"):
        output_dir_for(app, tmp_path / "demo.yaml", tmp_path)
