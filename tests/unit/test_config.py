"""Hydra composition: every config file composes into the typed schema; typos and wrong types are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from ltx2_batch.cli import CONF_DIR
from ltx2_batch.config import AppConfig, EngineKind, ModelSource
from tests.conftest import compose_app

MODELS = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
ENGINES = sorted(p.stem for p in (Path(CONF_DIR) / "engine").glob("*.yaml"))


def _compose(*overrides: str) -> AppConfig:
    return compose_app(*overrides)


def test_default_is_tiny_model_local_engine_demo_manifest() -> None:
    app = _compose()
    assert app.model.source is ModelSource.tiny
    assert app.engine.kind is EngineKind.local
    assert app.manifest == "demo"
    assert app.output.root == "outputs" and app.output.run_name is None


def test_expected_groups_exist() -> None:
    assert {"tiny", "ltx2_distilled", "ltx2_dev", "ltx2_fp8"} <= set(MODELS)
    assert {"local", "ray"} <= set(ENGINES)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_composes(model: str) -> None:
    app = _compose(f"model={model}", "engine=ray")  # the groups are independent: one engine each
    assert app.model.name == model
    assert app.model.checkpoints, "a model config must name at least one checkpoint"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_composes(engine: str) -> None:
    assert _compose(f"engine={engine}").engine.kind.value == engine


def test_full_precision_is_preferred_over_fp8() -> None:
    checkpoints = _compose("model=ltx2_distilled").model.checkpoints
    assert "fp8" not in checkpoints[0] and "fp8" in checkpoints[-1]


@pytest.mark.parametrize(
    "override",
    [
        "engine.num_wrkers=2",
        "engine.num_workers=two",
        "model.source=nope",
        "chaining.overlap_frames=1.5",
        "output.video_crf=high",
        "plan=maybe",
    ],
)
def test_unknown_keys_and_wrong_types_fail(override: str) -> None:
    with pytest.raises(ConfigCompositionException):
        _compose(override)


def test_any_field_overridable_on_command_line() -> None:
    app = _compose(
        "engine=ray",
        "engine.num_workers=3",
        "engine.address=auto",
        "chaining.overlap_frames=16",
        "output.run_name=try1",
        "model.device=cpu",
        "shard=1/4",
        "force=true",
    )
    assert (app.engine.num_workers, app.engine.address) == (3, "auto")
    assert app.chaining.overlap_frames == 16 and app.output.run_name == "try1"
    assert app.model.device == "cpu" and app.shard == "1/4" and app.force


def test_no_dictconfig_leaks_into_the_typed_config() -> None:
    app = _compose("model=ltx2_dev")
    assert isinstance(app.model.checkpoints, list)
    assert not OmegaConf.is_config(app.model)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("engine.num_workers=0", "num_workers must be >= 1"),
        ("engine.gpus_per_worker=-1", "gpus_per_worker must be >= 0"),
        ("engine.gpus_per_worker=0", "needs engine.num_workers"),
        ("engine.cpus_per_worker=0", "cpus_per_worker must be > 0"),
        ("engine.max_attempts=0", "max_attempts must be >= 1"),
    ],
)
def test_impossible_engine_settings_are_rejected_before_ray_starts(override: str, message: str) -> None:
    from ltx2_batch.errors import ConfigError
    from ltx2_batch.run.checks import check_engine

    with pytest.raises(ConfigError, match=message):
        check_engine(_compose("engine=ray", override).engine)
    check_engine(_compose("engine=ray", "engine.num_workers=2", "engine.gpus_per_worker=0").engine)


@pytest.mark.parametrize(
    ("mode", "cuda", "expected"),
    [
        ("auto", False, "OFF"),  # a CPU worker: the render already uses every core
        ("auto", True, "ADAPTIVE"),  # a CUDA worker: files, and the decode when it shortens the cycle
        ("off", True, "OFF"),
        ("encode", False, "ENCODE"),
        ("decode", False, "DECODE"),  # forced on any device: the decode on the files' thread
        ("decode", True, "DECODE"),
    ],
)
def test_overlap_setting_settles_per_worker_device(mode: str, cuda: bool, expected: str) -> None:
    from ltx2_batch.worker.overlap import Overlap, settle

    output = _compose(f"output.overlap={mode}").output
    settled = settle(output.overlap, cuda=cuda)
    assert settled is Overlap[expected]
    assert settled.encodes is (expected != "OFF")
    assert settled.decodes is (expected in ("DECODE", "ADAPTIVE"))


def test_an_unknown_overlap_setting_is_refused_by_the_schema() -> None:
    with pytest.raises(Exception, match="overlap"):
        _compose("output.overlap=sometimes")


def test_output_settings_an_encode_would_refuse_are_refused_before_rendering() -> None:
    from ltx2_batch.errors import ConfigError
    from ltx2_batch.run.checks import check_output

    with pytest.raises(ConfigError, match="video_crf"):
        check_output(_compose("output.video_crf=99").output)
    check_output(_compose("output.video_crf=0").output)
