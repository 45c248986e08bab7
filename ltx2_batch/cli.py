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
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ltx2_batch.config import AppConfig, EngineConfig, ModelConfig
from ltx2_batch.errors import Ltx2BatchError
from ltx2_batch.sweep import SweepPoint, gather_sweep, sweep_point_config, write_point

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("ltx2_batch")

def register_configs() -> None:
    """The typed schema behind conf/: idempotent (Hydra tolerates re-storing the same node)."""
    store = ConfigStore.instance()
    store.store(name="app_schema", node=AppConfig)
    store.store(group="model", name="model_schema", node=ModelConfig)
    store.store(group="engine", name="engine_schema", node=EngineConfig)


register_configs()


def to_app_config(cfg: DictConfig) -> AppConfig:
    app = OmegaConf.to_object(cfg)
    if not isinstance(app, AppConfig):  # composed without the schema: a packaging bug, not user error
        raise TypeError(f"config did not compose to AppConfig (got {type(app).__name__})")
    return app


def run(app: AppConfig, project_root: Path | None = None, sweep: SweepPoint | None = None) -> int:
    """Plan or run a batch (one sweep point of a multirun when `sweep` is given: `app` must then come from
    `sweep_point_config`); exports the dataset when asked; returns the process exit code."""
    from ltx2_batch.driver import format_report, plan_streaming, run_batch
    from ltx2_batch.planning import plan_batch, plan_table

    root = project_root or Path.cwd()
    try:
        if app.plan:
            from ltx2_batch.ledger.store import completed_job_ids

            streamed = plan_streaming(app, root)  # prompt-file manifests: never all jobs at once
            print(streamed or plan_table(plan_batch(app, root, completed=completed_job_ids)))
            return 0
        if sweep is not None:
            write_point(sweep)  # before the run: an interrupted point is still found by the gathering
        report = run_batch(app, root)
        print(format_report(report))
        if app.export.dataset or app.export.webdataset:
            print(_export(app, report.plan.output_dir, root))
        if sweep is not None:
            print(f"sweep ledger: {gather_sweep(sweep.sweep_dir)}")
    except Ltx2BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return report.exit_code


def _export(app: AppConfig, output_dir: Path, root: Path) -> str:
    from ltx2_batch.dataset import export_dataset

    dest = Path(app.export.dir) if app.export.dir else None
    if dest is not None and not dest.is_absolute():
        dest = root / dest
    done = export_dataset(
        output_dir,
        dest,
        webdataset=app.export.webdataset,
        samples_per_shard=app.export.samples_per_shard,
        link=app.export.link,
        verify=app.verify,
    )
    shards = ""
    if app.export.webdataset:
        shards = f", {done.shards_written} tar shard(s) written, {done.shards_kept} kept"
    left_out = ""
    if done.rejected:
        job_id, reason = done.rejected[0]
        left_out = f"; {len(done.rejected)} done job(s) left out: files fail checks ({job_id}: {reason})"
    return (
        f"dataset: {done.metadata} ({done.samples} samples, {done.clips_placed} clip(s) placed, "
        f"{done.clips_kept} already there{shards}){left_out}"
    )


def _sweep_point(app: AppConfig, root: Path) -> tuple[AppConfig, SweepPoint | None]:
    """Under `-m` (Hydra multirun) each point gets its own output dir under one sweep dir."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return app, None
    from ltx2_batch.manifest.load import resolve_manifest_path

    stem = resolve_manifest_path(app.manifest, root / "manifests").stem
    return sweep_point_config(app, list(hydra_cfg.overrides.task), hydra_cfg.job.num or 0, root, stem)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> int:
    root = Path.cwd()
    try:
        app, point = _sweep_point(to_app_config(cfg), root)
    except Ltx2BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    code = run(app, root, sweep=point)
    if code:
        sys.exit(code)
    return code


def main() -> None:
    # Progress is the driver's job (one line per job/chunk); the official denoising loop's tqdm bars would
    # interleave with it from every worker. Set at the process edge, before any worker starts.
    os.environ.setdefault("TQDM_DISABLE", "1")
    _hydra_main()
