"""`ltx2-batch`: the Hydra app. A thin shell: compose config -> typed dataclasses -> plan or run.

`main` only converts the DictConfig; `run(cfg)` does the work and is what tests call (calling a
`@hydra.main` function from a test misbehaves, FIELD_NOTES).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ltx2_batch.config import AppConfig, register_configs
from ltx2_batch.errors import Ltx2BatchError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("ltx2_batch")

register_configs()


def to_app_config(cfg: DictConfig) -> AppConfig:
    app = OmegaConf.to_object(cfg)
    if not isinstance(app, AppConfig):  # composed without the schema: a packaging bug, not user error
        raise TypeError(f"config did not compose to AppConfig (got {type(app).__name__})")
    return app


def run(app: AppConfig, project_root: Path | None = None) -> int:
    """Plan or run a batch; returns the process exit code."""
    from ltx2_batch.driver import format_report, run_batch
    from ltx2_batch.planning import plan_batch, plan_table

    root = project_root or Path.cwd()
    try:
        if app.plan:
            from ltx2_batch.ledger.store import completed_job_ids

            print(plan_table(plan_batch(app, root, completed=completed_job_ids)))
            return 0
        report = run_batch(app, root)
    except Ltx2BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return report.exit_code


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> int:
    code = run(to_app_config(cfg))
    if code:
        sys.exit(code)
    return code


def main() -> None:
    # Progress is the driver's job (one line per job/chunk); the official denoising loop's tqdm bars would
    # interleave with it from every worker. Set at the process edge, before any worker starts.
    os.environ.setdefault("TQDM_DISABLE", "1")
    _hydra_main()
