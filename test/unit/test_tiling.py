"""`axc.tiling.schedule_matmul` ranks schedules by their time: a prefill chunk (matrix-bound)
takes a tile the matrix engine need not pad even when it moves a few more DDR bytes, a
decode row (bound by its bytes) keeps the fewest bytes."""

from __future__ import annotations

import dataclasses

import pytest
from xdsl.dialects.builtin import TensorType, bf16, f16, i8
from xdsl.utils.test_value import create_ssa_value

from axc.dialects.npu import DDR, OCM
from axc.tiling import Budget, Tensor, Weight, schedule_matmul
from axc.targets import get_target

N, K, GROUP = 2048, 11008, 128
"""Qwen2.5-3B's down projection: K = 11008 = 86 groups of 128, so a K tile is 128, 256,
5504 or all of K, and a split K moves each row's few scales in a whole DDR burst."""


SPACE = 256 * 1024
"""About what `tile` leaves the op in a 3B prefill layer: its 128 x 11008 bf16 input block
stays on chip (2.7 MiB of the core's 4 MiB)."""


def down_projection(rows: int) -> tuple[Budget, int, Tensor, Weight, Tensor]:
    budget = Budget.of(get_target("AX650"))
    weight = Weight(
        N, K, "s4", GROUP,
        data=create_ssa_value(TensorType(i8, [N, K // 2])),
        scales=create_ssa_value(TensorType(f16, [N, K // GROUP])),
    )
    x = Tensor(rows, K, bf16, OCM, create_ssa_value(TensorType(bf16, [rows, K])))
    y = Tensor(rows, N, bf16, OCM, create_ssa_value(TensorType(bf16, [rows, N])))
    return budget, SPACE, x, weight, y


def test_prefill_takes_a_full_matrix_tile_over_the_fewest_bytes() -> None:
    budget, space, x, weight, y = down_projection(128)
    timed = schedule_matmul(budget, space, x, [weight], y)
    by_bytes = schedule_matmul(dataclasses.replace(budget, ddr_bytes_per_s=0.0), space, x, [weight], y)
    assert by_bytes.kt == K and by_bytes.nt < budget.gran_n  # whole rows, so a narrow N tile
    assert timed.nt >= budget.gran_n and timed.kt < K
    assert timed.ddr_bytes > by_bytes.ddr_bytes
    padded_macs = budget.padded(128, by_bytes.mt, budget.gran_m) * budget.padded(N, by_bytes.nt, budget.gran_n) * K
    assert timed.seconds < 0.5 * budget.seconds(by_bytes.ddr_bytes, padded_macs)


@pytest.mark.parametrize("home", [OCM, DDR])
def test_decode_is_bound_by_its_bytes(home: str) -> None:
    """One row: with room for a full matrix tile the fewest bytes win as before; where only
    narrow N tiles fit, their padding to 8 x 64 would make even a decode row wait on the
    matrix engine, so the choice takes the widest tile that keeps it bound by its bytes."""
    budget, space, x, weight, y = down_projection(1)
    x = dataclasses.replace(x, home=home)
    for room in (space, 4 * space):
        timed = schedule_matmul(budget, room, x, [weight], y)
        by_bytes = schedule_matmul(dataclasses.replace(budget, ddr_bytes_per_s=0.0), room, x, [weight], y)
        padded_macs = budget.padded(1, by_bytes.mt, budget.gran_m) * budget.padded(N, by_bytes.nt, budget.gran_n) * K
        assert timed.seconds == pytest.approx(timed.ddr_bytes / budget.ddr_bytes_per_s)
        assert timed.seconds <= budget.seconds(by_bytes.ddr_bytes, padded_macs)
        assert timed.ddr_bytes <= 1.02 * by_bytes.ddr_bytes
        if room > space:
            assert (timed.nt, timed.kt, timed.m_outer) == (by_bytes.nt, by_bytes.kt, by_bytes.m_outer)


def test_padded_counts_every_tile_to_the_granularity() -> None:
    budget = Budget.of(get_target("AX650"))
    assert budget.padded(16, 3, 16) == 6 * 16
    assert budget.padded(128, 128, 8) == 128
    assert budget.padded(2048, 16, 64) == 128 * 64
