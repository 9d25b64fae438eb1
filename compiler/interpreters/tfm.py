"""numpy semantics of the `tfm` dialect: the mathematical reference, computed in fp32.

Element types at this level name the storage the later levels will use; the reference
computes every float in fp32 regardless. `TargetTfmFunctions` runs the same kernels with
the target's numerics (fp32 inside an op, every float result rounded to its element type);
`ModuleRunner` picks it for modules that went through `set-activation-type`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from axc import kernels
from axc.dialects import npu, tfm
from axc.dtypes import round_result


def fp32(value: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def rope_spec(op: tfm.RopeOp | npu.RopeOp) -> kernels.RopeSpec:
    return op.rope.spec(op.head_dim.value.data)


def attention_props(op: tfm.AttentionOp) -> dict[str, Any]:
    return {
        "num_heads": op.num_heads.value.data,
        "num_kv_heads": op.num_kv_heads.value.data,
        "head_dim": op.head_dim.value.data,
        "scale": op.scale.value.data,
        "softcap_value": op.softcap.value.data,
        "window": op.sliding_window.value.data,
    }


@register_impls
class TfmFunctions(InterpreterFunctions):
    """The fp32 reference."""

    def results(self, op: Operation, *values: np.ndarray) -> tuple[np.ndarray, ...]:
        """The op's results as computed (the reference keeps fp32)."""
        return values

    @impl(tfm.EmbeddingOp)
    def run_embedding(self, interpreter: Interpreter, op: tfm.EmbeddingOp, args: tuple[Any, ...]):
        ids, table = args
        return self.results(op, fp32(np.asarray(table)[np.asarray(ids).astype(np.int64)]))

    @impl(tfm.RMSNormOp)
    def run_rms_norm(self, interpreter: Interpreter, op: tfm.RMSNormOp, args: tuple[Any, ...]):
        x, weight = map(fp32, args)
        return self.results(op, kernels.rms_norm(x, weight, op.eps.value.data))

    @impl(tfm.HeadNormOp)
    def run_head_norm(self, interpreter: Interpreter, op: tfm.HeadNormOp, args: tuple[Any, ...]):
        x, weight = map(fp32, args)
        return self.results(op, kernels.head_norm(x, weight, op.eps.value.data, op.head_dim.value.data))

    @impl(tfm.LayerNormOp)
    def run_layer_norm(self, interpreter: Interpreter, op: tfm.LayerNormOp, args: tuple[Any, ...]):
        x, weight, *bias = map(fp32, args)
        out = kernels.layer_norm(x, weight, bias[0] if bias else None, op.eps.value.data)
        return self.results(op, out)

    @impl(tfm.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: tfm.LinearOp, args: tuple[Any, ...]):
        x, weight, *bias = map(fp32, args)
        return self.results(op, kernels.linear(x, weight, bias[0] if bias else None))

    @impl(tfm.RopeOp)
    def run_rope(self, interpreter: Interpreter, op: tfm.RopeOp, args: tuple[Any, ...]):
        x, positions, *ext = args
        ext_factors = fp32(ext[0]) if ext else None
        out = kernels.rope(fp32(x), np.asarray(positions), op.num_heads.value.data, rope_spec(op), ext_factors)
        return self.results(op, out)

    @impl(tfm.AttentionOp)
    def run_attention(self, interpreter: Interpreter, op: tfm.AttentionOp, args: tuple[Any, ...]):
        q, k, v, *context, mask = args
        positions = context.pop() if op.positions is not None else None
        k_cache, v_cache = map(fp32, context) if context else (None, None)
        out = kernels.attention(fp32(q), fp32(k), fp32(v), k_cache, v_cache, fp32(mask), positions=positions, **attention_props(op))
        return self.results(op, out)

    @impl(tfm.ActOp)
    def run_act(self, interpreter: Interpreter, op: tfm.ActOp, args: tuple[Any, ...]):
        return self.results(op, kernels.activation(op.kind.data, fp32(args[0])))

    @impl(tfm.SoftcapOp)
    def run_softcap(self, interpreter: Interpreter, op: tfm.SoftcapOp, args: tuple[Any, ...]):
        return self.results(op, kernels.softcap(fp32(args[0]), op.cap.value.data))

    @impl(tfm.AddOp)
    def run_add(self, interpreter: Interpreter, op: tfm.AddOp, args: tuple[Any, ...]):
        return self.results(op, fp32(args[0]) + fp32(args[1]))

    @impl(tfm.MulOp)
    def run_mul(self, interpreter: Interpreter, op: tfm.MulOp, args: tuple[Any, ...]):
        return self.results(op, fp32(args[0]) * fp32(args[1]))

    @impl(tfm.CastOp)
    def run_cast(self, interpreter: Interpreter, op: tfm.CastOp, args: tuple[Any, ...]):
        return self.results(op, args[0])

    @impl(tfm.TopKOp)
    def run_topk(self, interpreter: Interpreter, op: tfm.TopKOp, args: tuple[Any, ...]):
        return self.results(op, *kernels.topk(fp32(args[0]), op.k.value.data))


@register_impls
class TargetTfmFunctions(TfmFunctions):
    """The tfm kernels with the target's numerics: results rounded to their element types."""

    def results(self, op: Operation, *values: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(round_result(v, r.type) for v, r in zip(values, op.results, strict=True))
