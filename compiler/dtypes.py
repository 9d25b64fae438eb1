"""Element types: MLIR ↔ numpy (bf16 and fp8 through ml_dtypes)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    TensorType,
    bf16,
    f16,
    f32,
    f64,
)
from xdsl.ir import Attribute

from axc.errors import AxcError

FLOAT_TYPES: dict[str, Attribute] = {"bf16": bf16, "fp16": f16, "fp32": f32, "f64": f64}


def numpy_dtype(element_type: Attribute) -> np.dtype:
    """The numpy dtype that stores an MLIR element type."""
    if isinstance(element_type, BFloat16Type):
        return np.dtype(ml_dtypes.bfloat16)
    if isinstance(element_type, Float16Type):
        return np.dtype(np.float16)
    if isinstance(element_type, Float32Type):
        return np.dtype(np.float32)
    if isinstance(element_type, Float64Type):
        return np.dtype(np.float64)
    if isinstance(element_type, IntegerType):
        width = element_type.width.data
        unsigned = element_type.signedness.data == Signedness.UNSIGNED
        return np.dtype(f"{'u' if unsigned else ''}int{max(width, 8)}")
    raise AxcError(f"element type {element_type} has no numpy equivalent")


def tensor_dtype(type_: Attribute) -> np.dtype:
    assert isinstance(type_, TensorType)
    return numpy_dtype(type_.get_element_type())


def float32(array: np.ndarray) -> np.ndarray:
    """A float array as fp32. bf16 is widened through its bits, the same values as
    ml_dtypes' cast (a bf16 is the upper half of its fp32) at a fraction of the time:

    >>> float32(np.array([1.5, -2.0], ml_dtypes.bfloat16))
    array([ 1.5, -2. ], dtype=float32)
    """
    if array.dtype != ml_dtypes.bfloat16:
        return array.astype(np.float32)
    bits = np.empty(array.shape, np.uint32)
    np.left_shift(array.view(np.uint16), 16, out=bits, dtype=np.uint32)
    return bits.view(np.float32)


def round_to(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round `array` to `dtype` (nearest even for floats) and return it as fp32 when float."""
    if np.issubdtype(dtype, np.integer):
        return np.asarray(array).astype(dtype)
    return np.asarray(array, dtype=np.float32).astype(dtype).astype(np.float32)


def round_result(value: np.ndarray, type_: Attribute) -> np.ndarray:
    """`value` rounded to the element type of tensor type `type_` (floats kept as fp32 arrays)."""
    dtype = tensor_dtype(type_)
    if dtype == np.float32 or (np.issubdtype(dtype, np.integer) and np.asarray(value).dtype == dtype):
        return value
    return round_to(value, dtype)
