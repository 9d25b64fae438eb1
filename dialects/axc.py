"""The `axc` dialect: references to parameters that live outside the IR text, and the
names of the `axc.*` attributes and functions every level agrees on.

Weights never live in the IR. A parameter is named by a scope and a key; the module
attribute `axc.scopes` binds each scope to a checkpoint directory or file:

```mlir
builtin.module attributes {axc.scopes = {model = "/models/qwen2.5-0.5b"}} {
  %w = axc.param <"model"::"model.norm.weight"> : tensor<896xbf16>
}
```

A model module holds `@embed`, one function per decoder layer (`axc.layer = i`; after
`specialize-groups`, one per layer and shape group, with `axc.group`, `axc.tokens`,
`axc.history`) and `@post`:

```mlir
func.func @layer_0_g1(...) attributes {axc.layer = 0 : i64, axc.group = 1 : i64,
    axc.tokens = 128 : i64, axc.history = 128 : i64,
    axc.input_names = ["K_cache", ...], axc.output_names = [...]}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntegerAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Attribute, Dialect, Operation, ParametrizedAttribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure

SCOPES_ATTR = "axc.scopes"
"""Module: scope name → checkpoint path."""

EMBED = "embed"
"""The function that looks token ids up in the embedding table."""
POST = "post"
"""The function of the final norm and the lm head (the runtime's post model)."""

LAYER_ATTR = "axc.layer"
"""Function: the decoder layer it computes (i64)."""
GROUP_ATTR = "axc.group"
"""Function: its shape group (i64; 0 is decode), set by `specialize-groups`."""
TOKENS_ATTR = "axc.tokens"
"""Function: the new tokens per call of its shape group (i64)."""
HISTORY_ATTR = "axc.history"
"""Function: the cached rows its shape group sees (i64)."""
INPUT_NAMES_ATTR = "axc.input_names"
"""Function: the runtime's names of its arguments (array of strings)."""
OUTPUT_NAMES_ATTR = "axc.output_names"
"""Function: the runtime's names of its results (array of strings)."""

MODEL_TYPE_ATTR = "axc.model_type"
"""Module: the checkpoint's `model_type`."""
NUM_LAYERS_ATTR = "axc.num_layers"
"""Module: the decoder layer count (i64)."""
KV_CACHE_LEN_ATTR = "axc.kv_cache_len"
"""Module: the decode group's cache rows (i64), set by `specialize-groups`."""
PREFILL_LEN_ATTR = "axc.prefill_len"
"""Module: the tokens of one prefill call (i64), set by `specialize-groups`."""
HISTORIES_ATTR = "axc.histories"
"""Module: each shape group's history rows (array of i64), set by `specialize-groups`."""
TARGET_ATTR = "axc.target"
"""Module: the chip the npu level was tiled for, set by `tile`."""
NPU_MODE_ATTR = "axc.npu_mode"
"""Module: the NPU mode (cores) the npu level was tiled for, set by `tile`."""


def int_attr(op: Operation, name: str) -> int | None:
    """The value of integer attribute `name` of `op`, or None when it is absent."""
    attr = op.attributes.get(name)
    return attr.value.data if isinstance(attr, IntegerAttr) else None


def str_attr(op: Operation, name: str) -> str | None:
    """The value of string attribute `name` of `op`, or None when it is absent."""
    attr = op.attributes.get(name)
    return attr.data if isinstance(attr, StringAttr) else None


def layer_index(function: Operation) -> int | None:
    """The decoder layer a function computes (`axc.layer`), or None for `@embed`/`@post`."""
    return int_attr(function, LAYER_ATTR)


def group_index(function: Operation) -> int | None:
    """The shape group of a layer function (`axc.group`), or None before `specialize-groups`."""
    return int_attr(function, GROUP_ATTR)


def name_array(names: Sequence[str]) -> ArrayAttr[StringAttr]:
    """The value of `axc.input_names` / `axc.output_names`: `["K_cache", "V_cache", ...]`."""
    return ArrayAttr([StringAttr(n) for n in names])


@irdl_attr_definition
class ParamAttr(ParametrizedAttribute):
    """A named parameter: `#axc.param<"scope"::"key">`."""

    name = "axc.param"

    scope: StringAttr
    key: StringAttr

    def __init__(self, scope: str | StringAttr, key: str | StringAttr):
        super().__init__(
            StringAttr(scope) if isinstance(scope, str) else scope,
            StringAttr(key) if isinstance(key, str) else key,
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            scope = parser.parse_str_literal(" for the parameter scope")
            parser.parse_punctuation(":")
            parser.parse_punctuation(":")
            key = parser.parse_str_literal(" for the parameter key")
        return (StringAttr(scope), StringAttr(key))

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string_literal(self.scope.data)
            printer.print_string("::")
            printer.print_string_literal(self.key.data)


@irdl_op_definition
class ParamOp(IRDLOperation):
    """Materialise a parameter as a tensor value.

    `%w = axc.param <"model"::"lm_head.weight"> : tensor<151936x896xbf16>`
    """

    name = "axc.param"

    param = prop_def(ParamAttr)
    result = result_def(TensorType)

    assembly_format = "$param attr-dict `:` type($result)"
    traits = traits_def(Pure())

    def __init__(self, param: ParamAttr, result_type: TensorType):
        super().__init__(properties={"param": param}, result_types=[result_type])


def module_scopes(module: ModuleOp) -> dict[str, str]:
    """The `axc.scopes` binding of a module: scope name → checkpoint path."""
    scopes = module.attributes.get(SCOPES_ATTR)
    if not isinstance(scopes, DictionaryAttr):
        return {}
    return {
        name: value.data
        for name, value in scopes.data.items()
        if isinstance(value, StringAttr)
    }


def set_module_scopes(module: ModuleOp, scopes: dict[str, str]) -> None:
    """Replace the `axc.scopes` binding of a module."""
    module.attributes[SCOPES_ATTR] = DictionaryAttr(
        {name: StringAttr(path) for name, path in scopes.items()}
    )


AXC = Dialect("axc", [ParamOp], [ParamAttr])
