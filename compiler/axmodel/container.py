"""The `.axmodel` container: an ONNX protobuf with one opaque node per shape group.

The layout (names, initializers, metadata keys) is documented in docs/axmodel-format.md;
the command-stream encoding inside the blobs is not this module's business.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from onnx import TensorProto

import axc
from axc.errors import AxcError
from axc.targets import get_target
from axc.atomic import atomic_output

V = TypeVar("V")

FORMAT_VERSION = "1"
PRODUCER = "axc"
IR_VERSION = 10
OPSET = 18
DOMAIN = "axc.npu"
DOMAIN_VERSION = 1
OP_TYPE = "NpuSubgraph"
PARAMS = "npu_params"
GROUP_ATTR = "group"

FORMAT_KEY = "axc.format_version"
GROUP_COUNT_KEY = "axc.group_count"
CHECKSUM_PREFIX = "axc.sha256."
RESERVED_PREFIX = "axc."
REQUIRED_METADATA = ("chip", "npu_mode")

# Protobuf refuses messages of 2 GiB or more; leave room for the graph around the blobs.
MAX_BLOB_BYTES = (1 << 31) - (1 << 20)

DTYPES: dict[str, int] = {
    "bf16": TensorProto.BFLOAT16,
    "fp16": TensorProto.FLOAT16,
    "fp32": TensorProto.FLOAT,
    "fp64": TensorProto.DOUBLE,
    "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8,
    "int16": TensorProto.INT16,
    "uint16": TensorProto.UINT16,
    "int32": TensorProto.INT32,
    "uint32": TensorProto.UINT32,
    "int64": TensorProto.INT64,
    "uint64": TensorProto.UINT64,
    "bool": TensorProto.BOOL,
}
_DTYPE_NAMES = {code: name for name, code in DTYPES.items()}


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output of one shape group (plain name, without the group suffix)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))


@dataclass(frozen=True)
class GroupSpec:
    """One shape group: its I/O and its command stream."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    commands: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))


@dataclass(frozen=True)
class AxModel:
    """A whole file: shape groups sharing one parameter blob, and user metadata.

    `metadata` needs `chip` and `npu_mode`; `build_options`, when present, is a JSON object.
    Keys starting with `axc.` belong to the container and are computed on write.
    """

    groups: tuple[GroupSpec, ...]
    params: bytes
    metadata: dict[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))


def node_name(k: int) -> str:
    return f"subgraph_npu_{k}"


def command_name(k: int) -> str:
    return f"subgraph_npu_{k}_b1_neu"


def graph_name(name: str, k: int) -> str:
    """The in-file name of group `k`'s tensor `name`: later groups get a `_<k>` suffix."""
    return name if k == 0 else f"{name}_{k}"


def plain_name(name: str, k: int) -> str | None:
    """The runtime's name of group `k`'s in-file tensor `name` (the `_<k>` suffix removed);
    None when `name` lacks the suffix."""
    suffix = f"_{k}" if k else ""
    if not name.endswith(suffix) or name == suffix:
        return None
    return name[: len(name) - len(suffix)]


def group_io(model: AxModel, k: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plain (unsuffixed) input and output names of group `k`."""
    if not 0 <= k < len(model.groups):
        raise AxcError(f"no shape group {k} (the model has {len(model.groups)}); pass 0..{len(model.groups) - 1}")
    group = model.groups[k]
    return tuple(t.name for t in group.inputs), tuple(t.name for t in group.outputs)


def _check(model: AxModel, where: str, params_size: int | None = None) -> None:
    """Refuse a model whose file would be invalid or would not read back equal
    (`params_size`: the blob's size when it is streamed rather than in `model.params`)."""
    if not model.groups:
        raise AxcError(f"{where}: an .axmodel needs at least one shape group")
    for key in REQUIRED_METADATA:
        if key not in model.metadata:
            raise AxcError(f"{where}: metadata lacks {key!r}; set chip and npu_mode")
    try:
        get_target(model.metadata["chip"], model.metadata["npu_mode"])
    except AxcError as error:
        raise AxcError(f"{where}: {error}") from None
    for key, value in model.metadata.items():
        if key.startswith(RESERVED_PREFIX):
            raise AxcError(f"{where}: metadata key {key!r} is reserved for the container; rename it")
        if not isinstance(value, str):
            raise AxcError(f"{where}: metadata {key!r} is not a string; encode it (e.g. as JSON)")
    if "build_options" in model.metadata:
        try:
            options = json.loads(model.metadata["build_options"])
        except ValueError:
            options = None
        except RecursionError:
            raise AxcError(f"{where}: metadata 'build_options' nests arrays or objects too deeply; write it with json.dumps") from None
        if not isinstance(options, dict):
            raise AxcError(f"{where}: metadata 'build_options' is not a JSON object; write it with json.dumps")
    total = (len(model.params) if params_size is None else params_size) + sum(len(g.commands) for g in model.groups)
    if total > MAX_BLOB_BYTES:
        raise AxcError(f"{where}: blobs total {total} bytes, over the 2 GiB protobuf limit; split the model")
    reserved = {PARAMS, *(command_name(k) for k in range(len(model.groups)))}
    seen: set[str] = set()
    for k, group in enumerate(model.groups):
        for spec in (*group.inputs, *group.outputs):
            what = f"{where}: group {k} tensor {spec.name!r}"
            if not spec.name:
                raise AxcError(f"{where}: group {k} has a tensor without a name; name it")
            if spec.dtype not in DTYPES:
                raise AxcError(f"{what} has unknown dtype {spec.dtype!r} (valid: {', '.join(DTYPES)})")
            if any(not isinstance(d, int) or d < 0 for d in spec.shape):
                raise AxcError(f"{what} has shape {spec.shape}; dims must be non-negative integers")
            name = graph_name(spec.name, k)
            if name in seen or name in reserved:
                raise AxcError(f"{what} is named {name!r} in the file, which is already taken; rename it")
            seen.add(name)
        if not group.outputs:
            raise AxcError(f"{where}: group {k} has no outputs; every group needs one")


def _value_info(spec: TensorSpec, k: int) -> onnx.ValueInfoProto:
    return onnx.helper.make_tensor_value_info(graph_name(spec.name, k), DTYPES[spec.dtype], spec.shape)


def _skeleton(model: AxModel, where: str, params_size: int) -> onnx.ModelProto:
    """The ONNX model of `model` (validated) without the parameter blob's bytes and without
    the metadata properties (they hold its checksum)."""
    _check(model, where, params_size)
    proto = onnx.ModelProto(
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=axc.__version__,
        doc_string=f"axc {axc.__version__} .axmodel, container format {FORMAT_VERSION} (docs/axmodel-format.md)",
    )
    proto.opset_import.extend(
        [onnx.helper.make_opsetid("", OPSET), onnx.helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    )
    graph = proto.graph
    graph.name = "axc"
    sizes = [(PARAMS, params_size), *((command_name(k), len(g.commands)) for k, g in enumerate(model.groups))]
    for (name, size), blob in zip(sizes, (None, *(g.commands for g in model.groups))):
        tensor = graph.initializer.add()
        tensor.name = name
        tensor.data_type = TensorProto.UINT8
        tensor.dims.append(size)
        if blob is not None:
            tensor.raw_data = blob
    for k, group in enumerate(model.groups):
        inputs = [_value_info(spec, k) for spec in group.inputs]
        outputs = [_value_info(spec, k) for spec in group.outputs]
        graph.input.extend(inputs)
        graph.output.extend(outputs)
        graph.node.append(
            onnx.helper.make_node(
                OP_TYPE,
                [vi.name for vi in inputs] + [command_name(k), PARAMS],
                [vi.name for vi in outputs],
                name=node_name(k),
                domain=DOMAIN,
                **{GROUP_ATTR: group.name},
            )
        )
    return proto


def _set_props(proto: onnx.ModelProto, model: AxModel, params_sha256: str) -> None:
    digests = [(PARAMS, params_sha256), *((command_name(k), hashlib.sha256(g.commands).hexdigest()) for k, g in enumerate(model.groups))]
    props = {
        FORMAT_KEY: FORMAT_VERSION,
        GROUP_COUNT_KEY: str(len(model.groups)),
        **{CHECKSUM_PREFIX + name: digest for name, digest in digests},
        **dict(sorted(model.metadata.items())),
    }
    onnx.helper.set_model_props(proto, props)


def to_proto(model: AxModel, where: str = "axmodel") -> onnx.ModelProto:
    """The ONNX model of `model` (validated; see docs/axmodel-format.md)."""
    proto = _skeleton(model, where, len(model.params))
    proto.graph.initializer[0].raw_data = model.params
    _set_props(proto, model, hashlib.sha256(model.params).hexdigest())
    return proto


def write_axmodel(path: str | Path, model: AxModel) -> None:
    """Write `model` to `path` atomically; the same model always gives the same bytes."""
    data = to_proto(model, str(path)).SerializeToString(deterministic=True)
    with atomic_output(path, "wb") as stream:
        stream.write(data)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, size: int) -> bytes:
    """Key and length of a length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(size)


GRAPH_FIELD, INITIALIZER_FIELD, RAW_DATA_FIELD = 7, 5, 9
"""onnx.proto field numbers: ModelProto.graph, GraphProto.initializer, TensorProto.raw_data."""


def write_axmodel_streamed(
    path: str | Path, model: AxModel, params_size: int, params: Iterable[bytes | memoryview]
) -> None:
    """Write `model` with the parameter blob `params` (`params_size` bytes in pieces; `model.params`
    is not used) atomically, holding one piece at a time: the bytes of `write_axmodel` of the
    model with that blob.

    Protobuf serializes fields in field-number order, so the file is the model's fields
    before `graph`, the graph (its nodes and name, the blob's initializer with `raw_data`
    last, the other initializers, inputs and outputs), then the opset imports and the
    metadata properties, which hold the blob's sha256 and so are encoded after it.
    """
    proto = _skeleton(model, str(path), params_size)
    graph, tensor = proto.graph, proto.graph.initializer[0]
    head = onnx.ModelProto()
    head.CopyFrom(proto)
    for name in ("graph", "opset_import", "metadata_props"):
        head.ClearField(name)
    graph_head = onnx.GraphProto(node=graph.node, name=graph.name)
    graph_tail = onnx.GraphProto(initializer=graph.initializer[1:], input=graph.input, output=graph.output)
    tensor_head = tensor.SerializeToString(deterministic=True) + _field(RAW_DATA_FIELD, params_size)
    entry = _field(INITIALIZER_FIELD, len(tensor_head) + params_size) + tensor_head
    pieces = [graph_head.SerializeToString(deterministic=True), graph_tail.SerializeToString(deterministic=True)]
    graph_size = len(pieces[0]) + len(entry) + params_size + len(pieces[1])
    digest, written = hashlib.sha256(), 0
    with atomic_output(path, "wb") as stream:
        stream.write(head.SerializeToString(deterministic=True) + _field(GRAPH_FIELD, graph_size) + pieces[0] + entry)
        for piece in params:
            stream.write(piece)
            digest.update(piece)
            written += len(piece)
        if written != params_size:
            raise RuntimeError(f"{path}: the parameter blob has {written} bytes, {params_size} were announced")
        stream.write(pieces[1])
        tail = onnx.ModelProto(opset_import=proto.opset_import)
        _set_props(tail, model, digest.hexdigest())
        stream.write(tail.SerializeToString(deterministic=True))


def read_axmodel(path: str | Path, params: bool = True) -> AxModel:
    """Read and verify an axc `.axmodel`; any defect is one AxcError line.

    `params=False` leaves the parameter blob in the file: `AxModel.params` is empty and its
    checksum is not checked (what a reader of the command streams alone needs, in memory
    of their size rather than the file's).
    """
    try:
        data = Path(path).read_bytes() if params else _without_params(Path(path))
    except OSError as error:
        raise AxcError(f"cannot read {path}: {error.strerror or error}; check the path") from None
    except EOFError:
        raise AxcError(f"{path}: not an ONNX protobuf (truncated or corrupt); rebuild the .axmodel") from None
    return parse_axmodel(data, str(path), params)


def _read_varint(stream: IO[bytes]) -> tuple[int, bytes]:
    raw = bytearray()
    while True:
        byte = stream.read(1)
        if not byte or len(raw) > 9:
            raise EOFError
        raw += byte
        if not byte[0] & 0x80:
            return sum((b & 0x7F) << (7 * i) for i, b in enumerate(raw)), bytes(raw)


def _field_value(stream: IO[bytes], wire: int) -> bytes:
    """The encoded value of a field whose key was just read (varint, fixed or length-delimited)."""
    if wire == 0:
        return _read_varint(stream)[1]
    size, raw = {1: (8, b""), 5: (4, b"")}.get(wire, (None, b""))
    if size is None:
        if wire != 2:
            raise EOFError
        size, raw = _read_varint(stream)
    value = stream.read(size)
    if len(value) != size:
        raise EOFError
    return raw + value


FieldHandler = Callable[[int, bytearray], "bytes | None"]
"""Given a field's key (just read) and the fields re-encoded so far: the field re-encoded,
or None to copy it as it is."""


def _message(stream: IO[bytes], end: int, handle: FieldHandler) -> bytearray:
    """The fields of the message that ends at `end`, re-encoded by `handle` where it says so."""
    out = bytearray()
    while stream.tell() < end:
        key, raw_key = _read_varint(stream)
        own = handle(key, out)
        out += own if own is not None else raw_key + _field_value(stream, key & 7)
    return out


def _without_params(path: Path) -> bytes:
    """The file's bytes with the parameter blob's `raw_data` left out (and the lengths around it fixed)."""
    with path.open("rb") as stream:

        def blob(key: int, fields: bytearray) -> bytes | None:
            if key != (RAW_DATA_FIELD << 3 | 2) or TensorProto.FromString(bytes(fields)).name != PARAMS:
                return None
            stream.seek(_read_varint(stream)[0], os.SEEK_CUR)
            return b""

        def nested(number: int, inner: FieldHandler) -> FieldHandler:
            def handle(key: int, _fields: bytearray) -> bytes | None:
                if key != (number << 3 | 2):
                    return None
                body = _message(stream, stream.tell() + _read_varint(stream)[0], inner)
                return _field(number, len(body)) + body

            return handle

        size = os.fstat(stream.fileno()).st_size
        return bytes(_message(stream, size, nested(GRAPH_FIELD, nested(INITIALIZER_FIELD, blob))))


def parse_axmodel(data: bytes, where: str = "axmodel", params: bool = True) -> AxModel:
    """The AxModel in the bytes of an `.axmodel` file; `where` names it in errors
    (`params=False`: bytes without the parameter blob, see `read_axmodel`)."""
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        raise AxcError(f"{where}: not an ONNX protobuf (truncated or corrupt); rebuild the .axmodel") from None
    return from_proto(proto, where, params)


def from_proto(proto: onnx.ModelProto, where: str = "axmodel", params: bool = True) -> AxModel:
    """The AxModel stored in `proto`, after checking every structural rule and checksum
    (`params=False`: of everything but the parameter blob, which `proto` lacks)."""
    if not _is_text(proto):
        raise _corrupt(where, "a text field is not UTF-8")
    try:
        return _decode(proto, where, params)
    except UnicodeDecodeError:  # a group name attribute (bytes) that is not UTF-8
        raise _corrupt(where, "a text field is not UTF-8") from None


def _is_text(message: Message) -> bool:
    """Whether every string field is UTF-8: protobuf parses bad proto2 strings and hands them out as bytes.

    Walks the descriptor rather than ListFields() so that blobs (bytes fields) are not copied.
    """
    for field in message.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            value = getattr(message, field.name)
            if not all(isinstance(text, str) for text in (value if field.is_repeated else [value])):
                return False
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                children = getattr(message, field.name)
            else:
                children = [getattr(message, field.name)] if message.HasField(field.name) else []
            if not all(_is_text(child) for child in children):
                return False
    return True


def _corrupt(where: str, what: str) -> AxcError:
    return AxcError(f"{where}: corrupt ({what}); rebuild the .axmodel")


def _mismatch(where: str, what: str) -> AxcError:
    return AxcError(f"{where}: {what} does not match the graph's inputs and outputs; rebuild the .axmodel")


def _short(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def _unique(where: str, what: str, pairs: list[tuple[str, V]]) -> dict[str, V]:
    result: dict[str, V] = {}
    for key, value in pairs:
        if key in result:
            raise _corrupt(where, f"duplicate {what} {_short(key)}")
        result[key] = value
    return result


def _decode(proto: onnx.ModelProto, where: str, params: bool = True) -> AxModel:
    props = _unique(where, "metadata key", [(p.key, p.value) for p in proto.metadata_props])
    if proto.producer_name != PRODUCER or FORMAT_KEY not in props:
        raise AxcError(
            f"{where}: not an axc .axmodel (wrong magic/version: producer {_short(proto.producer_name)}); "
            "axc reads only files it wrote"
        )
    if props[FORMAT_KEY] != FORMAT_VERSION:
        raise AxcError(
            f"{where}: unsupported axc format version {_short(props[FORMAT_KEY])} (this axc reads "
            f"{FORMAT_VERSION}); rebuild it with this axc"
        )
    opsets = {o.domain: o.version for o in proto.opset_import}
    if opsets.get(DOMAIN) != DOMAIN_VERSION:
        raise _corrupt(where, f"opset import {DOMAIN} {DOMAIN_VERSION} missing")
    count_text = props.get(GROUP_COUNT_KEY, "")
    if not (count_text.isdecimal() and len(count_text) < 10 and 0 < int(count_text) == len(proto.graph.node)):
        raise _corrupt(where, f"{GROUP_COUNT_KEY} {_short(count_text)} but {len(proto.graph.node)} nodes")
    count = int(count_text)
    blobs, params_size = _blobs(proto, props, count, where, params)
    graph_inputs = _unique(where, "graph input", [(vi.name, vi) for vi in proto.graph.input])
    graph_outputs = _unique(where, "graph output", [(vi.name, vi) for vi in proto.graph.output])
    groups = []
    for k, node in enumerate(proto.graph.node):
        if (node.name, node.op_type, node.domain) != (node_name(k), OP_TYPE, DOMAIN):
            op = _short(f"{node.domain}.{node.op_type}")
            raise _corrupt(where, f"node {k} is {_short(node.name)} of op {op}, not {node_name(k)} of {DOMAIN}.{OP_TYPE}")
        if list(node.input[-2:]) != [command_name(k), PARAMS]:
            raise _corrupt(where, f"node {node_name(k)} does not take {command_name(k)} and {PARAMS}")
        names = [a.s.decode() for a in node.attribute if (a.name, a.type) == (GROUP_ATTR, onnx.AttributeProto.STRING)]
        if len(names) != 1:
            raise _corrupt(where, f"node {node_name(k)} lacks its {GROUP_ATTR!r} name")
        inputs = tuple(_spec(graph_inputs, name, k, where) for name in node.input[:-2])
        outputs = tuple(_spec(graph_outputs, name, k, where) for name in node.output)
        groups.append(GroupSpec(names[0], inputs, outputs, blobs[command_name(k)]))
    used_inputs = [name for node in proto.graph.node for name in node.input[:-2]]
    used_outputs = [name for node in proto.graph.node for name in node.output]
    if used_inputs != list(graph_inputs) or used_outputs != list(graph_outputs):
        raise _mismatch(where, "the groups' I/O")
    metadata = {key: value for key, value in props.items() if not key.startswith(RESERVED_PREFIX)}
    model = AxModel(tuple(groups), blobs[PARAMS], metadata)
    _check(model, where, params_size)
    return model


def _blobs(
    proto: onnx.ModelProto, props: dict[str, str], count: int, where: str, params: bool = True
) -> tuple[dict[str, bytes], int]:
    """The UINT8 initializers by name, each checked against its recorded sha256, and the
    parameter blob's size (`params=False`: that blob is absent, empty in the result)."""
    tensors = _unique(where, "initializer", [(t.name, t) for t in proto.graph.initializer])
    wanted = [PARAMS, *(command_name(k) for k in range(count))]
    extra = sorted(set(tensors) - set(wanted))
    if extra:
        raise _corrupt(where, f"unexpected initializer {_short(extra[0])}")
    blobs: dict[str, bytes] = {}
    for name in wanted:
        tensor = tensors.get(name)
        if tensor is None:
            raise AxcError(f"{where}: missing initializer {name!r}; the file is incomplete, rebuild it")
        blob = tensor.raw_data
        left_out = name == PARAMS and not params
        if (
            tensor.data_type != TensorProto.UINT8
            or len(tensor.dims) != 1
            or (not left_out and tensor.dims[0] != len(blob))
            or tensor.data_location == TensorProto.EXTERNAL
            or (left_out and blob)
        ):
            raise _corrupt(where, f"initializer {name!r} is not a UINT8 blob of its stated size")
        if left_out:
            blobs[name] = b""
            continue
        recorded = props.get(CHECKSUM_PREFIX + name)
        actual = hashlib.sha256(blob).hexdigest()
        if recorded != actual:
            raise AxcError(
                f"{where}: checksum mismatch for {name} (sha256 {actual[:16]}..., recorded "
                f"{_short(recorded or '')}); the file is corrupt, rebuild it"
            )
        blobs[name] = blob
    return blobs, tensors[PARAMS].dims[0]


def _spec(values: dict[str, onnx.ValueInfoProto], name: str, k: int, where: str) -> TensorSpec:
    """The TensorSpec of group `k`'s graph value `name`, with the group suffix removed."""
    value = values.get(name)
    plain = plain_name(name, k)
    if value is None or plain is None:
        raise _mismatch(where, f"group {k} I/O {_short(name)}")
    tensor = value.type.tensor_type
    dtype = _DTYPE_NAMES.get(tensor.elem_type)
    dims = tensor.shape.dim
    static = all(d.HasField("dim_value") for d in dims)
    if not value.type.HasField("tensor_type") or dtype is None or not static:
        raise _corrupt(where, f"group {k} tensor {_short(name)} has no supported dtype or static shape")
    return TensorSpec(plain, dtype, tuple(d.dim_value for d in dims))
