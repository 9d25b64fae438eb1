"""`axc-run --info FILE.axmodel`: every group's inputs and outputs as the runtime sees them
(runtime names, numpy dtype names, shapes), for axc's files and for any ONNX-container
`.axmodel`, such as the vendor's (whose payload axc cannot read)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from axc.axmodel.info import describe
from test_cli_errors import assert_one_line_error, run_tool


def vendor_like(path: Path) -> None:
    """A two-group container laid out as the Pulsar2 docs describe (opaque `neu mode`
    nodes, suffixed names in later groups, UINT8 blobs we do not understand)."""
    def io(name: str, k: int, elem: int, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name if k == 0 else f"{name}_{k}", elem, shape)

    groups = [([1, 2047, 128], [1, 1, 2048], 1), ([1, 1, 896], [1, 128, 128], 128)]
    inputs, outputs, nodes = [], [], []
    for k, (cache, mask, tokens) in enumerate(groups):
        ins = [io("K_cache", k, TensorProto.BFLOAT16, cache), io("indices", k, TensorProto.UINT32, [1, tokens]),
               io("mask", k, TensorProto.BFLOAT16, mask)]
        outs = [io("K_cache_out", k, TensorProto.BFLOAT16, [1, tokens, 128]), io("output", k, TensorProto.BFLOAT16, [1, tokens, 896])]
        inputs += ins
        outputs += outs
        nodes.append(helper.make_node("neu mode", [v.name for v in ins] + [f"subgraph_npu_{k}_b1_neu", "npu_params"], [v.name for v in outs], name=f"subgraph_npu_{k}"))
    blobs = [helper.make_tensor(n, TensorProto.UINT8, [4], b"\x01\x02\x03\x04", raw=True) for n in ("npu_params", "npu_dyn_params", "subgraph_npu_0_b1_neu", "subgraph_npu_1_b1_neu")]
    model = helper.make_model(helper.make_graph(nodes, "pulsar2", inputs, outputs, blobs), producer_name="Pulsar2", producer_version="4.2")
    helper.set_model_props(model, {"extra_data": "c29tZXRoaW5n"})
    path.write_bytes(model.SerializeToString())


def test_info_of_a_vendor_container(tmp_path: Path) -> None:
    vendor_like(tmp_path / "qwen2_p128_l0_together.axmodel")
    info = describe(tmp_path / "qwen2_p128_l0_together.axmodel")
    assert info.producer == "Pulsar2" and len(info.groups) == 2
    assert [(t.name, t.dtype, t.shape) for t in info.groups[1].inputs] == [
        ("K_cache", "bfloat16", (1, 1, 896)), ("indices", "uint32", (1, 128)), ("mask", "bfloat16", (1, 128, 128))
    ]
    proc = run_tool("axc-run", "--info", tmp_path / "qwen2_p128_l0_together.axmodel", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("ONNX container by Pulsar2 4.2, 2 shape groups")
    assert "group 1 (neu mode, node subgraph_npu_1)" in lines
    assert any(line.split() == ["input", "mask", "bfloat16", "[1,", "128,", "128]"] for line in lines)
    assert not any("_1 " in line for line in lines)


def test_info_of_an_axc_file(runner_build: Path, tmp_path: Path) -> None:
    proc = run_tool("axc-run", "--info", runner_build / "qwen2_p128_l0_together.axmodel", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "ONNX container by axc" in text and "2 shape groups, AX650 NPU1" in text
    assert "group 0 (decode, node subgraph_npu_0)" in text and "group 1 (prefill_0, node subgraph_npu_1)" in text
    rows = [line.split(maxsplit=3) for line in text.splitlines() if line.startswith("  ")]
    assert [r[1] for r in rows] == ["K_cache", "V_cache", "indices", "input", "mask", "K_cache_out", "V_cache_out", "output"] * 2
    assert ["input", "K_cache", "bfloat16", "[1, 1, 128]"] in rows and ["input", "mask", "bfloat16", "[1, 128, 128]"] in rows


def test_info_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.axmodel").write_bytes(b"\xff\xff\xff\xff")
    assert_one_line_error(run_tool("axc-run", "--info", tmp_path / "junk.axmodel", cwd=tmp_path), "axc-run", "not an ONNX protobuf")
    assert_one_line_error(run_tool("axc-run", "--info", tmp_path / "none.axmodel", cwd=tmp_path), "axc-run", "cannot read")
