"""A plan's per-call work outside its steps: inputs staged with `np.copyto`'s bytes (the
compiled fp32 -> bf16 cast of large inputs against ml_dtypes' on every class of fp32
value, the other casts unchanged), and BLAS at one thread only while the steps of a plan
that needs it run (or, held, until the hold ends), the caller's limits back after."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from axc import npu_semantics as sem
from axc.errors import AxcError
from axc.sim.blas_limit import BLAS
from axc.sim.plan import Plan
from axc.sim.staging import KERNEL_MIN, stage

BF16 = np.dtype(ml_dtypes.bfloat16)


def special_bits() -> np.ndarray:
    """Zeros, subnormals, the largest finite values, infinities, NaNs of every kind (quiet,
    signalling, payloads), and the rounding boundaries of every exponent (ties to even
    both ways, one below and above a tie, the carry into the exponent and to infinity)."""
    exponents = np.arange(256, dtype=np.uint32) << 23
    mantissas = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0x17FFF, 0x18000, 0x18001, 0x7F7FFF, 0x7F8000, 0x7FFFFF], np.uint32)
    grid = (exponents[:, None] | mantissas[None, :]).reshape(-1)
    return np.concatenate([grid, grid | np.uint32(0x80000000)])


def bf16_copy(value: np.ndarray) -> np.ndarray:
    out = np.empty(value.shape, BF16)
    np.copyto(out, value, casting="unsafe")
    return out


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
def test_fp32_to_bf16_staging_has_ml_dtypes_bits() -> None:
    rng = np.random.default_rng(0)
    special = special_bits()
    for bits in (np.tile(special, -(-KERNEL_MIN // special.size)), rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)):
        value = bits.view(np.float32).reshape(1, -1, 2)
        assert value.size >= KERNEL_MIN  # the compiled cast's
        staged = np.full(value.shape, 7, BF16)
        stage(staged, value)
        assert staged.tobytes() == bf16_copy(value).tobytes()
    small = special.view(np.float32)[: KERNEL_MIN - 1]
    staged = np.full(small.shape, 7, BF16)
    stage(staged, small)  # np.copyto's own
    assert staged.tobytes() == bf16_copy(small).tobytes()


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
def test_other_inputs_are_staged_as_before() -> None:
    rng = np.random.default_rng(1)
    wide = rng.standard_normal((4, 6)) * 1e3
    cases = [
        (np.zeros((4, 6), BF16), wide),  # fp64 -> fp32 -> bf16, the host's two roundings
        (np.zeros((4, 6), BF16), wide.astype(np.float32)[:, ::2].repeat(2, axis=1)),  # not C-ordered
        (np.zeros((4, 6), BF16), wide.astype(np.float32).T.copy().T),  # Fortran-ordered
        (np.zeros((128, 128), BF16), rng.standard_normal((128, 256)).astype(np.float32)[:, ::2]),  # large, strided
        (np.zeros((4, 6), np.float16), wide.astype(np.float32)),
        (np.zeros((1, 24), BF16), wide.astype(np.float32)),  # reshaped to the buffer
        (np.zeros((2, 3), np.uint32), [[1, 2, 3], [4, 5, 6]]),
        (np.zeros((4, 6), BF16), wide.astype(BF16)),
    ]
    for staged, value in cases:
        expected = np.empty_like(staged)
        as_array = np.asarray(value)
        if as_array.dtype.kind == "f" and as_array.dtype != staged.dtype:
            as_array = as_array.astype(np.float32)
        np.copyto(expected, as_array.reshape(staged.shape), casting="unsafe")
        stage(staged, value)
        assert staged.tobytes() == expected.tobytes()
    with pytest.raises(ValueError):
        stage(np.zeros((4, 6), BF16), np.zeros((5, 6), np.float32))


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_runs_on_one_thread_only_while_the_steps_run() -> None:
    np.dot(np.ones(4), np.ones(4))  # numpy's BLAS loaded
    seen: list[list[int]] = []

    def fails() -> None:
        raise ValueError("a record numpy refuses")

    plan = Plan([lambda: seen.append(blas_threads())], [], [], sem.Counters(), 1, one_blas=True)
    failing = Plan([fails], [], [], sem.Counters(), 1, one_blas=True)
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() and set(blas_threads()) == {2}
        plan.run([])
        assert seen[-1] and set(seen[-1]) == {1}
        assert set(blas_threads()) == {2}  # what the caller (transformers, say) set is back
        with pytest.raises(AxcError, match="command stream cannot be executed"):
            failing.run([])
        assert set(blas_threads()) == {2}
        plan.one_blas = False
        plan.run([])
        assert set(seen[-1]) == {2}


def test_a_hold_sets_one_blas_thread_once_and_restores_at_its_end() -> None:
    np.dot(np.ones(4), np.ones(4))
    seen: list[list[int]] = []
    one = Plan([lambda: seen.append(blas_threads())], [], [], sem.Counters(), 1, one_blas=True)
    theirs = Plan([lambda: seen.append(blas_threads())], [], [], sem.Counters(), 1, one_blas=False)
    with threadpool_limits(limits=2, user_api="blas"):
        with BLAS.hold():
            with BLAS.hold():  # nested: the outermost ends it
                one.run([])
            assert set(blas_threads()) == {1}  # kept between the plans of a token
            one.run([])
            theirs.run([])  # a plan that does not need it: the caller's limits
            one.run([])
        assert [set(s) for s in seen] == [{1}, {1}, {2}, {1}]
        assert set(blas_threads()) == {2} and BLAS.saved is None
        with pytest.raises(RuntimeError), BLAS.hold():
            one.run([])
            raise RuntimeError("the caller fails mid-token")
        assert set(blas_threads()) == {2} and BLAS.holds == 0
