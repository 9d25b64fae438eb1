"""Shared pieces of decoder layers: keyword-only builders of `tfm` ops.

A family's `layer(b)` reads like its modelling code; every tensor it names must be in the
family's table (`Family.layer_tensors`), so the checks and the estimate see what the
builder reads:

```python
def layer(b: Builder) -> None:
    x = b.input
    q, k, v = qkv(b, b.rms_norm(x, "input_layernorm.weight"))
    q, k = rope(b, q, heads=b.config.num_attention_heads), rope(b, k, heads=b.config.num_key_value_heads)
    x = b.residual(x, b.linear(attention(b, q, k, v), "self_attn.o_proj"))
    b.output(k, v, b.residual(x, gated_mlp(b, b.rms_norm(x, "post_attention_layernorm.weight"))))
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xdsl.dialects.builtin import StringAttr, TensorType, f32
from xdsl.ir import Attribute, Block, Operation, SSAValue

from axc.dialects import tfm
from axc.dialects.axc import ParamAttr, ParamOp
from axc.dtypes import FLOAT_TYPES
from axc.errors import AxcError
from axc.frontend.families.tensors import Tensor
from axc.frontend.model_config import ModelConfig
from axc.kernels import ROPE_SCALINGS, Activation, RopeSpec
from axc.params import Checkpoint

MODEL_SCOPE = "model"
DTYPE_NAMES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
ACTIVATIONS = {
    "silu": Activation.SILU,
    "swish": Activation.SILU,
    "gelu": Activation.GELU,
    "gelu_pytorch_tanh": Activation.GELU_TANH,
    "gelu_new": Activation.GELU_TANH,
    "gelu_tanh": Activation.GELU_TANH,
    "relu": Activation.RELU,
}
"""Hugging Face `hidden_act` (transformers' `ACT2FN` keys) → the `tfm.act` kind it computes."""


def tensor(shape: tuple[int, ...], element: Attribute = f32) -> TensorType:
    return TensorType(element, shape)


def shape_of(value: SSAValue) -> tuple[int, ...]:
    return tuple(value.type.get_shape())  # type: ignore[attr-defined]  # SSA types are Attribute; the builder only makes tensors


@dataclass
class Builder:
    """Appends ops to one function body. Parameters are named relative to `prefix`, must
    be in `tensors` (keyed by their checkpoint names) and are materialised once each."""

    config: ModelConfig
    checkpoint: Checkpoint
    block: Block
    tensors: dict[str, Tensor]
    args: dict[str, SSAValue]
    """The function's arguments by runtime name (`K_cache`, ..., `input`, `mask`)."""
    prefix: str = ""
    layer: int = -1
    """The decoder layer being built (-1 outside the layers)."""
    head: str | None = None
    """The lm_head's weight key (`@post` only)."""
    params: dict[str, SSAValue] = field(default_factory=dict)
    outputs: tuple[SSAValue, ...] = ()

    @property
    def input(self) -> SSAValue:
        """The hidden state coming in (`input`)."""
        return self.args["input"]

    @property
    def indices(self) -> SSAValue:
        return self.args["indices"]

    def add(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def entry(self, name: str) -> Tensor:
        """The table entry of `name` (relative to `prefix`)."""
        return self.known(self.prefix + name)

    def known(self, key: str) -> Tensor:
        """The table entry of a checkpoint key or of the linear it belongs to."""
        module = key.rsplit(".", 1)[0]
        entry = self.tensors.get(key) or self.tensors.get(module)
        if entry is None:
            raise AssertionError(f"the builder reads {key}, which the family's tensor table lacks")
        return entry

    def param(self, key: str) -> SSAValue:
        """The parameter `key` (a full checkpoint name)."""
        if key not in self.params:
            dtype = DTYPE_NAMES.get(str(self.checkpoint.dtype(key)), "fp32")
            type_ = tensor(self.checkpoint.shape(key), FLOAT_TYPES[dtype])
            self.params[key] = self.add(ParamOp(ParamAttr(MODEL_SCOPE, key), type_))
        return self.params[key]

    def weight(self, name: str) -> SSAValue:
        self.entry(name)
        return self.param(self.prefix + name)

    def linear(self, x: SSAValue, name: str) -> SSAValue:
        """`tfm.linear` of the table's linear `name` (its bias when the table says so)."""
        entry = self.entry(name)
        assert entry.linear, f"{name} is not a linear"
        return self.project(x, self.prefix + name + ".weight", self.prefix + name + ".bias" if entry.bias(self.config) else None)

    def project(self, x: SSAValue, weight_key: str, bias_key: str | None) -> SSAValue:
        """`tfm.linear` of a weight given by its checkpoint key (the lm_head)."""
        self.known(weight_key)
        weight = self.param(weight_key)
        shape = (*shape_of(x)[:-1], shape_of(weight)[0])
        bias = self.param(bias_key) if bias_key is not None else None
        return self.add(tfm.LinearOp(x, weight, bias, tensor(shape)))

    def rms_norm(self, x: SSAValue, name: str) -> SSAValue:
        return self.add(tfm.RMSNormOp(x, self.weight(name), self.config.rms_norm_eps))

    def layer_norm(self, x: SSAValue, name: str) -> SSAValue:
        """LayerNorm with the table's `name.weight` and `name.bias`."""
        operands = [x, self.weight(f"{name}.weight"), self.weight(f"{name}.bias")]
        eps = {"eps": tfm.float_prop(self.config.rms_norm_eps)}
        return self.add(tfm.LayerNormOp.create(operands=operands, result_types=[x.type], properties=eps))

    def residual(self, x: SSAValue, branch: SSAValue) -> SSAValue:
        return self.add(tfm.AddOp(x, branch))

    def output(self, *values: SSAValue) -> None:
        self.outputs = values


def rope_properties(config: ModelConfig, num_heads: int) -> dict[str, Attribute]:
    scaling = config.rope_scaling
    kind = scaling.kind
    if kind not in ROPE_SCALINGS:
        raise AxcError(
            f"rope scaling '{kind}' of {config.model_name} is not supported yet "
            f"(supported: {', '.join(ROPE_SCALINGS)})"
        )
    spec = RopeSpec(
        head_dim=config.head_dim,
        rotary_dim=config.rotary_dim,
        theta=config.rope_theta,
        scaling=kind,
        factor=scaling.factor,
        low_freq_factor=scaling.low_freq_factor,
        high_freq_factor=scaling.high_freq_factor,
        original_max_positions=scaling.original_max_position_embeddings,
        mscale=scaling.mscale,
    )
    return {"num_heads": tfm.int_prop(num_heads), "head_dim": tfm.int_prop(config.head_dim), "rope": tfm.RopeAttr.of(spec)}


def qkv(b: Builder, x: SSAValue) -> tuple[SSAValue, SSAValue, SSAValue]:
    """The query, key and value projections of `self_attn`."""
    return tuple(b.linear(x, f"self_attn.{p}_proj") for p in "qkv")  # type: ignore[return-value]  # a generator of three is a 3-tuple, which mypy cannot count


ROPE_FACTORS = "self_attn.rotary_emb.{}_factor"
"""Layer tensors of a longrope's factor tables (`short`, `long`): views of the config."""


def rope(b: Builder, x: SSAValue, *, heads: int) -> SSAValue:
    """RoPE at the layer's positions; a longrope reads the factor table the build chose."""
    scaling = b.config.rope_scaling
    operands = [x, b.indices]
    if scaling.kind == "longrope":
        operands.append(b.weight(ROPE_FACTORS.format("long" if scaling.long else "short")))
    return b.add(tfm.RopeOp.create(operands=operands, result_types=[x.type], properties=rope_properties(b.config, heads)))


def head_norm(b: Builder, x: SSAValue, name: str) -> SSAValue:
    """RMSNorm of each head of `x` with the table's `[head_dim]` weight `name`."""
    return b.add(tfm.HeadNormOp(x, b.weight(name), b.config.head_dim, b.config.rms_norm_eps))


def attention(b: Builder, q: SSAValue, k: SSAValue, v: SSAValue) -> SSAValue:
    """Grouped-query attention of the new rows over the caches (before `o_proj`), with the
    config's score scale and soft-cap and this layer's sliding window (from `indices`)."""
    c = b.config
    window = c.sliding_windows[b.layer] if c.sliding_windows else 0
    return b.add(
        tfm.AttentionOp.create(
            operands=[q, k, v, b.args["K_cache"], b.args["V_cache"], *([b.indices] if window else []), b.args["mask"]],
            result_types=[tensor((*shape_of(q)[:-1], c.num_attention_heads * c.head_dim))],
            properties={
                "num_heads": tfm.int_prop(c.num_attention_heads),
                "num_kv_heads": tfm.int_prop(c.num_key_value_heads),
                "head_dim": tfm.int_prop(c.head_dim),
                "scale": tfm.float_prop(c.attention_scale or 1.0 / math.sqrt(c.head_dim)),
                **({"softcap": tfm.float_prop(c.attention_softcap)} if c.attention_softcap else {}),
                **({"sliding_window": tfm.int_prop(window)} if window else {}),
            },
        )
    )


def activation_kind(hidden_act: str) -> Activation:
    if hidden_act not in ACTIVATIONS:
        raise AxcError(
            f"hidden_act '{hidden_act}' is not supported (supported: {', '.join(sorted(ACTIVATIONS))})"
        )
    return ACTIVATIONS[hidden_act]


def act(b: Builder, x: SSAValue) -> SSAValue:
    """The config's activation (`hidden_act`) of `x`."""
    kind = {"kind": StringAttr(activation_kind(b.config.hidden_act).value)}
    return b.add(tfm.ActOp.create(operands=[x], result_types=[x.type], properties=kind))


def gated_mlp(b: Builder, x: SSAValue) -> SSAValue:
    """`down(act(gate(x)) * up(x))`."""
    gate = b.linear(x, "mlp.gate_proj")
    up = b.linear(x, "mlp.up_proj")
    return b.linear(b.add(tfm.MulOp(act(b, gate), up)), "mlp.down_proj")


def softcap(b: Builder, x: SSAValue, cap: float) -> SSAValue:
    """`tanh(x / cap) * cap`, or `x` when `cap` is 0."""
    if not cap:
        return x
    return b.add(tfm.SoftcapOp.create(operands=[x], result_types=[x.type], properties={"cap": tfm.float_prop(cap)}))
