"""One writer per output dir: a second launch is refused with the holder named; shards coexist. (That a run
killed with -9 leaves no stale lock is tests/integration/test_writer_lock_kill.py: it needs a process.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ltx2_batch.core.shard import Shard
from ltx2_batch.errors import ConfigError
from ltx2_batch.storage.writer_lock import hold_output_dir


def test_a_second_writer_is_refused_and_named(tmp_path: Path) -> None:
    with hold_output_dir(tmp_path / "run"):
        refused = pytest.raises(ConfigError, match=r"another ltx2-batch run is writing .*\(pid \d+, started")
        with refused, hold_output_dir(tmp_path / "run"):
            pass
        with hold_output_dir(tmp_path / "other"):  # another output dir is another lock
            pass
    with hold_output_dir(tmp_path / "run"):  # released on exit
        pass


def test_shards_share_a_dir_but_not_a_shard_or_an_unsharded_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with hold_output_dir(out, Shard(0, 2)), hold_output_dir(out, Shard(1, 2)):
        with (
            pytest.raises(ConfigError, match="shard 0/2 is already running"),
            hold_output_dir(out, Shard(0, 2)),
        ):
            pass
        with pytest.raises(ConfigError, match="one run per output dir"), hold_output_dir(out):
            pass
    refused = pytest.raises(ConfigError, match="an unsharded run holds it")
    with hold_output_dir(out), refused, hold_output_dir(out, Shard(1, 2)):
        pass


def test_one_shard_has_one_spelling() -> None:
    assert str(Shard.parse("00/2")) == str(Shard.parse("0/2")) == "0/2"
    assert Shard.parse(" 1/02") == Shard(1, 2)


def test_two_spellings_of_one_shard_are_one_shard(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with hold_output_dir(out, Shard.parse("0/2")):
        refused = pytest.raises(ConfigError, match="shard 0/2 is already running")
        with refused, hold_output_dir(out, Shard.parse("00/2")):
            pass


def test_shards_of_another_count_are_refused_while_one_count_writes(tmp_path: Path) -> None:
    """0/2 and 0/3 deal the same jobs differently: together they would render some twice."""
    out = tmp_path / "run"
    with hold_output_dir(out, Shard(0, 2)):
        refused = pytest.raises(ConfigError, match=r"launches with shard=i/2 are writing .* shard=<i>/2")
        with refused, hold_output_dir(out, Shard(0, 3)):
            pass
        with hold_output_dir(out, Shard(1, 2)):  # the same count is welcome
            pass
    with hold_output_dir(out, Shard(0, 3)):  # once the count-2 launches are gone, count 3 may run
        pass
