"""`quantize-weights`: decoder-layer and lm_head linears → `quant.linear` of a storage type.

Options: `weight-type` (decoder layers; s8, s4, fp8_e4m3, fp8_e5m2, bf16, fp16, fp32),
`group-size` (s8/s4: 0 = one scale per output channel; default 0 for s8, 128 for s4,
capped at the input size), `post-weight-type` (the lm_head in `@post`: bf16, s8,
fp8_e5m2, fp8_e4m3), `asym` (zero points for integer decoder weights) and `chip` (refuse
types the chip cannot store). Defaults are the vendor's: s8 decoder weights (or the
checkpoint's own bits for GPTQ) and an s8 lm_head.

```mlir
%w = axc.param <"model"::"model.layers.0.mlp.up_proj.weight"> : tensor<32x16xbf16>
%y = tfm.linear %x, %w : (tensor<1x?x16xf32>, tensor<32x16xbf16>) -> tensor<1x?x32xf32>
// quantize-weights{weight-type=s4}
%w = quant.weight <"axc"::"model.layers.0.mlp.up_proj.s4"> scales <"axc"::"model.layers.0.mlp.up_proj.s4.scales">
       : !quant.w<s4, 32x16, group = 16, sym, scale = f16>
%y = quant.linear %x, %w : (tensor<1x?x16xf32>, !quant.w<s4, 32x16, group = 16, sym, scale = f16>) -> tensor<1x?x32xf32>
```

Each weight's arrays are added to the scope `axc` as lazy parameters: they are quantized
(vectorised numpy over the checkpoint's rows) when first read, and emission streams them a
few rows at a time, so no weight need be in memory whole; plain types that match the
checkpoint's dtype reference the checkpoint directly. GPTQ linears are imported, never re-quantized (`import-gptq`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from axc.binding import CREATED_SCOPE, store_for
from axc.dialects import quant, tfm
from axc.dialects.axc import LAYER_ATTR, POST, ParamOp
from axc.errors import AxcError
from axc.checkpoints.gptq import STORAGE_BITS, GptqCheckpoint
from axc.gptq_patterns import EraseUnusedParam, ImportGptqLinear, gptq_source
from axc.ir_utils import enclosing_function
from axc.params import ParamStore
from axc.quantization import FP8_KINDS, INTEGER_KINDS, KINDS, NUMPY_TYPES, LazyQuantized, WeightSpec

POST_KINDS = ("bf16", "s8", "fp8_e5m2", "fp8_e4m3")
DEFAULT_GROUP = {"s8": 0, "s4": 128}


@dataclass(frozen=True)
class WeightChoice:
    """The storage asked for one class of linears; `spec` fits it to a weight's shape."""

    kind: str
    group: int | None = None
    asym: bool = False

    def spec(self, out_features: int, in_features: int) -> WeightSpec:
        if self.kind in INTEGER_KINDS:
            group = DEFAULT_GROUP[self.kind] if self.group is None else self.group
            return WeightSpec(self.kind, out_features, in_features, min(group, in_features), self.asym)
        if self.kind in FP8_KINDS:
            return WeightSpec(self.kind, out_features, in_features, scale_type="bf16")
        return WeightSpec(self.kind, out_features, in_features, scale_type="")


@dataclass
class QuantizeLinear(RewritePattern):
    """`tfm.linear` of a decoder layer or `@post` → `quant.weight` + `quant.linear`."""

    store: ParamStore
    decoder: WeightChoice
    post: WeightChoice
    done: dict[tuple[str, str, WeightSpec], tuple[str, dict[str, str]]] = field(default_factory=dict)

    def choice(self, op: tfm.LinearOp) -> WeightChoice | None:
        function = enclosing_function(op)
        if function is None:
            return None
        if LAYER_ATTR in function.attributes:
            return self.decoder
        return self.post if function.sym_name.data == POST else None

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tfm.LinearOp, rewriter: PatternRewriter) -> None:
        param, choice = op.weight.owner, self.choice(op)
        if not isinstance(param, ParamOp) or choice is None or gptq_source(self.store, op):
            return
        scope, key = param.param.scope.data, param.param.key.data
        spec = choice.spec(*tfm.shape_of(op.weight))
        if (scope, key, spec) not in self.done:
            if not spec.quantized and self.store.dtype(scope, key) == NUMPY_TYPES[spec.kind]:
                self.done[(scope, key, spec)] = (scope, {"data": key})
            else:
                prefix = "lm_head" if choice is self.post else key.removesuffix(".weight")
                weight = LazyQuantized(spec, partial(self.store.rows, scope, key))
                self.done[(scope, key, spec)] = (CREATED_SCOPE, weight.save(self.store, CREATED_SCOPE, prefix))
        stored_scope, keys = self.done[(scope, key, spec)]
        stored = quant.WeightOp.of(quant.WeightType.of(spec), stored_scope, keys)
        rewriter.replace(op, [stored, quant.LinearOp(op.input, stored.result, op.bias, op.result.type)])


@dataclass(frozen=True)
class QuantizeWeights(ModulePass):
    """Store decoder weights as `weight-type` and the lm_head as `post-weight-type`."""

    name: ClassVar[str] = "quantize-weights"

    weight_type: str | None = None
    group_size: int | None = None
    post_weight_type: str = "s8"
    asym: bool = False
    chip: str | None = None

    def __post_init__(self) -> None:
        if self.weight_type is not None and self.weight_type not in KINDS:
            raise AxcError(
                f"unknown weight-type '{self.weight_type}' for quantize-weights; use one of {', '.join(KINDS)}"
            )
        if self.post_weight_type not in POST_KINDS:
            raise AxcError(
                f"unknown post-weight-type '{self.post_weight_type}' for quantize-weights; "
                f"use one of {', '.join(POST_KINDS)}"
            )
        if self.group_size is not None and self.group_size < 0:
            raise AxcError(f"group-size={self.group_size} must be 0 (per channel) or positive")

    def decoder_choice(self, gptq: GptqCheckpoint | None) -> WeightChoice:
        kind = self.weight_type or "s8"
        if gptq is not None and (gptq_kind := STORAGE_BITS.get(gptq.quant.bits)) is not None:
            if self.weight_type not in (None, gptq_kind):
                raise AxcError(
                    f"weight-type={self.weight_type} contradicts the {gptq.quant.bits}-bit GPTQ checkpoint "
                    f"{gptq.path}; omit weight-type or pass weight-type={gptq_kind}"
                )
            kind = gptq_kind
        if (self.group_size is not None or self.asym) and kind not in INTEGER_KINDS:
            raise AxcError(f"group-size and asym apply to s8/s4 weights only, not weight-type={kind}")
        return WeightChoice(kind, self.group_size, self.asym)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = store_for(op)
        gptq = next(
            (c for c in map(store.checkpoint, store.scopes()) if isinstance(c, GptqCheckpoint)), None
        )
        decoder, post = self.decoder_choice(gptq), WeightChoice(self.post_weight_type)
        if self.chip is not None:
            from axc.targets import check_weight_type, get_target

            target = get_target(self.chip)
            check_weight_type(target, decoder.kind, "decoder weights", "weight-type")
            check_weight_type(target, post.kind, "lm_head weights", "post-weight-type")
        patterns = [ImportGptqLinear(store), QuantizeLinear(store, decoder, post), EraseUnusedParam()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
