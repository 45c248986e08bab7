"""A warm pool's rules, without a cluster: which worker may serve which launch (keys, names, the code hash),
how slots are leased, shared and ended (the owner's book), and when a worker retires."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from ltx2_batch.config import ModelConfig, OverlapMode
from ltx2_batch.core.code_identity import code_hash
from ltx2_batch.core.tool_paths import PACKAGE_DIR
from ltx2_batch.errors import ConfigError
from ltx2_batch.runners.leases import LeaseBook, WorkerState
from ltx2_batch.runners.pool_key import (
    ActorName,
    Placement,
    check_pool_name,
    owner_name,
    parse_actor_name,
    worker_key,
    worker_name,
)

CPU = Placement(num_gpus=0.0, num_cpus=1.0)


def _key(
    model: ModelConfig | None = None, fingerprint: str = "fp", where: Placement = CPU, code: str = "c"
) -> str:
    return worker_key(model or ModelConfig(name="fake", root="/models"), fingerprint, where, code)


def test_a_worker_key_changes_with_the_weights_their_settings_placement_and_code_only() -> None:
    base = ModelConfig(name="fake", root="/models")
    same = {_key(base), _key(dataclasses.replace(base, hf_repo="someone/else"))}  # a download hint only
    assert len(same) == 1
    others = [
        _key(dataclasses.replace(base, dtype="bf16")),
        _key(dataclasses.replace(base, compile=type(base.compile)("blocks"))),
        _key(dataclasses.replace(base, quantization=type(base.quantization)("fp8_cast"))),
        _key(dataclasses.replace(base, checkpoints=["checkpoints/other.safetensors"])),
        _key(dataclasses.replace(base, root="/elsewhere")),
        _key(base, fingerprint="re-downloaded"),
        _key(base, where=Placement(num_gpus=1.0, num_cpus=1.0)),
        _key(base, code="another-version"),
    ]
    assert len({*others, *same}) == len(others) + 1


def test_actor_names_read_back_and_foreign_names_are_not_ours() -> None:
    owner = owner_name("sweeps", "0123456789abcdef")
    worker = worker_name("sweeps", "0123456789abcdef", "fedcba9876543210", 3)
    assert parse_actor_name(owner) == ActorName("sweeps", "0123456789ab", None)
    assert parse_actor_name(worker) == ActorName("sweeps", "0123456789ab", "ray-3")
    for foreign in ("SERVE_CONTROLLER", "pool/no-code", "pool/a@b/c", "other/x@y"):
        assert parse_actor_name(foreign) is None


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a b", "x" * 65, "pool@1"])
def test_pool_names_that_cannot_be_part_of_an_actor_name_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"engine\.pool"):
        check_pool_name(name)


def test_the_code_hash_follows_the_source_files(tmp_path: Path) -> None:
    copy = tmp_path / "ltx2_batch"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_hash(copy) == code_hash(PACKAGE_DIR)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.py").write_text("compiled caches do not count\n")
    assert code_hash.__wrapped__(copy) == code_hash(PACKAGE_DIR)  # type: ignore[attr-defined]  # uncached
    with (copy / "core" / "jobs.py").open("a") as handle:
        handle.write("# an edit\n")
    assert code_hash.__wrapped__(copy) != code_hash(PACKAGE_DIR)  # type: ignore[attr-defined]  # uncached


def _book(*workers: tuple[str, str], cuda: bool = False) -> LeaseBook:
    book = LeaseBook()
    for index, (name, key) in enumerate(workers):
        book.add_worker(name, key, index, started_by="first", now=0.0)
        book.ready(name, cuda=cuda, info={}, now=0.0)
    return book


def test_a_launch_is_leased_only_ready_workers_of_its_key_fewest_leases_first() -> None:
    book = _book(("ray-0", "A"), ("ray-1", "A"), ("ray-2", "B"))
    book.add_worker("ray-3", "A", 3, started_by="first", now=0.0)  # still building its model
    book.attach("run-a", "A", OverlapMode.off)
    first, second = book.grant("run-a"), book.grant("run-a")
    assert first is not None and second is not None
    assert {first.worker, second.worker} == {"ray-0", "ray-1"}  # one job per worker before any takes two
    assert book.grant("run-a") is None  # B's worker and the starting one are not A's to take


def test_a_worker_holds_one_launch_at_a_time_and_two_jobs_only_when_that_launch_overlaps() -> None:
    book = _book(("ray-0", "A"), cuda=True)
    book.attach("writes-beside", "A", OverlapMode.auto)  # on CUDA: files written beside the next render
    book.attach("in-line", "A", OverlapMode.off)
    one, two = book.grant("writes-beside"), book.grant("writes-beside")
    assert one is not None and two is not None and book.grant("writes-beside") is None
    assert book.grant("in-line") is None  # the worker is the other launch's until both leases end
    book.release(one.lease, warm=("distilled",), served=True, now=1.0)
    assert book.grant("in-line") is None
    book.release(two.lease, warm=None, served=True, now=2.0)
    grant = book.grant("in-line")
    assert grant is not None and grant.warm == ("distilled",)  # what the worker has loaded travels along
    assert book.grant("in-line") is None  # no overlap: one job at a time
    assert book.workers["ray-0"].jobs_served == 2


def test_a_lease_ends_once_and_a_launch_that_detaches_frees_its_slots() -> None:
    book = _book(("ray-0", "A"), ("ray-1", "A"))
    book.attach("gone", "A", OverlapMode.off)
    held = [book.grant("gone"), book.grant("gone")]
    assert all(held)
    assert sorted(book.holding("gone")) == ["ray-0", "ray-1"] and book.holding("next") == []
    book.release(held[0].lease, warm=None, served=False, now=1.0)  # type: ignore[union-attr]
    assert len(book.holding("gone")) == 1  # the renders the owner cancels if this launch's driver dies
    assert book.release(held[0].lease, warm=None, served=False, now=1.0) is None  # a second end: nothing
    assert book.detach("gone", now=2.0) == ["ray-1"]
    book.attach("next", "A", OverlapMode.off)
    assert book.grant("next") is not None and book.grant("next") is not None
    assert book.release("ray-9#1", warm=None, served=True, now=3.0) is None  # a worker no longer in the book


def test_idle_workers_retire_after_the_timeout_and_never_while_they_hold_a_lease() -> None:
    book = _book(("ray-0", "A"), ("ray-1", "A"))
    book.attach("run", "A", OverlapMode.off)
    grant = book.grant("run")
    assert grant is not None
    assert book.due_to_retire(now=5.0, idle_s=10.0) == []
    assert book.due_to_retire(now=10.0, idle_s=10.0) == ["ray-1"]  # ray-0 is busy
    book.release(grant.lease, warm=None, served=True, now=12.0)
    assert book.due_to_retire(now=21.0, idle_s=10.0) == ["ray-1"]  # ray-0's idle clock started at 12
    assert book.due_to_retire(now=1e9, idle_s=None) == []  # no timeout: never


def test_a_launch_that_keeps_the_pool_as_it_found_it_retires_what_it_started() -> None:
    book = _book(("ray-0", "A"))
    book.add_worker("ray-1", "A", 1, started_by="shrinking", now=0.0)
    book.ready("ray-1", cuda=False, info={}, now=0.0)
    book.attach("shrinking", "A", OverlapMode.off)
    found, started = book.grant("shrinking"), book.grant("shrinking")
    assert found is not None and started is not None
    assert (found.worker, started.worker) == ("ray-0", "ray-1")
    assert book.retire_after("shrinking") == []  # ray-1 still renders: it retires when its lease ends
    assert book.workers["ray-1"].retiring and not book.workers["ray-0"].retiring
    book.release(found.lease, warm=None, served=True, now=1.0)
    book.release(started.lease, warm=None, served=True, now=1.0)
    assert book.grant("shrinking") is not None and book.grant("shrinking") is None  # ray-0 only, now
    assert book.due_to_retire(now=1.0, idle_s=None) == ["ray-1"]


def test_a_key_whose_workers_all_refused_is_refused_with_their_reason() -> None:
    book = LeaseBook()
    book.add_worker("ray-0", "A", 0, started_by="run", now=0.0)
    assert book.refusal("A") is None  # still starting
    book.refuse("ray-0", "model.device='cuda' is not available")
    assert book.refusal("A") == "render worker ray-0: model.device='cuda' is not available"
    assert book.workers["ray-0"].state is WorkerState.refused
    assert book.due_to_retire(now=1e9, idle_s=1.0) == []  # its entry stays, saying why
    assert book.forget_refused("run") == ["ray-0"] and book.refusal("A") is None


def test_only_idle_ready_workers_of_other_keys_make_room() -> None:
    book = _book(("ray-0", "A"), ("ray-1", "B"), ("ray-2", "B"))
    book.add_worker("ray-3", "B", 3, started_by="run", now=0.0)  # starting: another launch waits for it
    book.attach("b", "B", OverlapMode.off)
    grant = book.grant("b")
    assert grant is not None and grant.worker == "ray-1"
    assert [w.name for w in book.idle_of_other_keys("A")] == ["ray-2"]  # not the busy one, not the starting
    assert [w.name for w in book.idle_of_other_keys("B")] == ["ray-0"]
