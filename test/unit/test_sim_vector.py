"""The simulator's specialised vector steps (`axc.sim.vector`) write the bytes their
`npu_semantics` calls write: the same memory, once run by each, compared byte for byte on
random inputs (with NaN, inf and signed zeros), bf16/fp16/fp32 operands, strided, broadcast
and in-place views, at the shapes of a Qwen2.5-0.5B decode step and others."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import ml_dtypes
import numpy as np
import pytest

from axc import kernels
from axc import npu_semantics as sem
from axc.sim import vector
from axc.sim.vector import vector_step

BF16, F16, F32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
SPEC = kernels.RopeSpec(head_dim=64, rotary_dim=64, theta=1000000.0)
Operand = tuple[np.dtype, tuple[int, ...], tuple[int, ...] | None, int]
"""dtype, shape, element strides (None: C order), element offset."""


def _work(arrays: dict[tuple[str, tuple[int, ...]], np.ndarray]) -> vector.Work:
    def get(role: str, shape: tuple[int, ...]) -> np.ndarray:
        return arrays.setdefault((role, shape), np.zeros(shape, np.float32))
    return get


def c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def operand_views(memory: np.ndarray, operands: dict[str, Operand]) -> dict[str, np.ndarray]:
    views = {}
    for name, (dtype, shape, strides, offset) in operands.items():
        strides = c_strides(shape) if strides is None else strides
        typed = memory[: memory.size - memory.size % dtype.itemsize].view(dtype)
        views[name] = np.lib.stride_tricks.as_strided(
            typed[offset:], shape, tuple(s * dtype.itemsize for s in strides), writeable=True
        )
    return views


def random_memory(rng: np.random.Generator, nbytes: int, special: float, nan: bool = True) -> np.ndarray:
    """Random finite bf16 values (a fraction `special` of them inf, signed zeros or NaN):
    read as fp32 they are as random, and hold a NaN or inf where their high half does."""
    values = (rng.standard_normal(nbytes // 2) * np.exp2(rng.integers(-6, 6, nbytes // 2))).astype(BF16)
    picks = rng.random(values.size) < special
    specials = [np.inf, -np.inf, 0.0, -0.0, *([np.nan, -np.nan] if nan else [])]
    values[picks] = rng.choice(np.array(specials, BF16), int(picks.sum()))
    return values.view(np.uint8).copy()


class Counted:
    """A fallback that counts its calls."""

    def __init__(self, step: Callable[[], object]):
        self.step, self.calls = step, 0

    def __call__(self) -> None:
        self.calls += 1
        self.step()


def check(
    mnemonic: str, operands: dict[str, Operand], values: dict[str, object], reference: Callable[..., object],
    seeds: int = 12, special: float = 0.0, fast: bool = True, nbytes: int = 1 << 16, zero_max: bool = False,
    outputs: tuple[str, ...] = ("out",),
) -> None:
    """Run `mnemonic` specialised and as `reference(**views)` on the same random memory."""
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        memory = random_memory(rng, nbytes, special if seed % 3 else 0.0, nan=seed % 3 == 1)
        mine, theirs = memory.copy(), memory.copy()
        views = operand_views(mine, operands)
        fallback = Counted(partial(reference, **views))
        with np.errstate(all="ignore"):  # a fill's constant overflowing fp16, as the semantics' store would
            step = vector_step(mnemonic, views, values, fallback, _work({}))
        if not fast:
            assert step is None, f"{mnemonic} specialised where it must not be"
            return
        assert step is not None, f"{mnemonic} not specialised"
        with np.errstate(all="ignore"):
            step()
            first = fallback.calls
            step()  # runs twice like a plan: work arrays reused
            reference(**operand_views(theirs, operands))
            reference(**operand_views(theirs, operands))
        assert mine.tobytes() == theirs.tobytes(), f"{mnemonic} seed {seed}: bytes differ"
        nan = any(np.isnan(v.astype(np.float32)).any() for k, v in operand_views(memory, operands).items()
                  if v.dtype.kind in "fV" and k not in outputs)
        assert first == 0 or nan or zero_max, f"{mnemonic} seed {seed}: fell back without a NaN"
        assert first == 1 or not nan or mnemonic == "fill", f"{mnemonic} seed {seed}: a NaN not seen"


def binary(kind: str) -> Callable[..., object]:
    return lambda out, lhs, rhs: sem.binary(kind, out, lhs, rhs)


@pytest.mark.parametrize("special", [0.0, 0.05])
@pytest.mark.parametrize("kind", ["add", "mul", "div"])
@pytest.mark.parametrize("layout", ["scores+mask", "acc*corr", "column", "div to bf16", "residual", "fp16"])
def test_binary(kind: str, layout: str, special: float) -> None:
    operands: dict[str, dict[str, Operand]] = {
        # scores += mask in place, the bf16 mask row broadcast over 7 heads
        "scores+mask": {"out": (F32, (7, 1, 255), None, 0), "lhs": (F32, (7, 1, 255), None, 0), "rhs": (BF16, (1, 255), None, 8000)},
        "acc*corr": {"out": (F32, (7, 1, 64), None, 0), "lhs": (F32, (7, 1, 64), None, 0), "rhs": (F32, (7, 1, 1), None, 900)},
        # the new token's score: a strided column of the scores buffer
        "column": {"out": (F32, (7, 1, 1), (255, 255, 1), 254), "lhs": (F32, (7, 1, 1), (255, 255, 1), 254), "rhs": (BF16, (1, 1), None, 9000)},
        "div to bf16": {"out": (BF16, (7, 1, 64), (64, 896, 1), 6000), "lhs": (F32, (7, 1, 64), None, 0), "rhs": (F32, (7, 1, 1), None, 900)},
        "residual": {"out": (BF16, (1, 896), None, 0), "lhs": (BF16, (1, 896), None, 2000), "rhs": (BF16, (1, 896), None, 4000)},
        "fp16": {"out": (F16, (3, 40), None, 0), "lhs": (F16, (3, 40), None, 200), "rhs": (F32, (1, 40), None, 400)},
    }
    check(kind, operands[layout], {}, binary(kind), special=special, fast=layout != "fp16")


@pytest.mark.parametrize("special", [0.0, 0.05])
@pytest.mark.parametrize("out", [BF16, F32, F16])
@pytest.mark.parametrize("shape", [(1, 256), (128, 256), (1, 7)])
def test_act_mul(out: np.dtype, shape: tuple[int, ...], special: float) -> None:
    rows, cols = shape
    operands: dict[str, Operand] = {
        "out": (out, shape, (4864, 1), 0),  # a column block of the intermediate activation
        "gate": (BF16, shape, None, rows * 4864 * 2),
        "up": (BF16, shape, None, rows * 4864 * 2 + rows * cols * 2),
    }
    check(
        "act_mul", operands, {"kind": "silu"}, lambda out, gate, up: sem.act_mul(out, gate, up, "silu"),
        special=special, fast=out != F16, nbytes=rows * 4864 * 16,
    )


def test_act_mul_other_activations_keep_the_semantics() -> None:
    operands: dict[str, Operand] = {"out": (BF16, (1, 16), None, 0), "gate": (BF16, (1, 16), None, 16), "up": (BF16, (1, 16), None, 32)}
    for kind in ("gelu", "gelu_tanh", "relu"):
        check("act_mul", operands, {"kind": kind}, lambda out, gate, up, k=kind: sem.act_mul(out, gate, up, k), fast=False)


@pytest.mark.parametrize("special", [0.0, 0.002])
@pytest.mark.parametrize("dtype", [BF16, F32])
@pytest.mark.parametrize("shape", [(1, 896), (5, 896), (2, 100), (1, 7)])
def test_rms_norm(dtype: np.dtype, shape: tuple[int, ...], special: float) -> None:
    n = shape[-1]
    operands: dict[str, Operand] = {
        "out": (dtype, shape, None, 0), "input": (dtype, shape, None, 8000), "weight": (BF16, (n,), None, 30000),
    }
    check("rms_norm", operands, {"eps": 1e-6}, lambda out, input, weight: sem.rms_norm(out, input, weight, 1e-6), special=special)
    inplace = {**operands, "out": operands["input"]}
    check("rms_norm", inplace, {"eps": 1e-5}, lambda out, input, weight: sem.rms_norm(out, input, weight, 1e-5), special=special)


@pytest.mark.parametrize("special", [0.0, 0.002])
@pytest.mark.parametrize("shape", [(1, 896), (3, 896), (1, 33)])
def test_add_rms_norm(shape: tuple[int, ...], special: float) -> None:
    n = shape[-1]
    size = int(np.prod(shape))
    operands: dict[str, Operand] = {
        "sum": (BF16, shape, None, 0), "out": (BF16, shape, None, size), "lhs": (BF16, shape, None, 2 * size),
        "rhs": (BF16, shape, None, 3 * size), "weight": (BF16, (n,), None, 4 * size),
    }

    def reference(sum: np.ndarray, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, weight: np.ndarray) -> None:
        sem.add_rms_norm(sum, out, lhs, rhs, weight, 1e-6)

    check("add_rms_norm", operands, {"eps": 1e-6}, reference, special=special, outputs=("sum", "out"))
    inplace = {**operands, "sum": operands["lhs"]}  # the residual in place
    check("add_rms_norm", inplace, {"eps": 1e-6}, reference, special=special, outputs=("out",))
    check("add_rms_norm", {**operands, "sum": (F32, shape, None, 2 * size)}, {"eps": 1e-6}, reference, special=special, fast=False)


@pytest.mark.parametrize("special", [0.0, 0.01])
@pytest.mark.parametrize(
    "heads, tokens, spec",
    [
        (14, 1, SPEC), (2, 1, SPEC), (14, 5, SPEC),
        (3, 2, kernels.RopeSpec(head_dim=64, rotary_dim=32, theta=10000.0, interleaved=True)),
        (2, 3, kernels.RopeSpec(head_dim=16, rotary_dim=8, theta=10000.0, scaling="linear", factor=2.0)),
        (2, 1, kernels.RopeSpec(
            head_dim=32, rotary_dim=32, theta=500000.0, scaling="llama3", factor=8.0, original_max_positions=8192,
        )),
    ],
)
def test_rope(heads: int, tokens: int, spec: kernels.RopeSpec, special: float) -> None:
    width = heads * spec.head_dim
    values = {"num_heads": heads, **spec.values()}
    positions = (np.dtype(np.uint32), (1, tokens), None, 0)

    def reference(out: np.ndarray, input: np.ndarray, positions: np.ndarray) -> None:
        sem.rope(out, input, positions, heads, spec)

    for inplace in (False, True):
        operands: dict[str, Operand] = {
            "input": (BF16, (tokens, width), None, 64), "positions": positions,
            "out": (BF16, (tokens, width), None, 64 if inplace else 64 + tokens * width),
        }
        for seed in range(4):  # positions: small integers in the first words of memory
            rng = np.random.default_rng(100 + seed)
            check_positions = rng.integers(0, 40000, tokens).astype(np.uint32)

            def with_positions(out: np.ndarray, input: np.ndarray, positions: np.ndarray, p: np.ndarray = check_positions) -> None:
                positions[...] = p
                reference(out, input, positions)

            _check_rope(operands, values, with_positions, check_positions, special)


def _check_rope(
    operands: dict[str, Operand], values: dict[str, object], reference: Callable[..., None], positions: np.ndarray, special: float,
) -> None:
    for seed in range(4):
        rng = np.random.default_rng(seed)
        memory = random_memory(rng, 1 << 16, special if seed % 3 else 0.0, nan=seed % 3 == 1)
        mine, theirs = memory.copy(), memory.copy()
        views = operand_views(mine, operands)
        views["positions"][...] = positions
        step = vector_step("rope", views, values, partial(sem.rope, views["out"], views["input"], views["positions"],
                           int(values["num_heads"]), kernels.RopeSpec.from_values(values)), _work({}))  # type: ignore[call-overload]
        assert step is not None
        with np.errstate(all="ignore"):
            step()
            reference(**operand_views(theirs, operands))
        assert mine.tobytes() == theirs.tobytes(), f"rope seed {seed}: bytes differ"


@pytest.mark.parametrize("special", [0.0, 0.01])
@pytest.mark.parametrize("shape", [(7, 1, 255), (7, 1, 1), (14, 1, 128), (2, 300)])
def test_online_softmax(shape: tuple[int, ...], special: float) -> None:
    column = (*shape[:-1], 1)
    size = int(np.prod(shape))
    rows = size // shape[-1]
    operands: dict[str, Operand] = {
        "probs": (F32, shape, None, 0), "scores": (F32, shape, None, 0),
        "max": (F32, column, None, size), "sum": (F32, column, None, size + rows), "corr": (F32, column, None, size + 2 * rows),
    }

    def reference(probs: np.ndarray, max: np.ndarray, sum: np.ndarray, corr: np.ndarray, scores: np.ndarray) -> None:
        sem.online_softmax(probs, max, sum, corr, scores)

    check("online_softmax", operands, {}, reference, special=special, zero_max=True, outputs=("probs", "corr"))
    if shape == (7, 1, 1):  # the new token's score: a strided column of the scores buffer
        strided = {
            **operands, "probs": (F32, shape, (255, 255, 1), 254), "scores": (F32, shape, (255, 255, 1), 254),
            "max": (F32, column, None, 4000), "sum": (F32, column, None, 4100), "corr": (F32, column, None, 4200),
        }
        check("online_softmax", strided, {}, reference, special=special, zero_max=True, outputs=("probs", "corr"))


def test_online_softmax_zero_maximum_runs_the_semantics() -> None:
    """A row whose maximum is a zero (numpy's choice between -0.0 and +0.0) falls back."""
    memory = np.zeros(4096, np.uint8)
    operands: dict[str, Operand] = {
        "probs": (F32, (2, 8), None, 0), "scores": (F32, (2, 8), None, 0),
        "max": (F32, (2, 1), None, 100), "sum": (F32, (2, 1), None, 110), "corr": (F32, (2, 1), None, 120),
    }
    mine, theirs = memory.copy(), memory.copy()
    for buffer in (mine, theirs):
        views = operand_views(buffer, operands)
        views["scores"][...] = np.array([[-0.0, 0.0, -1.0, -0.0, 0.0, -2.0, 0.0, -0.0]] * 2, np.float32)
        views["max"][...] = np.float32(-1e30)
    views = operand_views(mine, operands)
    step = vector_step("online_softmax", views, {}, partial(sem.online_softmax, views["probs"], views["max"], views["sum"],
                       views["corr"], views["scores"]), _work({}))
    assert step is not None
    step()
    theirs_views = operand_views(theirs, operands)
    sem.online_softmax(theirs_views["probs"], theirs_views["max"], theirs_views["sum"], theirs_views["corr"], theirs_views["scores"])
    assert mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("dtype", [BF16, F32, F16, np.dtype(np.int32)])
@pytest.mark.parametrize("value", [0.0, -1e30, 1.5, -0.0, float("nan"), 3e38])
def test_fill(dtype: np.dtype, value: float) -> None:
    operands: dict[str, Operand] = {"out": (dtype, (7, 1, 3), (5, 5, 1), 3)}
    if dtype.kind == "i" and not np.isfinite(np.float32(value)):
        return
    check("fill", operands, {"value": value}, lambda out: sem.fill(out, value), seeds=2)


def test_overlapping_views_keep_the_semantics() -> None:
    """An output overlapping an input other than as the very same view: not specialised."""
    shifted: dict[str, Operand] = {"out": (F32, (1, 64), None, 1), "lhs": (F32, (1, 64), None, 0), "rhs": (F32, (1, 64), None, 100)}
    check("add", shifted, {}, binary("add"), fast=False)
    broadcast_out: dict[str, Operand] = {"out": (F32, (4, 8), (0, 1), 0), "lhs": (F32, (4, 8), None, 100), "rhs": (F32, (4, 8), None, 200)}
    check("add", broadcast_out, {}, binary("add"), fast=False)


def test_bf16_conversions_match_ml_dtypes() -> None:
    """Every bf16 widened, and fp32 patterns (every exponent with edge and random
    mantissas, both signs, NaN payloads, ties) rounded, as ml_dtypes does."""
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    widened = np.zeros((1, every.size), np.float32)
    vector.cast_2d(widened, every.reshape(1, -1))
    assert widened.view(np.uint32).tobytes() == every.view(BF16).astype(np.float32).view(np.uint32).tobytes()
    rng = np.random.default_rng(0)
    exponents = np.arange(256, dtype=np.uint32) << 23
    mantissas = np.concatenate([
        np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x10000, 0x17FFF, 0x18000, 0x18001, 0x7F8000, 0x7FFFFF], np.uint32),
        rng.integers(0, 1 << 23, 200, dtype=np.uint32),
    ])
    bits = (exponents[:, None] | mantissas[None, :]).reshape(-1)
    bits = np.concatenate([bits, bits | np.uint32(1 << 31), rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32)])
    values = bits.view(np.float32).reshape(1, -1)
    rounded = np.zeros(values.shape, np.uint16)
    vector.cast_2d(rounded, values)
    with np.errstate(invalid="ignore"):
        assert rounded.tobytes() == values.astype(BF16).tobytes()


@pytest.mark.parametrize("special", [0.0, 0.01])
@pytest.mark.parametrize("staged", [BF16, F32])
@pytest.mark.parametrize("out", [BF16, F32])
def test_act_mul_over_products(staged: np.dtype, out: np.dtype, special: float) -> None:
    """act_mul over n tiles of (up, gate) matmul products, read as their commits store them,
    against staging them (`np.copyto`) and `sem.act_mul` over the staged tiles."""
    n, m, numel = 19, 2, 256
    for seed in range(6):
        rng = np.random.default_rng(seed)
        products = random_memory(rng, n * m * numel * 4, special if seed % 3 else 0.0, nan=seed % 3 == 1).view(np.float32)
        products = products.reshape(n, m, numel)
        gate, up = np.zeros((n, numel), staged), np.zeros((n, numel), staged)
        mine, theirs = np.zeros((n, numel), out), np.zeros((n, numel), out)

        def staged_op(
            gate: np.ndarray = gate, up: np.ndarray = up, products: np.ndarray = products, theirs: np.ndarray = theirs,
        ) -> None:
            np.copyto(gate, products[:, 1], casting="unsafe")
            np.copyto(up, products[:, 0], casting="unsafe")
            sem.act_mul(theirs, gate, up, "silu")

        fallback = Counted(staged_op)
        step = vector.products_step("act_mul", {"kind": "silu"}, mine, products, {"gate": (1, staged), "up": (0, staged)}, fallback, _work({}))
        assert step is not None
        with np.errstate(all="ignore"):
            step()
            if not fallback.calls:
                staged_op()
        assert mine.tobytes() == theirs.tobytes() or fallback.calls, f"seed {seed}: bytes differ"
        assert fallback.calls == np.isnan(products).any(), f"seed {seed}: fell back {fallback.calls} times"


@pytest.mark.parametrize("special", [0.0, 0.01])
@pytest.mark.parametrize("strided", [False, True])
def test_mask_add_fused_into_the_softmax(strided: bool, special: float) -> None:
    """`scores += mask` then the online softmax over those scores, fused (`fuse_steps`),
    against `sem.binary` then `sem.online_softmax` on the same memory."""
    shape, column = ((7, 1, 1), (7, 1, 1)) if strided else ((7, 1, 255), (7, 1, 1))
    layout = (255, 255, 1) if strided else None
    operands: dict[str, Operand] = {
        "scores": (F32, shape, layout, 254 if strided else 0), "mask": (BF16, (1, shape[-1]), None, 9000),
        "max": (F32, column, None, 4000), "sum": (F32, column, None, 4100), "corr": (F32, column, None, 4200),
    }
    for seed in range(9):
        rng = np.random.default_rng(seed)
        memory = random_memory(rng, 1 << 16, special if seed % 3 else 0.0, nan=seed % 3 == 1)
        mine, theirs = memory.copy(), memory.copy()
        v = operand_views(mine, operands)
        work = _work({})
        add = vector_step("add", {"out": v["scores"], "lhs": v["scores"], "rhs": v["mask"]}, {},
                          partial(sem.binary, "add", v["scores"], v["scores"], v["mask"]), work)
        softmax = vector_step("online_softmax", {"probs": v["scores"], "max": v["max"], "sum": v["sum"], "corr": v["corr"],
                              "scores": v["scores"]}, {},
                              partial(sem.online_softmax, v["scores"], v["max"], v["sum"], v["corr"], v["scores"]), work)
        assert add is not None and softmax is not None
        steps = vector.fuse_steps([add, softmax])
        assert len(steps) == 1 and isinstance(steps[0], vector.OnlineSoftmax) and steps[0].mask is not None
        t = operand_views(theirs, operands)
        with np.errstate(all="ignore"):
            steps[0]()
            sem.binary("add", t["scores"], t["scores"], t["mask"])
            sem.online_softmax(t["scores"], t["max"], t["sum"], t["corr"], t["scores"])
        assert mine.tobytes() == theirs.tobytes(), f"seed {seed}: bytes differ"
