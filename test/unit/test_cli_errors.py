"""Bad input to the console scripts: one line on stderr, exit code 1, no output file.

Every case runs the real installed scripts (`axc-translate`, `axc-opt`, `axc-run` beside
this interpreter) as a subprocess, on broken copies of test/fixtures/tiny-qwen2.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from xdsl.parser import Parser

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny-qwen2"
BIN = Path(sys.executable).parent
GROUPS = "specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=8,16}"


def run_tool(tool: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], tool: str, *fragments: str) -> str:
    """Exit code 1 and exactly one stderr line `tool: error: ...` containing `fragments`."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr}"
    assert lines[0].startswith(f"{tool}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def assert_no_output(directory: Path, name: str = "out.mlir") -> None:
    """No output file and no temporary left beside it."""
    assert not (directory / name).exists()
    assert not [p.name for p in directory.iterdir() if p.name.startswith(f".{name}.")]


# --- safetensors without torch: header + raw bytes, so tests can edit headers ---------


def read_safetensors(path: Path) -> tuple[dict[str, tuple[str, list[int], bytes]], dict[str, str]]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    base = 8 + size
    tensors = {
        key: (info["dtype"], info["shape"], data[base + info["data_offsets"][0] : base + info["data_offsets"][1]])
        for key, info in header.items()
    }
    return tensors, metadata


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str]) -> None:
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(raw for _, _, raw in tensors.values()))


def edit_tensors(model: Path, edit: Callable[[dict[str, tuple[str, list[int], bytes]]], None]) -> None:
    path = model / "model.safetensors"
    tensors, metadata = read_safetensors(path)
    edit(tensors)
    write_safetensors(path, tensors, metadata)


def edit_config(model: Path, edit: Callable[[dict[str, object]], None]) -> None:
    path = model / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config, indent=2))


# --- axc-translate --import-hf -----------------------------------------------------------


def missing_config(model: Path) -> None:
    (model / "config.json").unlink()


def malformed_config(model: Path) -> None:
    (model / "config.json").write_text('{"model_type": "qwen2", "hidden_size": 16,\n')


def deeply_nested_config(model: Path) -> None:  # found by axc-fuzz: a RecursionError traceback
    (model / "config.json").write_text('{"model_type": ' + "[" * 100_000 + "]" * 100_000 + "}")


def huge_layer_count(model: Path) -> None:  # found by axc-fuzz: a hang listing 2**31 layers' tensors
    edit_config(model, lambda c: c.update(num_hidden_layers=2**31))


def unknown_model_type(model: Path) -> None:
    edit_config(model, lambda c: c.update(model_type="gpt2"))


def missing_tensor(model: Path) -> None:
    edit_tensors(model, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))


def shrink_gate_proj(tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    key = "model.layers.0.mlp.gate_proj.weight"
    dtype, (rows, cols), raw = tensors[key]
    tensors[key] = (dtype, [24, cols], raw[: 24 * cols * 2])


def header_shape_mismatch(model: Path) -> None:
    edit_tensors(model, shrink_gate_proj)


def truncated_safetensors(model: Path) -> None:
    path = model / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def corrupt_header(model: Path) -> None:
    path = model / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:20] = b"#garbage#!!!"
    path.write_bytes(bytes(data))


def _bin_with(model: Path, extra: dict[str, object]) -> None:
    import torch
    from safetensors.torch import load_file

    state: dict[str, object] = dict(load_file(model / "model.safetensors"))
    (model / "model.safetensors").unlink()
    torch.save({**state, **extra}, model / "pytorch_model.bin")


def bin_with_python_object(model: Path) -> None:
    import argparse

    _bin_with(model, {"training_args": argparse.Namespace(lr=1e-3)})


def bin_with_string(model: Path) -> None:
    _bin_with(model, {"note": "not a tensor"})


def bin_with_int_key(model: Path) -> None:  # found by axc-fuzz: an AttributeError traceback
    import torch

    _bin_with(model, {7: torch.zeros(2)})


IMPORT_CASES = {
    "missing-config": (missing_config, ("no config.json",)),
    "malformed-config": (malformed_config, ("malformed JSON", "config.json", "line 2")),
    "deeply-nested-config": (deeply_nested_config, ("config.json", "nests arrays or objects too deeply")),
    "huge-layer-count": (huge_layer_count, ("model.layers.2.input_layernorm.weight missing", "num_hidden_layers=2147483648")),
    "unknown-model-type": (unknown_model_type, ("unsupported model_type 'gpt2'", "qwen2", "llama")),
    "missing-tensor": (missing_tensor, ("model.layers.1.mlp.up_proj.weight", "missing")),
    "header-shape": (
        header_shape_mismatch,
        ("model.layers.0.mlp.gate_proj.weight", "[24, 16]", "[32, 16]", "intermediate_size=32"),
    ),
    "truncated-safetensors": (truncated_safetensors, ("truncated", "model.safetensors")),
    "corrupt-header": (corrupt_header, ("corrupt", "model.safetensors")),
    "bin-python-object": (bin_with_python_object, ("pytorch_model.bin", "non-tensor", "argparse.Namespace")),
    "bin-string": (bin_with_string, ("pytorch_model.bin", "non-tensor", "'note'")),
    "bin-int-key": (bin_with_int_key, ("pytorch_model.bin", "non-string key 7 (int)")),
}


@pytest.mark.parametrize("case", list(IMPORT_CASES))
def test_import_hf_bad_checkpoint(case: str, tmp_path: Path) -> None:
    break_it, fragments = IMPORT_CASES[case]
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    break_it(model)
    proc = run_tool("axc-translate", "--import-hf", model, "-o", "out.mlir", cwd=tmp_path)
    assert_one_line_error(proc, "axc-translate", *fragments)
    assert_no_output(tmp_path)


def test_shapes_checked_from_headers_before_any_data_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape check needs headers only: reading a tensor's data would fail here."""
    from axc import params
    from axc.errors import AxcError
    from axc.frontend.hf_import import import_hf

    def no_data(self: object, key: str) -> np.ndarray:
        raise AssertionError(f"tensor data of {key} read during import")

    monkeypatch.setattr(params._SafetensorsFile, "get", no_data)
    import_hf(FIXTURE)  # a good checkpoint imports from headers alone
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    header_shape_mismatch(model)
    with pytest.raises(AxcError, match=r"gate_proj\.weight has shape \[24, 16\]"):
        import_hf(model)


def test_failed_import_keeps_existing_output(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    missing_tensor(model)
    (tmp_path / "out.mlir").write_text("previous\n")
    proc = run_tool("axc-translate", "--import-hf", model, "-o", "out.mlir", cwd=tmp_path)
    assert_one_line_error(proc, "axc-translate", "missing")
    assert (tmp_path / "out.mlir").read_text() == "previous\n"


# --- axc-opt -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfm_ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ir")
    proc = run_tool("axc-translate", "--import-hf", FIXTURE, "-o", "tiny.mlir", cwd=directory)
    assert proc.returncode == 0, proc.stderr
    return directory / "tiny.mlir"


@pytest.mark.parametrize(
    "text, position, message",
    [
        ("builtin.module {\n  %0 = tfm.bogus : tensor<1xf32>\n}\n", r"bad\.mlir:2:\d+", "tfm.bogus is not registered"),
        ("builtin.module {\n  func.func @f( {\n}\n", r"bad\.mlir:2:\d+", "Expected argument or type"),
    ],
    ids=["unknown-op", "syntax"],
)
def test_opt_malformed_ir(text: str, position: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "bad.mlir").write_text(text)
    proc = run_tool("axc-opt", "bad.mlir", "-o", "out.mlir", cwd=tmp_path)
    line = assert_one_line_error(proc, "axc-opt", message)
    assert re.match(rf"axc-opt: error: {position}: ", line), line
    assert_no_output(tmp_path)


def test_opt_reads_ir_whatever_the_extension(tfm_ir: Path, tmp_path: Path) -> None:
    """xDSL's driver refused `model.txt` with a ValueError traceback (found by hand beside axc-fuzz)."""
    shutil.copy(tfm_ir, tmp_path / "model.txt")
    proc = run_tool("axc-opt", "model.txt", "-o", "out.mlir", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.mlir").read_text().strip() == tfm_ir.read_text().strip()


LOST_QUOTE = ('<"model"::"model.layers.1.self_attn.o_proj.weight">', '<"model"::"model.layers.1.self_attn.o_proj.weight<>')
UNTERMINATED_TOOLS = {
    "axc-opt": ("-o", "out.mlir"),
    "axc-translate": ("-o", "out.axmodel"),
    "axc-run": ("--func", "layer_0", "--output-dir", "out"),
}


def unterminated_ir(case: str, tfm_ir: Path) -> tuple[str, str]:
    """IR text with an unterminated string, and where the error must point."""
    if case == "lost-quote":  # the hang reported in issue 14
        text = tfm_ir.read_text()
        line = text[: text.index(LOST_QUOTE[0])].count("\n") + 1
        return text.replace(LOST_QUOTE[0], LOST_QUOTE[1]), rf"bad\.mlir:{line}:\d+"
    return 'builtin.module attributes {key = "' + "a" * 10_000 + "} {\n}\n", r"bad\.mlir:1:34"


@pytest.mark.parametrize("tool", list(UNTERMINATED_TOOLS))
@pytest.mark.parametrize("case", ["lost-quote", "10kB"])
def test_unterminated_string_is_one_line_error(tool: str, case: str, tfm_ir: Path, tmp_path: Path) -> None:
    """xDSL's lexer backtracks exponentially here (docs/upstream.md); axc refuses it at once."""
    text, position = unterminated_ir(case, tfm_ir)
    (tmp_path / "bad.mlir").write_text(text)
    args = ("--emit-axmodel", "bad.mlir") if tool == "axc-translate" else ("bad.mlir",)
    proc = run_tool(tool, *args, *UNTERMINATED_TOOLS[tool], cwd=tmp_path)
    line = assert_one_line_error(proc, tool, "unterminated string literal")
    assert re.match(rf"{tool}: error: {position}: unterminated string literal$", line), line
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.axmodel").exists()
    assert_no_output(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('"a" "b\\q" "c"', "1:5: invalid escape in string literal"),
        ('// "not a string\n"fine" "two\nlines"', "2:8: unterminated string literal"),
        ('"escaped quote at the end\\"', "1:1: unterminated string literal"),
    ],
    ids=["bad-escape", "comment-and-newline", "escaped-quote"],
)
def test_unterminated_string_cases(text: str, message: str) -> None:
    from xdsl.utils.exceptions import ParseError

    from axc.textio import parse_module

    with pytest.raises(ParseError) as caught:
        parse_module(f"builtin.module {{\n}}\n{text}", "x.mlir")
    lines = str(caught.value).splitlines()
    assert f"{lines[0]}: {lines[-1].strip()}" == f"x.mlir:{int(message[0]) + 2}{message[1:]}"


DEEP = 1000
ESCAPES = {  # fuzz findings: xDSL let these Python errors out of its parser (issue 14)
    "type-width": ("{x = 8 : i99999999999999999999}", "1:57: number or integer type width too large"),
    "5000-digits": ("{x = 1" + "0" * 5000 + " : i64}", "1:5034: number or integer type width too large"),
    "nested-dicts": ("{x = " + "{a = " * DEEP + "1" + "}" * DEEP + "}", r"1:\d+: nested too deeply to parse"),  # where depends on the stack
    "nested-types": ("{x = " + "tensor<" * DEEP + "f32" + ">" * DEEP + "}", r"1:\d+: nested too deeply to parse"),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_parser_overflow_and_recursion_are_parse_errors(case: str) -> None:
    from xdsl.utils.exceptions import ParseError

    from axc.textio import parse_module

    attributes, message = ESCAPES[case]
    with pytest.raises(ParseError) as caught:
        parse_module(f"builtin.module attributes {attributes} {{\n}}\n", "x.mlir")
    lines = str(caught.value).splitlines()
    assert re.match(f"x.mlir:{message}", f"{lines[0]}: {lines[-1].strip()}"), str(caught.value)


def test_axc_opt_refuses_deep_nesting_in_one_line(tmp_path: Path) -> None:
    attributes, _ = ESCAPES["nested-dicts"]
    (tmp_path / "deep.mlir").write_text(f"builtin.module attributes {attributes} {{\n}}\n")
    proc = run_tool("axc-opt", "deep.mlir", "-o", "out.mlir", cwd=tmp_path)
    line = assert_one_line_error(proc, "axc-opt", "nested too deeply to parse; flatten")
    assert re.match(r"axc-opt: error: deep\.mlir:1:\d+: nested", line), line
    assert_no_output(tmp_path)


def test_proposed_xdsl_lexer_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The possessive pattern proposed upstream (docs/upstream.md) matches what xDSL's does,
    and with it xDSL alone refuses both hangs of the test above."""
    import itertools

    from xdsl.utils.exceptions import ParseError
    from xdsl.utils.mlir_lexer import MLIRLexer

    from axc.dialects import make_context

    original = MLIRLexer._unescaped_characters_regex
    fixed = re.compile(r'"(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+"')
    for n in range(6):
        for chars in itertools.product('a"\\nt0F\n', repeat=n):
            text = '"' + "".join(chars)
            old, new = original.match(text), fixed.match(text)
            assert (old and old.group()) == (new and new.group()), text
    monkeypatch.setattr(MLIRLexer, "_unescaped_characters_regex", fixed)
    for tail in (LOST_QUOTE[1].split("::\"")[1] + " : tensor<128x128xbf16>", "a" * 10_000):
        with pytest.raises(ParseError, match="before closing string literal"):
            Parser(make_context(), f'builtin.module attributes {{key = "{tail}}} {{\n}}').parse_module()


@pytest.mark.parametrize(
    "pipeline, fragments",
    [
        ("specialize-groups{kv-cache-len=31 bogus=3}", ("unknown option 'bogus'", "kv-cache-len, prefill-len")),
        ("specialize-groups{kv-cache-len=abc}", ("specialize-groups", "abc")),
        ("no-such-pass", ("unknown pass 'no-such-pass'", "specialize-groups")),
        ("specialize-groups{", ("malformed pass pipeline",)),
        ("specialize-groups{kv-cache-len=31 prefill-len=8 last-kv-cache-len=24}", ("last-kv-cache-len 24 + prefill-len 8 exceeds",)),
    ],
    ids=["unknown-option", "bad-value", "unknown-pass", "malformed-pipeline", "bad-group"],
)
def test_opt_bad_pass_options(pipeline: str, fragments: tuple[str, ...], tfm_ir: Path, tmp_path: Path) -> None:
    proc = run_tool("axc-opt", tfm_ir, "-p", pipeline, "-o", "out.mlir", cwd=tmp_path)
    assert_one_line_error(proc, "axc-opt", *fragments)
    assert_no_output(tmp_path)


# --- axc-run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def groups_ir(tfm_ir: Path) -> Path:
    directory = tfm_ir.parent
    proc = run_tool("axc-opt", tfm_ir, "-p", GROUPS, "-o", "groups.mlir", cwd=directory)
    assert proc.returncode == 0, proc.stderr
    inputs = {
        "k": np.zeros((1, 31, 8), np.float32),
        "v": np.zeros((1, 31, 8), np.float32),
        "idx": np.zeros((1, 1), np.uint32),
        "x": np.ones((1, 1, 16), np.float32),
        "x2": np.ones((1, 2, 16), np.float32),
        "mask": np.zeros((1, 1, 32), np.float32),
    }
    for name, value in inputs.items():
        np.save(directory / f"{name}.npy", value)
    return directory / "groups.mlir"


def decode_args(groups_ir: Path, **override: str) -> list[str]:
    d = groups_ir.parent
    files = {"K_cache": "k", "V_cache": "v", "indices": "idx", "input": "x", "mask": "mask", **override}
    return [f"--input={name}={d / file}.npy" for name, file in files.items() if file]


def test_run_checkpoint_changed_since_import(groups_ir: Path, tmp_path: Path) -> None:
    """A tensor whose shape no longer matches the IR's `axc.param` type is refused by name
    (found by axc-fuzz: a broadcasting ValueError traceback from the interpreter)."""
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    header_shape_mismatch(model)
    text = groups_ir.read_text()
    assert str(FIXTURE.resolve()) in text
    (tmp_path / "groups.mlir").write_text(text.replace(str(FIXTURE.resolve()), str(model)))
    out = tmp_path / "out"
    proc = run_tool("axc-run", "groups.mlir", "--func", "layer_0_g0", *decode_args(groups_ir), "--output-dir", out, cwd=tmp_path)
    assert_one_line_error(proc, "axc-run", "model::model.layers.0.mlp.gate_proj.weight has shape [24, 16]", "tensor<32x16xbf16>")
    assert not out.exists()


@pytest.mark.parametrize(
    "func, override, fragments",
    [
        ("layer_0_g0", {"mask": ""}, ("@layer_0_g0 takes inputs", "missing mask")),
        ("layer_0_g0", {"input": "x2"}, ("input input of @layer_0_g0 has shape [1, 2, 16]", "1x1x16")),
        ("layer_0_g0", {"input": "no-such-file"}, ("no-such-file.npy does not exist",)),
        ("layer_9_g0", {}, ("no function @layer_9_g0", "layer_0_g0")),
    ],
    ids=["missing-input", "wrong-shape", "missing-npy", "unknown-func"],
)
def test_run_bad_input(func: str, override: dict[str, str], fragments: tuple[str, ...], groups_ir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_tool("axc-run", groups_ir, "--func", func, *decode_args(groups_ir, **override), "--output-dir", out, cwd=tmp_path)
    assert_one_line_error(proc, "axc-run", *fragments)
    assert not out.exists() or not list(out.iterdir())
