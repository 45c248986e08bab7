"""Temporary scratch folders carry their maker (process and host), so a launch removes those of processes of
its host that died (a kill -9 skips every clean-up) and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from ltx2_batch.storage.scratch_temp import orphan, scratch_folder, scratch_temp, sweep_orphans, this_host

GONE_PID = 4_194_305  # above Linux's largest pid_max: no process has it


def test_a_folders_name_says_its_process_and_host_and_only_a_gone_process_of_this_host_orphans_it(
    tmp_path: Path,
) -> None:
    made = scratch_temp(tmp_path / "driver", "read")
    host = this_host()
    assert made.is_dir() and made.name.startswith(f"read-{os.getpid()}@{host}-")
    assert not orphan(made.name, host, alive=frozenset({os.getpid()}))
    assert orphan(made.name, host, alive=frozenset())
    assert not orphan(made.name, "another-host", alive=frozenset())  # its pids mean nothing here
    assert not orphan("ledger", host, alive=frozenset())  # not a folder of ours
    assert not orphan(f"read-{GONE_PID}@{host}", host, alive=frozenset())  # no random tail: not ours


def test_sweeping_removes_the_folders_of_gone_processes_of_this_host_only(tmp_path: Path) -> None:
    host = this_host()
    gone = tmp_path / f"read-{GONE_PID}@{host}-abcd1234"
    elsewhere = tmp_path / f"read-{GONE_PID}@elsewhere-abcd1234"
    (gone / "ledger").mkdir(parents=True)
    elsewhere.mkdir()
    (tmp_path / "mirror-run").mkdir()
    with scratch_folder(tmp_path, "check") as mine:
        assert sweep_orphans(tmp_path) == [gone]
        assert mine.is_dir()  # this process is alive
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([elsewhere.name, "mirror-run"])
    assert sweep_orphans(tmp_path / "absent") == []
