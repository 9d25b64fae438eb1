"""Corrupt `.axmodel` files: the reader refuses each defect with one line and exit code 1,
and `axc-fuzz`'s mutations of a small valid file (container, metadata, command stream and
parameter blob, with and without recomputed checksums) never get an uncaught exception or
a hang from the in-process simulator API."""

from __future__ import annotations

import dataclasses
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest

from axc.axmodel import AxModel, parse_axmodel, read_axmodel, to_proto, write_axmodel
from axc.binding import store_for
from axc import isa
from axc.isa import encoding
from axc.codegen.emit import find_model, to_axmodel
from axc.errors import AxcError
from axc.params import ParamStore
from axc.sim.session import AxModelSession
from axc.textio import parse_module
from axc.tools.axc_fuzz import edit_axmodel

PROGRAM = """
builtin.module attributes {axc.scopes = {w = "PARAMS"}} {
  ax650.model @tiny {chip = "AX650", npu_mode = "NPU1"} {
    ax650.segment <"w"::"norm"> at 0 : tensor<64xf32>
    ax650.segment <"w"::"w"> at 256 : tensor<64x64xi8>
    ax650.segment <"w"::"s"> at 4352 : tensor<64xf16>
    ax650.group "decode" (input : tensor<1x1x64xbf16>) -> (output : tensor<1x1x64xbf16>) scratch 0 {
      ax650.dma_load c0.dma0 signal 0 src = in0[0 : 1x64 : 128x2] : bf16, dst = ocm[0 : 1x64 : 128x2] : bf16
      ax650.dma_load c0.dma1 signal 1 src = params[0 : 64 : 4] : f32, dst = ocm[256 : 64 : 4] : f32
      ax650.rms_norm c0.vx wait [0, 1] signal 2 input = ocm[0 : 1x64 : 128x2] : bf16, weight = ocm[256 : 64 : 4] : f32, out = ocm[512 : 1x64 : 128x2] : bf16 {eps = 1.0e-06 : f64}
      ax650.loop l0 = 0 to 2 {
        ax650.dma_load c0.dma0 wait [3] signal 4 src = params[256 + 2048 * l0 : 32x64 : 64x1] : i8, dst = ocm[1024 : 32x64 : 64x1] : i8
        ax650.dma_load c0.dma1 wait [3] signal 5 src = params[4352 + 64 * l0 : 32x1 : 2x2] : f16, dst = ocm[3072 : 32x1 : 2x2] : f16
        ax650.matmul c0.mx wait [2, 4, 5] signal 3 lhs = ocm[512 : 1x64 : 128x2] : bf16, rhs = ocm[1024 : 32x64 : 64x1] : i8, scales = ocm[3072 : 32x1 : 2x2] : f16, out = ocm[4096 + 64 * l0 : 1x32 : 128x2] : bf16 {format = "s8", transpose_b}
      }
      ax650.dma_store c0.dma3 wait [3] src = ocm[4096 : 1x64 : 128x2] : bf16, dst = out0[0 : 1x64 : 128x2] : bf16
    }
  }
}
"""


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "norm": rng.uniform(0.5, 1.5, 64).astype(np.float32),
        "w": rng.integers(-127, 128, (64, 64)).astype(np.int8),
        "s": (rng.uniform(0.5, 1.5, 64) / 127).astype(np.float16),
    }


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[Path, AxModel]:
    directory = tmp_path_factory.mktemp("axmodel")
    store = ParamStore()
    for key, array in weights().items():
        store.add("w", key, array)
    params = store.save(directory / "w.safetensors", "w")
    module = parse_module(PROGRAM.replace("PARAMS", str(params)))
    path = directory / "tiny.axmodel"
    write_axmodel(path, to_axmodel(find_model(module), store_for(module)))
    return path, read_axmodel(path)


def test_the_small_file_computes_what_it_says(valid) -> None:
    path, _ = valid
    x = np.random.default_rng(1).standard_normal((1, 1, 64)).astype(np.float32)
    out = AxModelSession(path).run(0, {"input": x})["output"]
    w = weights()
    xb = x.astype(ml_dtypes.bfloat16).astype(np.float32)[0]
    h = (xb / np.sqrt(np.mean(xb * xb, -1, keepdims=True) + 1e-6) * w["norm"]).astype(ml_dtypes.bfloat16).astype(np.float32)
    expected = (h @ (w["w"].astype(np.float32) * w["s"].astype(np.float32)[:, None]).T).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(out[0], expected.astype(np.float32))
    onnx.checker.check_model(onnx.load(str(path)))


def with_commands(model: AxModel, commands: bytes) -> AxModel:
    return dataclasses.replace(model, groups=(dataclasses.replace(model.groups[0], commands=commands),))


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    raw = bytearray(data)
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


def record(index: int) -> int:
    return encoding.HEADER.size + index * encoding.RECORD_SIZE


def corrupt_files(model: AxModel, data: bytes) -> dict[str, tuple[bytes, str]]:
    """name → (file bytes, expected message fragment)."""
    commands = model.groups[0].commands

    def rewritten(new_commands: bytes) -> bytes:
        return to_proto(with_commands(model, new_commands)).SerializeToString(deterministic=True)

    operand0 = record(0) + encoding.RECORD_HEAD.size + 8 * isa.IMM_SLOTS
    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    for tensor in proto.graph.initializer:
        if tensor.name == "subgraph_npu_0_b1_neu":
            tensor.raw_data = patch(tensor.raw_data, record(2) + 1, "B", 5)  # a changed byte, old checksum
    bad_checksum = proto.SerializeToString(deterministic=True)
    wrong_producer = onnx.ModelProto()
    wrong_producer.ParseFromString(data)
    wrong_producer.producer_name = "Pulsar2"
    return {
        "truncated": (data[: len(data) // 2], "truncated or corrupt"),
        "magic": (rewritten(b"XXXX" + commands[4:]), "wrong magic"),
        "version": (rewritten(patch(commands, 4, "<H", 9)), "command stream version 9"),
        "checksum": (bad_checksum, "checksum mismatch"),
        "address": (rewritten(patch(commands, operand0 + 4, "<I", 1 << 30)), "out-of-range address"),
        "opcode": (rewritten(patch(commands, record(2), "B", 0x77)), "unknown opcode 0x77"),
        "truncated stream": (rewritten(commands[:-100]), "truncated"),
        "container": (wrong_producer.SerializeToString(), "wrong magic/version"),
        "params": (
            to_proto(dataclasses.replace(model, params=b"AXCP" + model.params[4:-64])).SerializeToString(deterministic=True),
            "parameter blob is corrupt",
        ),
    }


def test_corrupt_files_are_one_line_errors(valid, tmp_path) -> None:
    path, model = valid
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 64), np.float32))
    tools = Path(sys.executable).parent
    for name, (data, message) in corrupt_files(model, path.read_bytes()).items():
        with pytest.raises(AxcError, match=message):
            AxModelSession(parse_axmodel(data, name))
    cases = list(corrupt_files(model, path.read_bytes()).items())
    for name, (data, message) in cases[:6]:
        file = tmp_path / "bad.axmodel"
        file.write_bytes(data)
        run = subprocess.run(
            [str(tools / "axc-run"), str(file), "--group", "0", "--input", "input=x.npy", "--output-dir", "out"],
            capture_output=True, text=True, cwd=tmp_path,
        )
        assert run.returncode == 1, name
        assert run.stderr.startswith("axc-run: error: ") and run.stderr.count("\n") == 1, (name, run.stderr)
        assert message in run.stderr, (name, run.stderr)
    disasm = subprocess.run(
        [str(tools / "axc-translate"), "--import-axmodel", str(file), "-o", str(tmp_path / "x.mlir")],
        capture_output=True, text=True,
    )
    assert disasm.returncode == 1 and disasm.stderr.count("\n") == 1 and not (tmp_path / "x.mlir").exists()


def test_fuzz_never_crashes_or_hangs(valid) -> None:
    path, _ = valid
    data = path.read_bytes()
    x = np.random.default_rng(1).standard_normal((1, 1, 64)).astype(np.float32)
    outcomes = {"refused": 0, "ran": 0}
    slowest = 0.0
    for trial in range(1200):
        blob = edit_axmodel(data, random.Random(trial))  # the mutations of axc-fuzz's .axmodel readers
        start = time.perf_counter()
        try:
            session = AxModelSession(parse_axmodel(blob, "fuzz"))
            with np.errstate(all="ignore"):  # mutated weights may well be NaN
                session.run(0, {"input": x})
            outcomes["ran"] += 1
        except AxcError as error:
            assert "\n" not in str(error)
            outcomes["refused"] += 1
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 5.0, f"a mutation took {slowest:.1f} s"
    print(outcomes)
    assert outcomes["refused"] > 600 and outcomes["ran"] > 50, outcomes
