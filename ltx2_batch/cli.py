"""`ltx2-batch`: the Hydra app. A thin shell: compose config -> typed dataclasses -> plan or run.

`main` only converts the DictConfig (and refuses keys added with `+`/`++` that the schema lacks); `run(cfg)`
does the work and is what tests call (a `@hydra.main` function called from a test misbehaves).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ltx2_batch import __version__
from ltx2_batch.backends.factory import import_adapter_in_background
from ltx2_batch.config import AppConfig, EngineKind, ModelSource, PoolCommand
from ltx2_batch.core.library_logs import quiet_libraries
from ltx2_batch.core.tool_paths import CONF_DIR as _CONF_PATH
from ltx2_batch.core.tool_paths import manifest_dirs
from ltx2_batch.errors import ConfigError, Ltx2BatchError, StorageError
from ltx2_batch.manifest.load import resolve_manifest_path
from ltx2_batch.run.checks import check_settings
from ltx2_batch.run.multirun import SweepPoint, gather_sweep, sweep_point_config, write_point
from ltx2_batch.run.overrides import added_key_problems, override_problems
from ltx2_batch.storage.location import is_url, parse_location

if TYPE_CHECKING:
    from ltx2_batch.run.rundir import RunDir

CONF_DIR = str(_CONF_PATH)
log = logging.getLogger("ltx2_batch")


def register_configs() -> None:
    """The typed schema behind conf/ (one root node: the groups' presets are typed through it, so no schema
    entry shows up as a choice of `model=` or `engine=`), and the resolvers conf/config.yaml uses.
    Idempotent (Hydra tolerates re-storing the same node)."""
    ConfigStore.instance().store(name="app_schema", node=AppConfig)
    OmegaConf.register_new_resolver(
        "ltx2_run_name", lambda manifest, run_name: run_name or Path(str(manifest)).stem, replace=True
    )
    OmegaConf.register_new_resolver("ltx2_version", lambda: __version__, replace=True)
    OmegaConf.register_new_resolver("ltx2_sweep_root", sweep_record_root, replace=True)


def sweep_record_root(root: str) -> str:
    """Where Hydra keeps its record of a sweep: under output.root, or, for a bucket (which Hydra cannot
    write, and which sweeps refuse), the system temp, so no local folder named `s3:` is ever made."""
    if is_url(root):
        return str(Path(tempfile.gettempdir()) / "ltx2-batch-refused-sweeps")
    return root


register_configs()


def to_app_config(cfg: DictConfig) -> AppConfig:
    """The composed config as the typed AppConfig; TypeError if it was composed without the schema."""
    app = OmegaConf.to_object(cfg)
    if not isinstance(app, AppConfig):  # composed without the schema: a packaging bug, not user error
        raise TypeError(f"config did not compose to AppConfig (got {type(app).__name__})")
    return app


def run(
    app: AppConfig,
    project_root: Path | None = None,
    sweep: SweepPoint | None = None,
    composed: DictConfig | None = None,
    overrides: list[str] | None = None,
) -> int:
    """Plan or run a batch (one sweep point of a multirun when `sweep` is given: `app` must then come from
    `sweep_point_config`); exports the dataset when asked; returns the process exit code. `composed` and
    `overrides` (from Hydra) are recorded beside the outputs as config.yaml / overrides.yaml."""
    from ltx2_batch.run.preview import preview
    from ltx2_batch.run.report import format_report
    from ltx2_batch.run.session import run_batch

    root = project_root or Path.cwd()
    if app.pool is not None:  # a pool command is about Ray actors, whichever engine group was composed
        app = replace(app, engine=replace(app.engine, kind=EngineKind.ray))
    try:
        check_settings(
            app, root, device=True
        )  # every bad setting at once, before a manifest is read or a model loaded
        if app.plan:
            print(preview(app, root))  # streamed: a prompts file is never held in memory
            return 0
        if app.pool is not None:
            from ltx2_batch.run.pool_command import pool_command

            return pool_command(app, root)
        if app.status:
            print(_run_dir(app, root).status_text())
            return 0
        if app.engine.kind is EngineKind.local and app.model.source is not ModelSource.fake:
            import_adapter_in_background()  # torch and the LTX packages load while the manifest is planned
        if sweep is not None:
            write_point(sweep)  # before the run: an interrupted point is still found by the gathering
        try:
            report = run_batch(app, root)
        finally:  # also after Ctrl-C or a failed job: the record says what this output dir was made with
            if composed is not None:
                _record(app, root, composed, overrides or [])
        print(format_report(report))
        if app.export.dataset or app.export.webdataset:
            print(_export(app, report.output_dir, root))
        if sweep is not None:
            print(f"sweep ledger: {gather_sweep(sweep.sweep_dir)}")
    except Ltx2BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return report.exit_code


def _run_dir(app: AppConfig, root: Path) -> RunDir:
    """The launch's run dir: a local folder, or a bucket's (run/rundir.py)."""
    from ltx2_batch.run.planning import open_run_dir, run_location

    manifest = resolve_manifest_path(app.manifest, manifest_dirs(root))
    return open_run_dir(run_location(app, manifest, root), app.output)


def _record(app: AppConfig, root: Path, composed: DictConfig, overrides: list[str]) -> None:
    try:
        _run_dir(app, root).write_record(OmegaConf.to_yaml(composed), overrides)
    except StorageError as exc:  # the run's own outcome (or error) is what the caller needs to see
        print(f"warning: config.yaml was not written: {exc}", file=sys.stderr)


def _export(app: AppConfig, output_dir: str, root: Path) -> str:
    from ltx2_batch.export.dataset import export_dataset

    dest = parse_location(app.export.dir, root).text if app.export.dir else None
    done = export_dataset(
        output_dir,
        dest,
        webdataset=app.export.webdataset,
        samples_per_shard=app.export.samples_per_shard,
        link=app.export.link,
        thumbnails=app.export.thumbnails,
        stills=app.export.stills,
        verify=app.verify,
        endpoint_url=app.output.endpoint_url,
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
    stem = resolve_manifest_path(app.manifest, manifest_dirs(root)).stem
    return sweep_point_config(app, list(hydra_cfg.overrides.task), hydra_cfg.job.num or 0, root, stem)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")  # type: ignore[untyped-decorator]  # Hydra is not followed (pyproject: mypy)
def _hydra_main(cfg: DictConfig) -> int:
    root = Path.cwd()
    task = list(HydraConfig.get().overrides.task)
    try:
        problems = added_key_problems(task, AppConfig())
        if problems:
            raise ConfigError("unknown config key(s) added on the command line:\n  " + "\n  ".join(problems))
        app, point = _sweep_point(to_app_config(cfg), root)
    except Ltx2BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    quiet_libraries(verbose=app.verbose)
    code = run(app, root, sweep=point, composed=cfg, overrides=task)
    if code:
        sys.exit(code)
    return code


def config_groups() -> dict[str, list[str]]:
    """Each config group of conf/ and its choices (the YAML files in its folder)."""
    return {
        group.name: sorted(p.stem for p in group.glob("*.yaml"))
        for group in sorted(_CONF_PATH.iterdir())
        if group.is_dir()
    }


def check_overrides(args: list[str]) -> None:
    """Refuse, as the tool's own refusals are (exit 2, "did you mean"), command-line overrides naming a
    setting or a group choice that does not exist, or a value its setting cannot hold; Hydra would exit 1
    with its own text."""
    problems = override_problems(args, AppConfig(), config_groups())
    if problems:
        print(
            f"error: {len(problems)} unknown setting(s) or value(s) on the command line:\n  "
            + "\n  ".join(problems),
            file=sys.stderr,
        )
        sys.exit(2)


def main() -> None:
    """The `ltx2-batch` console script: answers --version, turns the `status` and `pool` verbs into their
    overrides, refuses overrides naming unknown settings, then hands over to Hydra."""
    # Hydra's own --version prints Hydra's version; ours answers first.
    if "--version" in sys.argv[1:]:
        print(f"ltx2-batch {__version__}")
        return
    # Progress is the driver's job (bars or lines); the official denoising loop's tqdm bars would
    # interleave with it from every worker. Set at the process edge, before any worker starts.
    os.environ.setdefault("TQDM_DISABLE", "1")
    if sys.argv[1:2] == ["status"]:  # `ltx2-batch status manifest=...`: the verb form of status=true
        sys.argv[1] = "status=true"
    if sys.argv[1:2] == ["pool"]:  # `ltx2-batch pool status engine.pool=NAME`: pool=status
        command = next(iter(sys.argv[2:3]), "")
        if command not in {c.value for c in PoolCommand}:
            print(
                f"error: `ltx2-batch pool {command}`: expected pool up, pool status or pool down",
                file=sys.stderr,
            )
            sys.exit(2)
        sys.argv[1:3] = [f"pool={command}"]
    check_overrides(sys.argv[1:])
    _hydra_main()
