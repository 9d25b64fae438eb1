"""What the runtime sees of any ONNX-container `.axmodel`: its shape groups' I/O.

Reads only the container (the vendor's files included: their payload is not public, the
container is ONNX, see axmodel-container.md), never the command streams. One node per
shape group; group k's tensors are named without the `_<k>` suffix the container adds,
the names the runtime (and pyaxengine) show for every group:

```python
info = describe("qwen2_p128_l0_together.axmodel")
[(t.name, t.dtype, t.shape) for t in info.groups[1].inputs]
# [('K_cache', 'bfloat16', (1, 1, 896)), ..., ('mask', 'bfloat16', (1, 128, 128))]
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from axc.axmodel.container import plain_name
from axc.errors import AxcError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    """numpy's name for the element type (`bfloat16`, `uint32`, ...), as pyaxengine reports it."""
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class GroupInfo:
    index: int
    node: str
    label: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True)
class ContainerInfo:
    producer: str
    producer_version: str
    groups: tuple[GroupInfo, ...]
    metadata: dict[str, str]


def element_name(elem_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError):
        return f"onnx type {elem_type}"


def tensor_info(value: onnx.ValueInfoProto, k: int) -> TensorInfo:
    name = plain_name(value.name, k) or value.name
    tensor = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    return TensorInfo(name, element_name(tensor.elem_type), shape)


def node_label(node: onnx.NodeProto) -> str:
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.STRING and attribute.name == "group":
            return attribute.s.decode("utf-8", "replace")
    return node.op_type


def describe(path: str | Path) -> ContainerInfo:
    """The shape groups of an ONNX-container `.axmodel` (ours or the vendor's)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise AxcError(f"cannot read {path}: {error.strerror or error}; check the path") from None
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        raise AxcError(f"{path}: not an ONNX protobuf, so not an .axmodel container (truncated or another format)") from None
    graph = proto.graph
    inputs = {v.name: v for v in graph.input}
    outputs = {v.name: v for v in graph.output}
    if not inputs and not outputs:
        raise AxcError(f"{path}: the ONNX graph declares no inputs or outputs; not an .axmodel container")
    nodes = [n for n in graph.node if any(name in outputs for name in n.output)]
    groups = []
    for k, node in enumerate(nodes):
        groups.append(
            GroupInfo(
                k,
                node.name,
                node_label(node),
                tuple(tensor_info(inputs[n], k) for n in node.input if n in inputs),
                tuple(tensor_info(outputs[n], k) for n in node.output if n in outputs),
            )
        )
    if not groups:  # no node per group: the graph's own I/O is the one group
        groups.append(GroupInfo(0, graph.name, "graph", tuple(tensor_info(v, 0) for v in graph.input), tuple(tensor_info(v, 0) for v in graph.output)))
    metadata = {p.key: p.value for p in proto.metadata_props}
    return ContainerInfo(proto.producer_name, proto.producer_version, tuple(groups), metadata)


def format_info(info: ContainerInfo, where: str) -> str:
    """The text `axc-run --info` prints."""
    target = " ".join(info.metadata[k] for k in ("chip", "npu_mode") if k in info.metadata)
    lines = [
        f"{where}: ONNX container by {info.producer or '?'} {info.producer_version}".rstrip()
        + f", {len(info.groups)} shape group{'s' if len(info.groups) != 1 else ''}"
        + (f", {target}" if target else "")
    ]
    width = max((len(t.name) for g in info.groups for t in (*g.inputs, *g.outputs)), default=4)
    for group in info.groups:
        lines.append(f"group {group.index} ({group.label}, node {group.node})")
        for kind, tensors in (("input", group.inputs), ("output", group.outputs)):
            for t in tensors:
                shape = "[" + ", ".join(map(str, t.shape)) + "]"
                lines.append(f"  {kind:<6} {t.name:<{width}}  {t.dtype:<8}  {shape}")
    return "\n".join(lines)
