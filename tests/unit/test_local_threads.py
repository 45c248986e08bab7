"""The local engine's torch thread rule: one core left for encoding, unless OMP_NUM_THREADS says otherwise."""

from __future__ import annotations

from ltx2_batch.runners.local import torch_threads


def test_torch_leaves_a_core_to_the_encoder_and_never_drops_below_one_thread() -> None:
    assert torch_threads(2, {}) == 1  # the 2-core box: 8.3 s with 2 threads, 0.12 s with 1 (README)
    assert torch_threads(16, {}) == 15
    assert torch_threads(1, {}) == 1


def test_an_explicit_omp_num_threads_is_the_users_choice() -> None:
    assert torch_threads(16, {"OMP_NUM_THREADS": "4"}) is None
