"""Every model preset finds its weights the same way: under the models home ($LTX2_BATCH_MODELS, else a
checkout's models/, else the user cache), never in the launch directory (the LTX-2.3 presets and tiny23
said `root: models`, so `$LTX2_BATCH_MODELS` was ignored and the wheel built ./models/tiny23 wherever it
was launched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.backends.models import model_root
from ltx2_batch.core.tool_paths import CONF_DIR, MODELS_ENV
from tests.conftest import compose_app

PRESETS = sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml"))


def test_the_presets_are_all_there() -> None:
    assert {"tiny", "tiny23", "ltx2_distilled", "ltx23_distilled", "fake"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves_its_root_from_the_models_home(
    preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "weights"
    monkeypatch.setenv(MODELS_ENV, str(home))
    app = compose_app(f"model={preset}")
    assert app.model.root is None  # no preset pins a folder of its own
    for launch_dir in (tmp_path / "a", tmp_path / "b"):
        assert model_root(app.model, launch_dir) == home  # the same place from anywhere
