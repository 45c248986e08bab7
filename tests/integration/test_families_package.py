"""The family tables agree with the installed official package (ltx-pipelines 1.0.0): default parameters,
sigma schedules, and `detect_params` deciding the family from the same `model_version` metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ltx2_batch.backends import compat
from ltx2_batch.backends.checkpoint_info import checkpoint_info
from ltx2_batch.core.families import (
    DISTILLED_SIGMAS,
    LTX2_PARAMS,
    LTX23_HQ_PARAMS,
    LTX23_PARAMS,
    FamilyParams,
    GuidanceDefaults,
    ModelFamily,
)

compat.prepare()
from ltx_pipelines.utils import constants  # noqa: E402 - after the compat shims


def _guidance(params: object) -> GuidanceDefaults:
    return GuidanceDefaults(
        params.cfg_scale,  # type: ignore[attr-defined]
        params.stg_scale,  # type: ignore[attr-defined]
        params.rescale_scale,  # type: ignore[attr-defined]
        params.modality_scale,  # type: ignore[attr-defined]
        params.skip_step,  # type: ignore[attr-defined]
        tuple(params.stg_blocks),  # type: ignore[attr-defined]
    )


def _params(official: constants.PipelineParams) -> FamilyParams:
    return FamilyParams(
        official.num_inference_steps,
        official.stage_1_height,
        official.stage_1_width,
        official.num_frames,
        official.frame_rate,
        _guidance(official.video_guider_params),
        _guidance(official.audio_guider_params),
    )


@pytest.mark.parametrize(
    ("ours", "official"),
    [
        (LTX2_PARAMS, constants.LTX_2_PARAMS),
        (LTX23_PARAMS, constants.LTX_2_3_PARAMS),
        (LTX23_HQ_PARAMS, constants.LTX_2_3_HQ_PARAMS),
    ],
)
def test_family_params_match_the_package(ours: FamilyParams, official: constants.PipelineParams) -> None:
    assert ours == _params(official)


def test_sigma_schedules_match_the_package() -> None:
    assert list(DISTILLED_SIGMAS) == constants.DISTILLED_SIGMA_VALUES


@pytest.mark.parametrize("version", ["2.3.0", "2.3.1", "", "2.0.0"])
def test_detect_params_and_our_reader_agree(tmp_path: Path, version: str) -> None:
    meta = {"config": json.dumps({"transformer": {}})}
    if version:
        meta["model_version"] = version
    raw = json.dumps({"__metadata__": meta}).encode()
    path = tmp_path / "c.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    official = constants.detect_params(str(path))
    ours = checkpoint_info(path).family
    assert (official is constants.LTX_2_3_PARAMS) == (ours is ModelFamily.ltx23)
