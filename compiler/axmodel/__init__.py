"""The `.axmodel` container (an ONNX protobuf); the command-stream encoding lives elsewhere."""

from __future__ import annotations

from axc.axmodel.container import (
    DTYPES,
    FORMAT_VERSION,
    AxModel,
    GroupSpec,
    TensorSpec,
    command_name,
    from_proto,
    graph_name,
    group_io,
    node_name,
    parse_axmodel,
    read_axmodel,
    to_proto,
    write_axmodel,
    write_axmodel_streamed,
)

__all__ = [
    "DTYPES",
    "FORMAT_VERSION",
    "AxModel",
    "GroupSpec",
    "TensorSpec",
    "command_name",
    "from_proto",
    "graph_name",
    "group_io",
    "node_name",
    "parse_axmodel",
    "read_axmodel",
    "to_proto",
    "write_axmodel",
    "write_axmodel_streamed",
]
