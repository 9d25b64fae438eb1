"""The `axc` dialect: references to parameters that live outside the IR text.

Weights never live in the IR (DESIGN §2.1). A parameter is named by a scope and a key;
the module attribute `axc.scopes` binds each scope to a checkpoint directory or file:

```mlir
builtin.module attributes {axc.scopes = {model = "/models/qwen2.5-0.5b"}} {
  %w = axc.param <"model"::"model.norm.weight"> : tensor<896xbf16>
}
```
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute
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
