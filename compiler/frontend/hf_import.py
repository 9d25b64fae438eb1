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
(see `axc.checkpoints.gptq`) until `import-gptq` replaces the linear by a `quant.linear`.
"""

from __future__ import annotations

from pathlib import Path

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region

from axc.dialects import tfm
from axc.dialects.axc import EMBED as EMBED_FUNCTION
from axc.dialects.axc import (
    INPUT_NAMES_ATTR,
    LAYER_ATTR,
    MODEL_TYPE_ATTR,
    NUM_LAYERS_ATTR,
    OUTPUT_NAMES_ATTR,
    POST,
    name_array,
    set_module_scopes,
)
from axc.errors import AxcError
from axc.frontend.checkpoint_check import check_checkpoint, expected_layer_tensors, global_tensors
from axc.frontend.config import ModelConfig, load_config
from axc.frontend.families import get_family
from axc.frontend.families.tensors import EMBED, LM_HEAD
from axc.frontend.families.blocks import MODEL_SCOPE, Builder, tensor
from axc.frontend.views import open_model_checkpoint
from axc.checkpoints.gptq import GptqCheckpoint
from axc.params import Checkpoint
from axc.runtime_contract import INPUT, LAYER_INPUTS, LAYER_OUTPUTS, OUTPUT

INDEX_TYPE = IntegerType(32, Signedness.UNSIGNED)
"""`indices` and `input_ids` are ui32, as the runtime passes them."""
DYN = DYNAMIC_INDEX


def build_layer(config: ModelConfig, checkpoint: Checkpoint, index: int) -> func.FuncOp:
    """Decoder layer `index` as its family builds it."""
    family = get_family(config.model_type)
    hidden, kv_dim = config.hidden_size, config.kv_dim
    input_types = [
        tensor((1, DYN, kv_dim)),
        tensor((1, DYN, kv_dim)),
        tensor((1, DYN), INDEX_TYPE),
        tensor((1, DYN, hidden)),
        tensor((1, DYN, DYN)),
    ]
    block = Block(arg_types=input_types)
    b = Builder(
        config,
        checkpoint,
        block,
        expected_layer_tensors(config, index),
        dict(zip(LAYER_INPUTS, block.args, strict=True)),
        prefix=family.layer_key(index, ""),
        layer=index,
    )
    family.layer(b)
    block.add_op(func.ReturnOp(*b.outputs))
    return make_function(
        f"layer_{index}",
        block,
        LAYER_INPUTS,
        LAYER_OUTPUTS,
        {LAYER_ATTR: IntegerAttr(index, i64)},
    )


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
    function.attributes[INPUT_NAMES_ATTR] = name_array(input_names)
    function.attributes[OUTPUT_NAMES_ATTR] = name_array(output_names)
    for key, value in (extra or {}).items():
        function.attributes[key] = value
    return function


EMBED_KEYS = (
    EMBED,
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


def global_builder(config: ModelConfig, checkpoint: Checkpoint, block: Block, head: str | None = None) -> Builder:
    tensors = global_tensors(config)
    key = embedding_key(checkpoint)
    tensors[key] = tensors[EMBED]
    return Builder(config, checkpoint, block, tensors, {"input": block.args[0]}, head=head)


def build_embed(config: ModelConfig, checkpoint: Checkpoint) -> func.FuncOp:
    block = Block(arg_types=[tensor((1, DYN), INDEX_TYPE)])
    b = global_builder(config, checkpoint, block)
    table = b.param(embedding_key(checkpoint))
    out = b.add(
        tfm.EmbeddingOp(block.args[0], table, tensor((1, DYN, config.hidden_size)))
    )
    block.add_op(func.ReturnOp(out))
    return make_function(EMBED_FUNCTION, block, ("input_ids",), (OUTPUT,))


def lm_head_key(config: ModelConfig, checkpoint: Checkpoint) -> str:
    """The lm_head's weight: the embedding table when the model ties them."""
    if config.tie_word_embeddings or LM_HEAD not in checkpoint:
        return embedding_key(checkpoint)
    return LM_HEAD


def build_post(config: ModelConfig, checkpoint: Checkpoint) -> func.FuncOp:
    """The family's `@post` (final norm and lm_head)."""
    family = get_family(config.model_type)
    block = Block(arg_types=[tensor((1, DYN, config.hidden_size))])
    b = global_builder(config, checkpoint, block, lm_head_key(config, checkpoint))
    family.post(b)
    block.add_op(func.ReturnOp(*b.outputs))
    return make_function(POST, block, (INPUT,), (OUTPUT,))


def import_hf(
    model_dir: str | Path, model_config: str | Path | None = None, context_len: int | None = None
) -> ModuleOp:
    """Build the `tfm` module of a Hugging Face checkpoint directory (headers only);
    `context_len` (the build's kv_cache_len) picks a longrope's factor table."""
    model_dir = Path(model_dir).resolve()
    config = load_config(model_dir, model_config, context_len)
    checkpoint = open_model_checkpoint(model_dir)
    check_checkpoint(config, checkpoint)
    if isinstance(checkpoint, GptqCheckpoint):
        checkpoint.check()
    functions: list[Operation] = [build_embed(config, checkpoint)]
    functions += [build_layer(config, checkpoint, i) for i in range(config.num_hidden_layers)]
    functions.append(build_post(config, checkpoint))
    module = ModuleOp(functions)
    set_module_scopes(module, {MODEL_SCOPE: str(model_dir)})
    module.attributes[MODEL_TYPE_ATTR] = StringAttr(config.model_type)
    module.attributes[NUM_LAYERS_ATTR] = IntegerAttr(config.num_hidden_layers, i64)
    return module
