"""Hugging Face directory → `tfm` module (`axc-translate --import-hf`).

Reads `config.json` and the weight headers only; weights stay in the checkpoint and are
referenced as `axc.param` values of the scope `model`. The module has `@embed`, one
function per decoder layer with the runtime's I/O names, and `@post`:

```mlir
func.func @layer_0(%K_cache: tensor<1x?x128xf32>, %V_cache: tensor<1x?x128xf32>,
                   %indices: tensor<1x?xui32>, %input: tensor<1x?x896xf32>,
                   %mask: tensor<1x?x?xf32>) -> (tensor<1x?x128xf32>, tensor<1x?x128xf32>, tensor<1x?x896xf32>)
```
Token and history dimensions stay dynamic until `specialize-groups`. A GPTQ linear gets
the same `<prefix>.weight` parameter, in fp32: the checkpoint view dequantizes it exactly
(see `axc.frontend.gptq`) until `import-gptq` replaces the linear by a `quant.linear`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    f32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from axc.dialects import tfm
from axc.dialects.axc import ParamAttr, ParamOp, set_module_scopes
from axc.dtypes import FLOAT_TYPES
from axc.errors import AxcError
from axc.frontend.checkpoint_check import check_checkpoint
from axc.frontend.config import ModelConfig, load_config
from axc.frontend.gptq import GptqCheckpoint, open_checkpoint
from axc.params import Checkpoint
from axc.runtime_contract import LAYER_INPUTS, LAYER_OUTPUTS

MODEL_SCOPE = "model"
INDEX_TYPE = IntegerType(32, Signedness.UNSIGNED)
"""`indices` and `input_ids` are ui32, as the runtime passes them."""
DYN = DYNAMIC_INDEX

DTYPE_NAMES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def tensor(shape: tuple[int, ...], element: Attribute = f32) -> TensorType:
    return TensorType(element, shape)



def name_array(names: tuple[str, ...]) -> ArrayAttr[StringAttr]:
    return ArrayAttr([StringAttr(n) for n in names])


@dataclass
class FunctionBuilder:
    """Appends ops to one function body; parameters are materialised once each."""

    checkpoint: Checkpoint
    block: Block
    params: dict[str, SSAValue] = field(default_factory=dict)

    def add(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def param(self, key: str) -> SSAValue:
        if key not in self.params:
            dtype = DTYPE_NAMES.get(str(self.checkpoint.dtype(key)), "fp32")
            type_ = tensor(self.checkpoint.shape(key), FLOAT_TYPES[dtype])
            self.params[key] = self.add(ParamOp(ParamAttr(MODEL_SCOPE, key), type_))
        return self.params[key]

    def optional_param(self, key: str) -> SSAValue | None:
        return self.param(key) if key in self.checkpoint else None

    def linear(self, x: SSAValue, prefix: str) -> SSAValue:
        weight = self.param(f"{prefix}.weight")
        out_features = weight.type.get_shape()[0]  # type: ignore[attr-defined]
        shape = (*x.type.get_shape()[:-1], out_features)  # type: ignore[attr-defined]
        bias = self.optional_param(f"{prefix}.bias")
        return self.add(tfm.LinearOp(x, weight, bias, tensor(shape)))

    def rms_norm(self, x: SSAValue, key: str, eps: float) -> SSAValue:
        return self.add(tfm.RMSNormOp(x, self.param(key), eps))


def rope_properties(config: ModelConfig, num_heads: int) -> dict[str, Attribute]:
    scaling = config.rope_scaling
    kind = scaling.kind
    if kind not in tfm.ROPE_SCALINGS:
        raise AxcError(
            f"rope scaling '{kind}' of {config.model_name} is not supported yet "
            f"(supported: {', '.join(tfm.ROPE_SCALINGS)})"
        )
    return {
        "num_heads": tfm.int_prop(num_heads),
        "head_dim": tfm.int_prop(config.head_dim),
        "rotary_dim": tfm.int_prop(config.rotary_dim),
        "theta": tfm.float_prop(config.rope_theta),
        "scaling": StringAttr(kind),
        "factor": tfm.float_prop(scaling.factor),
        "low_freq_factor": tfm.float_prop(scaling.low_freq_factor),
        "high_freq_factor": tfm.float_prop(scaling.high_freq_factor),
        "original_max_positions": tfm.int_prop(scaling.original_max_position_embeddings),
    }


def build_layer(config: ModelConfig, checkpoint: Checkpoint, index: int) -> func.FuncOp:
    """One decoder layer: attention block and gated MLP with residuals."""
    hidden, kv_dim = config.hidden_size, config.kv_dim
    q_dim = config.num_attention_heads * config.head_dim
    input_types = [
        tensor((1, DYN, kv_dim)),
        tensor((1, DYN, kv_dim)),
        tensor((1, DYN), INDEX_TYPE),
        tensor((1, DYN, hidden)),
        tensor((1, DYN, DYN)),
    ]
    block = Block(arg_types=input_types)
    k_cache, v_cache, indices, hidden_in, mask = block.args
    b = FunctionBuilder(checkpoint, block)
    prefix = f"model.layers.{index}"
    eps = config.rms_norm_eps

    normed = b.rms_norm(hidden_in, f"{prefix}.input_layernorm.weight", eps)
    q = b.linear(normed, f"{prefix}.self_attn.q_proj")
    k = b.linear(normed, f"{prefix}.self_attn.k_proj")
    v = b.linear(normed, f"{prefix}.self_attn.v_proj")
    q_rot = b.add(
        tfm.RopeOp.create(
            operands=[q, indices],
            result_types=[q.type],
            properties=rope_properties(config, config.num_attention_heads),
        )
    )
    k_rot = b.add(
        tfm.RopeOp.create(
            operands=[k, indices],
            result_types=[k.type],
            properties=rope_properties(config, config.num_key_value_heads),
        )
    )
    attn = b.add(
        tfm.AttentionOp.create(
            operands=[q_rot, k_rot, v, k_cache, v_cache, mask],
            result_types=[tensor((1, DYN, q_dim))],
            properties={
                "num_heads": tfm.int_prop(config.num_attention_heads),
                "num_kv_heads": tfm.int_prop(config.num_key_value_heads),
                "head_dim": tfm.int_prop(config.head_dim),
                "scale": tfm.float_prop(1.0 / math.sqrt(config.head_dim)),
            },
        )
    )
    attn_out = b.linear(attn, f"{prefix}.self_attn.o_proj")
    residual = b.add(tfm.AddOp(hidden_in, attn_out))

    normed2 = b.rms_norm(residual, f"{prefix}.post_attention_layernorm.weight", eps)
    gate = b.linear(normed2, f"{prefix}.mlp.gate_proj")
    up = b.linear(normed2, f"{prefix}.mlp.up_proj")
    act = b.add(
        tfm.ActOp.create(
            operands=[gate],
            result_types=[gate.type],
            properties={"kind": StringAttr(activation_kind(config.hidden_act))},
        )
    )
    gated = b.add(tfm.MulOp(act, up))
    down = b.linear(gated, f"{prefix}.mlp.down_proj")
    output = b.add(tfm.AddOp(residual, down))
    block.add_op(func.ReturnOp(k_rot, v, output))

    return make_function(
        f"layer_{index}",
        block,
        LAYER_INPUTS,
        LAYER_OUTPUTS,
        {"axc.layer": IntegerAttr(index, i64)},
    )


def activation_kind(hidden_act: str) -> str:
    kinds = {
        "silu": "silu",
        "swish": "silu",
        "gelu": "gelu",
        "gelu_pytorch_tanh": "gelu_tanh",
        "gelu_new": "gelu_tanh",
        "gelu_tanh": "gelu_tanh",
        "relu": "relu",
    }
    if hidden_act not in kinds:
        raise AxcError(
            f"hidden_act '{hidden_act}' is not supported (supported: {', '.join(sorted(kinds))})"
        )
    return kinds[hidden_act]


def make_function(
    name: str,
    block: Block,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    extra: dict[str, Attribute] | None = None,
) -> func.FuncOp:
    ret = block.last_op
    assert isinstance(ret, func.ReturnOp)
    function = func.FuncOp(
        name,
        ([a.type for a in block.args], [o.type for o in ret.operands]),
        Region(block),
    )
    for arg, arg_name in zip(function.args, input_names, strict=True):
        arg.name_hint = arg_name
    function.attributes["axc.input_names"] = name_array(input_names)
    function.attributes["axc.output_names"] = name_array(output_names)
    for key, value in (extra or {}).items():
        function.attributes[key] = value
    return function


EMBED_KEYS = (
    "model.embed_tokens.weight",
    "llm.model.embed_tokens.weight",
    "language_model.model.embed_tokens.weight",
)
"""Where checkpoints keep the embedding table, in the vendor extractor's lookup order."""


def embedding_key(checkpoint: Checkpoint) -> str:
    key = checkpoint.find_key(*EMBED_KEYS)
    if key is None:
        raise AxcError(
            f"no embedding table in {checkpoint.path} (looked for {', '.join(EMBED_KEYS)})"
        )
    return key


def build_embed(config: ModelConfig, checkpoint: Checkpoint) -> func.FuncOp:
    block = Block(arg_types=[tensor((1, DYN), INDEX_TYPE)])
    b = FunctionBuilder(checkpoint, block)
    table = b.param(embedding_key(checkpoint))
    out = b.add(
        tfm.EmbeddingOp(block.args[0], table, tensor((1, DYN, config.hidden_size)))
    )
    block.add_op(func.ReturnOp(out))
    return make_function("embed", block, ("input_ids",), ("output",))


def build_post(config: ModelConfig, checkpoint: Checkpoint) -> func.FuncOp:
    """Final norm and lm_head (the embedding table when the model ties them)."""
    block = Block(arg_types=[tensor((1, DYN, config.hidden_size))])
    b = FunctionBuilder(checkpoint, block)
    normed = b.rms_norm(block.args[0], "model.norm.weight", config.rms_norm_eps)
    head = (
        embedding_key(checkpoint)
        if config.tie_word_embeddings or "lm_head.weight" not in checkpoint
        else "lm_head.weight"
    )
    logits = b.add(
        tfm.LinearOp(normed, b.param(head), None, tensor((1, DYN, config.vocab_size)))
    )
    block.add_op(func.ReturnOp(logits))
    return make_function("post", block, ("input",), ("output",))


def import_hf(model_dir: str | Path, model_config: str | Path | None = None) -> ModuleOp:
    """Build the `tfm` module of a Hugging Face checkpoint directory (headers only)."""
    model_dir = Path(model_dir).resolve()
    config = load_config(model_dir, model_config)
    checkpoint = open_checkpoint(model_dir)
    check_checkpoint(config, checkpoint)
    if isinstance(checkpoint, GptqCheckpoint):
        checkpoint.check()
    functions: list[Operation] = [build_embed(config, checkpoint)]
    functions += [build_layer(config, checkpoint, i) for i in range(config.num_hidden_layers)]
    functions.append(build_post(config, checkpoint))
    module = ModuleOp(functions)
    set_module_scopes(module, {MODEL_SCOPE: str(model_dir)})
    module.attributes["axc.model_type"] = StringAttr(config.model_type)
    module.attributes["axc.num_layers"] = IntegerAttr(config.num_hidden_layers, i64)
    return module
