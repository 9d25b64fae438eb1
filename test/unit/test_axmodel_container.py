from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from axc.axmodel import (
    AxModel,
    GroupSpec,
    TensorSpec,
    group_io,
    parse_axmodel,
    read_axmodel,
    to_proto,
    write_axmodel,
    write_axmodel_streamed,
)
from axc.errors import AxcError


def layer_group(k: int, tokens: int, history: int) -> GroupSpec:
    """A decoder-layer shape group with the runtime's I/O names (tiny sizes)."""
    kv, hidden = 16, 32
    return GroupSpec(
        name="decode" if k == 0 else f"prefill_{history}",
        inputs=[
            TensorSpec("K_cache", "bf16", (1, history, kv)),
            TensorSpec("V_cache", "bf16", (1, history, kv)),
            TensorSpec("indices", "uint32", (1, tokens)),
            TensorSpec("input", "bf16", (1, tokens, hidden)),
            TensorSpec("mask", "bf16", (1, tokens, history + tokens)),
        ],
        outputs=[
            TensorSpec("K_cache_out", "bf16", (1, tokens, kv)),
            TensorSpec("V_cache_out", "bf16", (1, tokens, kv)),
            TensorSpec("output", "bf16", (1, tokens, hidden)),
        ],
        commands=bytes(range(k, k + 40)),
    )


def make_model() -> AxModel:
    return AxModel(
        groups=[layer_group(0, 1, 63), layer_group(1, 8, 1), layer_group(2, 8, 16)],
        params=random.Random(1).randbytes(300),
        metadata={"chip": "AX650", "npu_mode": "NPU3", "build_options": json.dumps({"kv_cache_len": 63})},
    )


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "l0.axmodel"
    write_axmodel(path, make_model())
    return path


def test_round_trip_and_checker(written: Path) -> None:
    model = read_axmodel(written)
    assert model == make_model()
    onnx.checker.check_model(onnx.load(written), full_check=True)
    proto = onnx.load(written)
    assert (proto.ir_version, proto.producer_name) == (10, "axc")
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", 18), ("axc.npu", 1)}
    assert [n.name for n in proto.graph.node] == ["subgraph_npu_0", "subgraph_npu_1", "subgraph_npu_2"]
    assert [t.name for t in proto.graph.initializer] == [
        "npu_params", "subgraph_npu_0_b1_neu", "subgraph_npu_1_b1_neu", "subgraph_npu_2_b1_neu",
    ]
    assert list(proto.graph.node[1].input[-3:]) == ["mask_1", "subgraph_npu_1_b1_neu", "npu_params"]
    assert [vi.name for vi in proto.graph.output][:4] == ["K_cache_out", "V_cache_out", "output", "K_cache_out_1"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["axc.format_version"] == "1" and props["axc.group_count"] == "3"
    assert props["axc.sha256.npu_params"] == hashlib.sha256(make_model().params).hexdigest()
    assert group_io(model, 2) == (
        ("K_cache", "V_cache", "indices", "input", "mask"),
        ("K_cache_out", "V_cache_out", "output"),
    )
    with pytest.raises(AxcError, match="no shape group 3"):
        group_io(model, 3)


def test_re_emit_is_byte_identical(written: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.axmodel"
    write_axmodel(again, read_axmodel(written))
    assert again.read_bytes() == written.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.axmodel", "l0.axmodel"]  # no temporaries left


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: AxModel([], m.params, m.metadata), "at least one shape group"),
        (lambda m: AxModel(m.groups, m.params, {"npu_mode": "NPU1"}), "metadata lacks 'chip'"),
        (lambda m: AxModel(m.groups, m.params, {**m.metadata, "chip": "AX620E"}), "no npu_mode 'NPU3'"),
        (lambda m: AxModel(m.groups, m.params, {**m.metadata, "axc.x": "1"}), "reserved for the container"),
        (lambda m: AxModel(m.groups, m.params, {**m.metadata, "build_options": "[1]"}), "not a JSON object"),
        (
            lambda m: AxModel([GroupSpec("g", [TensorSpec("x", "bf17", (1,))], [], b"")], m.params, m.metadata),
            "unknown dtype 'bf17'",
        ),
        (
            lambda m: AxModel([GroupSpec("g", [TensorSpec("x", "bf16", (1,))] * 2, [], b"")], m.params, m.metadata),
            "already taken",
        ),
        (
            lambda m: AxModel([GroupSpec("g", [TensorSpec("x", "bf16", (-1,))], [], b"")], m.params, m.metadata),
            "non-negative",
        ),
        (lambda m: AxModel([GroupSpec("g", [], [], b"")], m.params, m.metadata), "no outputs"),
    ],
)
def test_write_refuses_bad_models(tmp_path: Path, change: Callable[[AxModel], AxModel], message: str) -> None:
    path = tmp_path / "bad.axmodel"
    with pytest.raises(AxcError, match=message):
        write_axmodel(path, change(make_model()))
    assert list(tmp_path.iterdir()) == []


def rewrite(path: Path, edit: Callable[[onnx.ModelProto], None]) -> Path:
    proto = onnx.load(path)
    edit(proto)
    path.write_bytes(proto.SerializeToString())
    return path


def set_prop(proto: onnx.ModelProto, key: str, value: str | None) -> None:
    props = {p.key: p.value for p in proto.metadata_props}
    if value is None:
        props.pop(key)
    else:
        props[key] = value
    onnx.helper.set_model_props(proto, props)


def flip_blob(proto: onnx.ModelProto) -> None:
    blob = bytearray(proto.graph.initializer[2].raw_data)
    blob[5] ^= 0xFF
    proto.graph.initializer[2].raw_data = bytes(blob)


def rename_output(proto: onnx.ModelProto) -> None:
    proto.graph.node[1].output[0] = proto.graph.output[3].name = "K_cache_out_9"


CORRUPTIONS: dict[str, tuple[Callable[[onnx.ModelProto], None], str]] = {
    "producer": (lambda p: setattr(p, "producer_name", "Pulsar2"), r"not an axc \.axmodel \(wrong magic/version"),
    "no version": (lambda p: set_prop(p, "axc.format_version", None), "wrong magic/version"),
    "future version": (lambda p: set_prop(p, "axc.format_version", "2"), "unsupported axc format version '2'"),
    "group count": (lambda p: set_prop(p, "axc.group_count", "2"), "axc.group_count '2' but 3 nodes"),
    "missing params": (lambda p: p.graph.initializer.pop(0), "missing initializer 'npu_params'"),
    "missing commands": (lambda p: p.graph.initializer.pop(3), "missing initializer 'subgraph_npu_2_b1_neu'"),
    "checksum": (flip_blob, "checksum mismatch for subgraph_npu_1_b1_neu"),
    "recorded checksum": (lambda p: set_prop(p, "axc.sha256.npu_params", "0" * 64), "checksum mismatch for npu_params"),
    "dropped input": (lambda p: p.graph.input.pop(6), "I/O 'V_cache_1' does not match"),
    "extra output": (lambda p: p.graph.output.append(p.graph.output[0]), "duplicate graph output 'K_cache_out'"),
    "wrong suffix": (rename_output, "group 1 I/O 'K_cache_out_9' does not match"),
    "dynamic dim": (
        lambda p: p.graph.input[0].type.tensor_type.shape.dim[1].__setattr__("dim_param", "n"),
        "no supported dtype or static shape",
    ),
    "node op": (lambda p: setattr(p.graph.node[0], "op_type", "Relu"), "node 0 is 'subgraph_npu_0'"),
    "unknown chip": (lambda p: set_prop(p, "chip", "AX999"), "unknown chip 'AX999'"),
    "deep build_options": (  # a fuzz finding: json.loads' RecursionError escaped
        lambda p: set_prop(p, "build_options", "[" * 100_000 + "]" * 100_000),
        "metadata 'build_options' nests arrays or objects too deeply",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_read_refuses_corrupt_files(written: Path, case: str) -> None:
    edit, message = CORRUPTIONS[case]
    with pytest.raises(AxcError, match=message) as error:
        read_axmodel(rewrite(written, edit))
    assert len(str(error.value).splitlines()) == 1 and str(error.value).startswith(str(written))


def test_read_refuses_missing_truncated_and_foreign_files(written: Path, tmp_path: Path) -> None:
    with pytest.raises(AxcError, match=r"^cannot read .*nope\.axmodel: No such file"):
        read_axmodel(tmp_path / "nope.axmodel")
    with pytest.raises(AxcError, match="cannot read"):
        read_axmodel(tmp_path)
    truncated = tmp_path / "t.axmodel"
    truncated.write_bytes(written.read_bytes()[:-7])
    with pytest.raises(AxcError, match="not an ONNX protobuf"):
        read_axmodel(truncated)
    empty = tmp_path / "e.axmodel"
    empty.write_bytes(b"")
    with pytest.raises(AxcError, match="wrong magic/version"):
        read_axmodel(empty)
    foreign = tmp_path / "f.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), foreign)
    with pytest.raises(AxcError, match="wrong magic/version: producer ''"):
        read_axmodel(foreign)


def test_fuzzed_files_read_or_fail_cleanly() -> None:
    """Byte flips, truncations, insertions and deletions never escape as anything but one AxcError line."""
    metadata = {"chip": "AX630C", "npu_mode": "NPU1"}
    small = AxModel([layer_group(0, 1, 3), layer_group(1, 2, 1)], b"\x01\x02\x03", metadata)
    good = to_proto(small).SerializeToString(deterministic=True)
    rng = random.Random(20240601)
    outcomes = {"read": 0, "not protobuf": 0, "refused later": 0}
    for _ in range(5000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            if not data:
                break
            at = rng.randrange(len(data))
            kind = rng.choices(["flip", "truncate", "insert", "delete"], weights=[5, 1, 2, 2])[0]
            if kind == "flip":
                data[at] ^= 1 << rng.randrange(8)
            elif kind == "truncate":
                del data[at:]
            elif kind == "insert":
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            else:
                del data[at : at + rng.randint(1, 8)]
        try:
            parse_axmodel(bytes(data), "fuzz.axmodel")
            outcomes["read"] += 1
        except AxcError as error:
            assert "\n" not in str(error) and "\r" not in str(error)
            outcomes["not protobuf" if "not an ONNX protobuf" in str(error) else "refused later"] += 1
    # The mutations must also reach the structural checks, not only the protobuf parser.
    assert outcomes["refused later"] > 500, outcomes


def test_streamed_writer_writes_the_same_bytes(tmp_path: Path, written: Path) -> None:
    model = make_model()
    pieces = [model.params[i : i + 7] for i in range(0, len(model.params), 7)]
    write_axmodel_streamed(tmp_path / "s.axmodel", AxModel(model.groups, b"", model.metadata), len(model.params), pieces)
    assert (tmp_path / "s.axmodel").read_bytes() == written.read_bytes()
    with pytest.raises(RuntimeError, match="299 bytes, 300 were announced"):
        write_axmodel_streamed(tmp_path / "t.axmodel", model, 300, [model.params[:299]])
    assert not (tmp_path / "t.axmodel").exists()


def test_reading_without_the_parameter_blob(tmp_path: Path, written: Path) -> None:
    model, lean = read_axmodel(written), read_axmodel(written, params=False)
    assert lean.params == b"" and lean.groups == model.groups and lean.metadata == model.metadata
    data = written.read_bytes()
    (tmp_path / "cut.axmodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(AxcError, match="truncated or corrupt"):
        read_axmodel(tmp_path / "cut.axmodel", params=False)
