"""Compile structure once (DESIGN §2.2): functions that differ only in parameter keys.

Decoder layers of one model share their structure per shape group; only the keys of
their `#axc.param` attributes differ. `shared_structures` groups functions by a key that
ignores parameter keys; a pass transforms one function per group and `rebind` turns a
clone of the result into every other member by renaming its parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from axc.dialects.axc import LAYER_ATTR, ParamAttr

PER_LAYER_ATTRS = ("sym_name", LAYER_ATTR)
"""Function attributes that differ between layers of one structure."""


def _attr_key(attr: Attribute) -> Hashable:
    return ("param", attr.scope.data) if isinstance(attr, ParamAttr) else attr


def structure_key(function: func.FuncOp) -> Hashable:
    """A hashable summary of `function` that ignores parameter keys and layer numbers."""
    numbering: dict[SSAValue, int] = {arg: i for i, arg in enumerate(function.args)}
    parts: list[Hashable] = [
        function.function_type,
        tuple(sorted((k, v) for k, v in function.attributes.items() if k not in PER_LAYER_ATTRS)),
    ]
    for op in function.body.walk():
        for block in (b for r in op.regions for b in r.blocks):
            for arg in block.args:
                numbering[arg] = len(numbering)
        parts.append(
            (
                op.name,
                tuple(numbering.get(v, -1) for v in op.operands),
                tuple(r.type for r in op.results),
                tuple((k, _attr_key(v)) for k, v in op.properties.items()),
                tuple((k, _attr_key(v)) for k, v in op.attributes.items()),
            )
        )
        for result in op.results:
            numbering[result] = len(numbering)
    return tuple(parts)


def params_in_order(function: func.FuncOp) -> list[ParamAttr]:
    return [
        attr
        for op in function.body.walk()
        for attr in op.properties.values()
        if isinstance(attr, ParamAttr)
    ]


def shared_structures(functions: Iterable[func.FuncOp]) -> list[list[func.FuncOp]]:
    """Groups of structurally identical functions, in first-appearance order."""
    groups: dict[Hashable, list[func.FuncOp]] = {}
    for function in functions:
        groups.setdefault(structure_key(function), []).append(function)
    return list(groups.values())


def rebind(template: func.FuncOp, mapping: dict[ParamAttr, ParamAttr], like: func.FuncOp) -> func.FuncOp:
    """A clone of `template` with parameters renamed by `mapping` and the per-layer
    attributes of `like`."""
    clone = template.clone()
    for key in PER_LAYER_ATTRS:
        if key in like.attributes:
            clone.attributes[key] = like.attributes[key]
        elif key in like.properties:
            clone.properties[key] = like.properties[key]
    for op in clone.body.walk():
        for name, attr in op.properties.items():
            if isinstance(attr, ParamAttr) and attr in mapping:
                op.properties[name] = mapping[attr]
    return clone


def transform_once(
    module: ModuleOp,
    functions: Iterable[func.FuncOp],
    transform: Callable[[func.FuncOp], func.FuncOp | None],
    replay: Callable[[func.FuncOp, func.FuncOp], None] | None = None,
) -> None:
    """Apply `transform` to one function per structure and reuse its result for the rest.

    `transform` may change the function in place (returning None) or return a replacement.
    Other members become re-bound clones of the result, or, with `replay(result, member)`
    for transforms that only annotate, are annotated in place the same way.
    """
    for group in shared_structures(functions):
        first = group[0]
        before = [params_in_order(member) for member in group]
        result = transform(first)
        if result is not None and result is not first:
            Rewriter.insert_op(result, InsertPoint.before(first))
            Rewriter.erase_op(first)
        else:
            result = first
        for member, params in zip(group[1:], before[1:]):
            if replay is not None:
                replay(result, member)
                continue
            mapping = dict(zip(before[0], params, strict=True))
            clone = rebind(result, mapping, member)
            Rewriter.insert_op(clone, InsertPoint.before(member))
            Rewriter.erase_op(member, safe_erase=False)


def operation_count(module: Operation) -> int:
    return sum(1 for _ in module.walk()) - 1
