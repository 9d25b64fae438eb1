"""`axc-llm-build`: flags, pre-build validation, the output directory, atomicity, workers,
and the check levels (the emitted files run in the simulator)."""

from __future__ import annotations

import io
import json
import os
import shutil
from contextlib import closing
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from rich.console import Console

from axc.axmodel import read_axmodel
from axc.llm_build import target
from axc.llm_build import check
from axc.llm_build.check import CHECK_REPORT, LayerReferences, check_layers, reference_module
from axc.llm_build.driver import BuildResult, build
from axc.llm_build.log import BuildLog
from axc.llm_build.options import CONV_EU_ENV, BuildOptions, float_matmul_use_conv_eu, from_args, parser
from axc.llm_build.runtime_files import EMBED_FILENAME, EMBED_NPY_FILENAME
from axc.llm_build.validate import validate
from axc.dtypes import tensor_dtype
from axc.errors import AxcError
from axc.frontend.hf_import import build_layer
from axc.frontend.views import open_model_checkpoint
from axc.interpreters.runner import ModuleRunner
from axc.isa import CONV_QUEUE, MATRIX_QUEUE, walk
from axc.runtime_contract import LAYER_INPUTS, LAYER_OUTPUTS
from axc.sim.session import AxModelSession
from axengine import InferenceSession

from test_cli_errors import FIXTURE, assert_one_line_error, edit_config, edit_tensors, run_tool

GPTQ = Path(__file__).parents[1] / "fixtures" / "gptq"
SEED_FLAGS = [
    "--hidden_state_type", "bf16", "--kv_cache_len", "1023", "--prefill_len", "128",
    "--last_kv_cache_len", "128", "--last_kv_cache_len", "256", "--last_kv_cache_len", "384",
    "--last_kv_cache_len", "512", "--chip", "AX650", "-c", "1", "--parallel", "8",
]


def quiet() -> BuildLog:
    return BuildLog(Console(file=io.StringIO(), width=120))


def options(model: Path, out: Path, **overrides: object) -> BuildOptions:
    values: dict[str, object] = dict(kv_cache_len=31, prefill_len=8, last_kv_cache_len=(8, 16))
    values.update(overrides)
    return BuildOptions(input_path=model, output_path=out, **values)  # type: ignore[arg-type]


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- flags -------------------------------------------------------------------------------


def test_seed_command_flags() -> None:
    args = parser().parse_args(["--input_path", "M/", "--output_path", "OUT", *SEED_FLAGS])
    o = from_args(args)
    assert o.last_kv_cache_len == (128, 256, 384, 512)
    assert (o.kv_cache_len, o.prefill_len, o.check_level, o.parallel, o.chip) == (1023, 128, 1, 8, "AX650")
    assert o.weight_type is None and o.post_weight_type == "s8" and o.hidden_state_type == "bf16"
    assert (o.npu_mode, o.prompt, o.post_topk) == ("NPU1", "1+1=", 0)


def test_no_embed_npy() -> None:
    args = parser().parse_args(["--input_path", "M", "--output_path", "O", "--no_embed_npy"])
    assert from_args(args).embed_npy is False
    assert from_args(parser().parse_args(["--input_path", "M", "--output_path", "O"])).embed_npy is True
    assert validate(options(FIXTURE, Path("/tmp/axc-no-npy"), embed_npy=False)).estimate.embed_npy_bytes == 0


def test_estimate_counts_the_layer_check() -> None:
    """-c 1 keeps the fp32 reference's lm_head (widened from the checkpoint's rows) in the
    main process beside the simulator workers: for a 0.5B-sized vocabulary that is more
    than the -c 0 build needs."""
    from dataclasses import replace

    from axc.llm_build.validate import MiB, PROCESS_BYTES, WORKER_BYTES, check_bytes, check_workers

    out = Path("/tmp/axc-estimate")
    build, checked = (validate(options(FIXTURE, out, check_level=c)).estimate for c in (0, 1))
    assert checked.peak_memory_bytes >= build.peak_memory_bytes and checked.disk_bytes == build.disk_bytes
    config = replace(validate(options(FIXTURE, out)).config, vocab_size=151936, hidden_size=896)
    serial, parallel = (check_bytes(options(FIXTURE, out, parallel=p), config, MiB, 136 * MiB, 2) for p in (1, 2))
    assert serial >= PROCESS_BYTES + 151936 * 896 * 6 + 136 * MiB
    workers = check_workers(2, config.num_hidden_layers)
    assert parallel == (serial - 136 * MiB + workers * (WORKER_BYTES + 136 * MiB) if workers else serial)


def test_float_matmul_use_conv_eu_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [float_matmul_use_conv_eu({CONV_EU_ENV: v}) for v in ("1", " 1", "0", "")] == [True, True, False, False]
    assert float_matmul_use_conv_eu({}) is False
    with pytest.raises(AxcError, match=f"{CONV_EU_ENV}='yes': expected 1"):
        float_matmul_use_conv_eu({CONV_EU_ENV: "yes"})
    monkeypatch.setenv(CONV_EU_ENV, "1")
    o = from_args(parser().parse_args(["--input_path", "M/", "--output_path", "OUT", *SEED_FLAGS]))
    assert o.float_matmul_use_conv_eu and o.to_json()["float_matmul_use_conv_eu"] is True


@pytest.mark.parametrize("chip", ["AX650", "AX620E"])
def test_float_matmul_use_conv_eu_moves_attention_matmuls_on_ax650_only(tmp_path: Path, chip: str) -> None:
    text = io.StringIO()
    result = build(options(FIXTURE, tmp_path / "out", chip=chip, float_matmul_use_conv_eu=True), BuildLog(Console(file=text, width=400)))
    lines = [line for line in text.getvalue().splitlines() if CONV_EU_ENV in line]
    payload = AxModelSession(tmp_path / "out" / "qwen2_p8_l0_together.axmodel").payload
    queues = {i.queue for program in payload.programs for i, _ in walk(program.body) if i.op.mnemonic == "matmul"}
    if chip == "AX650":
        assert len(lines) == 1 and "run on the convolution units" in lines[0]
        assert queues == {MATRIX_QUEUE, CONV_QUEUE}
        assert "float-matmul-use-conv-eu=true" in result.report["effective"]["pipeline"]
    else:
        assert len(lines) == 1 and "ignored: AX620E has no convolution units" in lines[0]
        assert queues == {MATRIX_QUEUE}


def test_last_kv_cache_len_takes_several_values_per_flag() -> None:
    args = parser().parse_args(["--input_path", "M", "--output_path", "O", "--last_kv_cache_len", "128", "256", "--last_kv_cache_len", "384"])
    assert from_args(args).last_kv_cache_len == (128, 256, 384)


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--image_size", "448"], "--image_size 448: vision-language models are not supported"),
        (["--tensor_parallel_size", "2"], "--tensor_parallel_size 2: tensor-parallel builds"),
    ],
)
def test_unsupported_vendor_flags_are_refused(flags: list[str], fragment: str) -> None:
    with pytest.raises(AxcError, match=fragment.replace("(", r"\(")):
        from_args(parser().parse_args(["--input_path", "M", "--output_path", "O", *flags]))


def test_default_vendor_values_are_accepted() -> None:
    args = parser().parse_args(["--input_path", "M", "--output_path", "O", "--image_size", "224", "--tensor_parallel_size", "0"])
    assert from_args(args).input_path == Path("M")


# --- validation: one line, exit 1, nothing written ----------------------------------------


def copy_fixture(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    return model


def extra_layer(model: Path) -> None:
    edit_config(model, lambda c: c.update(num_hidden_layers=1))


def wrong_dtype(model: Path) -> None:
    def edit(tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
        key = "model.layers.0.mlp.up_proj.weight"
        _, shape, raw = tensors[key]
        tensors[key] = ("I16", shape, raw)

    edit_tensors(model, edit)


def vocab_mismatch(model: Path) -> None:
    edit_config(model, lambda c: c.update(vocab_size=64))


@pytest.mark.parametrize(
    "flags, breaks, fragments",
    [
        (["--kv_cache_len", "15", "--prefill_len", "32"], None, ("--prefill_len 32 exceeds --kv_cache_len 15",)),
        (["--kv_cache_len", "31", "--prefill_len", "8", "--last_kv_cache_len", "16", "--last_kv_cache_len", "8"], None, ("strictly increasing", "[16, 8]")),
        (["--kv_cache_len", "31", "--prefill_len", "8", "--last_kv_cache_len", "24"], None, ("--last_kv_cache_len 24 + --prefill_len 8 = 32 exceeds --kv_cache_len 31",)),
        (["--kv_cache_len", "31", "--prefill_len", "8", "--last_kv_cache_len", "0"], None, ("--last_kv_cache_len 0 must be at least 1",)),
        (["--last_kv_cache_len", "8"], None, ("--last_kv_cache_len needs --prefill_len > 0",)),
        (["--chip", "AX620E", "-w", "fp8_e4m3"], None, ("AX620E cannot store fp8_e4m3 decoder weights", "-w s8")),
        (["--chip", "AX620E", "--npu_mode", "NPU3"], None, ("AX620E has no npu_mode 'NPU3'",)),
        ([], extra_layer, ("holds 2 decoder layers", "num_hidden_layers=1")),
        ([], wrong_dtype, ("model.layers.0.mlp.up_proj.weight has dtype int16",)),
        ([], vocab_mismatch, ("model.embed_tokens.weight has shape [32, 16]", "vocab_size=64")),
        (["--post_topk", "100"], None, ("--post_topk 100 exceeds the vocabulary of 32 tokens",)),
        (["-c", "2"], None, ("-c 2 tokenizes --prompt with the input's tokenizer", "has none")),
        (["--chip", "AX700"], None, ("argument --chip: invalid choice: 'AX700'",)),
        (["--parallel", "0"], None, ("--parallel 0 must be at least 1",)),
    ],
    ids=["prefill>kv", "not-increasing", "history+prefill>kv", "history-0", "last-without-prefill", "chip-dtype", "npu-mode",
         "layer-count", "dtype", "vocab", "topk", "no-tokenizer", "chip", "parallel"],
)
def test_validation_errors(tmp_path: Path, flags: list[str], breaks, fragments: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    model = copy_fixture(tmp_path)
    if breaks is not None:
        breaks(model)
    proc = run_tool("axc-llm-build", "--input_path", model, "--output_path", tmp_path / "out", *flags, cwd=tmp_path)
    assert_one_line_error(proc, "axc-llm-build", *fragments)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_missing_input(tmp_path: Path) -> None:
    proc = run_tool("axc-llm-build", "--input_path", tmp_path / "nowhere", "--output_path", tmp_path / "out", cwd=tmp_path)
    assert_one_line_error(proc, "axc-llm-build", "--input_path", "does not exist")


def test_gptq_weight_type_contradiction(tmp_path: Path) -> None:
    proc = run_tool("axc-llm-build", "--input_path", GPTQ / "qwen2-tiny-gptq-int4", "--output_path", tmp_path / "out", "-w", "s8", cwd=tmp_path)
    assert_one_line_error(proc, "axc-llm-build", "weight-type=s8 contradicts the 4-bit GPTQ checkpoint")


def test_output_path_that_is_not_a_build_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    proc = run_tool("axc-llm-build", "--input_path", FIXTURE, "--output_path", tmp_path / "out", cwd=tmp_path)
    assert_one_line_error(proc, "axc-llm-build", "is a non-empty directory that is not an axc build")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("")
    proc = run_tool("axc-llm-build", "--input_path", FIXTURE, "--output_path", tmp_path / "file", cwd=tmp_path)
    assert_one_line_error(proc, "axc-llm-build", "exists and is not a directory")


def test_not_enough_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as shutil_module

    real = shutil_module.disk_usage
    monkeypatch.setattr("axc.llm_build.validate.shutil.disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(AxcError, match=r"not enough disk for .* the build needs about .* MiB, 0 MiB are free"):
        build(options(FIXTURE, tmp_path / "out"), quiet())
    assert not (tmp_path / "out").exists()


def test_output_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(AxcError, match="cannot create --output_path .* is not a directory"):
        build(options(FIXTURE, tmp_path / "file" / "out"), quiet())


def test_unwritable_output(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(AxcError, match="is not writable"):
            build(options(FIXTURE, locked / "out"), quiet())
    finally:
        locked.chmod(0o700)


# --- the output directory ------------------------------------------------------------------


SERIAL_CHECK_LOG: list[str] = []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "tiny"
    text = io.StringIO()
    log = BuildLog(Console(file=text, width=120))
    result = build(options(FIXTURE, out, check_level=1), log)
    check_layers(result, log)
    SERIAL_CHECK_LOG[:] = [line for line in text.getvalue().splitlines() if "cos_sim" in line]
    return out


def test_output_directory(built: Path) -> None:
    names = sorted(p.name for p in built.iterdir())
    assert names == sorted([
        "qwen2_p8_l0_together.axmodel", "qwen2_p8_l1_together.axmodel", "qwen2_post.axmodel",
        EMBED_FILENAME, EMBED_NPY_FILENAME, "config.json", "post_config.json", "build_report.json", CHECK_REPORT,
        "run_qwen2_ax650.sh",
    ])
    assert (built / EMBED_FILENAME).stat().st_size == 32 * 16 * 2
    table = np.load(built / EMBED_NPY_FILENAME)  # what the vendor's Python runners read
    assert table.dtype == np.float32 and table.shape == (32, 16)
    np.testing.assert_array_equal(table.astype(ml_dtypes.bfloat16).view(np.uint16).tobytes(), (built / EMBED_FILENAME).read_bytes())
    assert validate(options(FIXTURE, built.parent / "again")).estimate.embed_npy_bytes == (built / EMBED_NPY_FILENAME).stat().st_size
    config = json.loads((built / "config.json").read_text())
    assert config["template_filename_axmodel"] == "qwen2_p8_l%d_together.axmodel" and config["axmodel_num"] == 2
    assert json.loads((built / "post_config.json").read_text())["top_k"] == 1


def declared_ladder(path: Path) -> list[dict[str, tuple[int, ...]]]:
    """Every group's declared shapes by tensor name, as the runtime reads them."""
    return [{t.name: t.shape for t in (*g.inputs, *g.outputs)} for g in read_axmodel(path).groups]


def ladder_row(tokens: int, cache: tuple[int, ...], mask: int, kv_dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        "K_cache": cache, "V_cache": cache, "indices": (1, tokens), "input": (1, tokens, hidden), "mask": (1, tokens, mask),
        "K_cache_out": (1, tokens, kv_dim), "V_cache_out": (1, tokens, kv_dim), "output": (1, tokens, hidden),
    }


def test_layer_files_follow_the_runtime_contract(built: Path) -> None:
    model = read_axmodel(built / "qwen2_p8_l1_together.axmodel")
    assert [g.name for g in model.groups] == ["decode", "prefill_0", "prefill_8", "prefill_16"]
    assert declared_ladder(built / "qwen2_p8_l1_together.axmodel") == [
        ladder_row(1, (1, 31, 8), 32, 8, 16),
        ladder_row(8, (1, 1, 16), 8, 8, 16),  # history 0: a [1, 1, hidden] dummy, mask [1, P, P]
        ladder_row(8, (1, 8, 8), 16, 8, 16),
        ladder_row(8, (1, 16, 8), 24, 8, 16),
    ]
    for group in model.groups:
        assert [t.name for t in group.inputs] == ["K_cache", "V_cache", "indices", "input", "mask"]
        assert [(t.name, t.dtype) for t in group.outputs] == [("K_cache_out", "bf16"), ("V_cache_out", "bf16"), ("output", "bf16")]
        assert [t.dtype for t in group.inputs] == ["bf16", "bf16", "uint32", "bf16", "bf16"]
    assert model.metadata["chip"] == "AX650" and json.loads(model.metadata["build_options"])["kv_cache_len"] == 31
    post = read_axmodel(built / "qwen2_post.axmodel")
    assert [(t.name, t.shape) for t in post.groups[0].outputs] == [("output", (1, 1, 32))]


def test_build_report(built: Path) -> None:
    report = json.loads((built / "build_report.json").read_text())
    assert report["options"]["last_kv_cache_len"] == [8, 16]
    assert report["effective"]["weight_type"] == "s8" and report["effective"]["histories"] == [31, 0, 8, 16]
    assert "lower-to-ax650" in report["effective"]["pipeline"]
    for stage in ("validate", "prepare", "decode layers", "post layer", "runtime files"):
        assert report["timings_s"][stage] >= 0
    assert report["files"]["qwen2_p8_l0_together.axmodel"] == (built / "qwen2_p8_l0_together.axmodel").stat().st_size
    groups = report["predictions"]["layers"]["layer_0"]
    assert [g["label"] for g in groups] == ["decode", "prefill_0", "prefill_8", "prefill_16"]
    assert all(g["latency_ms"] > 0 for g in groups) and report["predictions"]["model"]["decode_ms_per_token"] > 0
    chunks = report["predictions"]["model"]["prefill_ms_per_chunk"]
    assert list(chunks) == ["prefill_0", "prefill_8", "prefill_16"] and all(ms > 0 for ms in chunks.values())


def test_layer_check_report(built: Path) -> None:
    report = json.loads((built / CHECK_REPORT).read_text())
    rows = {(r["layer"], r["group"]) for r in report["layers"]}
    assert rows == {(layer, group) for layer in range(2) for group in range(4)}
    assert report["worst_layer_cosine"] > 0.999
    assert report["logits"]["top1_agreement"] == 1.0


def test_parallel_layer_check_reports_what_the_serial_one_does(built: Path, tmp_path: Path) -> None:
    """`-c 1 --parallel 2` simulates the layers in worker processes: same report, same lines."""
    text = io.StringIO()
    log = BuildLog(Console(file=text, width=120))
    result = build(options(FIXTURE, tmp_path / "p2", check_level=1, parallel=2), log)
    check_layers(result, log)
    assert "worker processes" in text.getvalue()
    assert [line for line in text.getvalue().splitlines() if "cos_sim" in line] == SERIAL_CHECK_LOG
    mine, serial = (json.loads((d / CHECK_REPORT).read_text()) for d in (result.directory, built))
    assert len(SERIAL_CHECK_LOG) == len(serial["layers"]) + 1 > 2  # one line per layer and group, and the post
    assert mine.pop("seconds") >= 0 and serial.pop("seconds") >= 0
    assert mine == serial


def die(*args: object) -> None:
    os._exit(9)  # as a worker killed for memory goes


def test_a_build_worker_that_dies_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer-building worker killed mid-build: an error naming it, nothing left behind."""
    monkeypatch.setattr("axc.llm_build.layers.build_in_worker", die)  # the forked workers run it
    with pytest.raises(AxcError, match="layer-building worker process died"):
        build(options(FIXTURE, tmp_path / "out", parallel=2), quiet())
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_check_worker_that_dies_is_one_clear_error(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulator worker killed mid-check: an error naming it, not a wait that never ends."""
    result = BuildResult(validate(options(FIXTURE, built, check_level=1, parallel=2)), {})
    before = (built / CHECK_REPORT).read_bytes()
    monkeypatch.setattr(check, "simulate_layer", die)  # the forked workers run it
    with pytest.raises(AxcError, match="simulator worker process died"):
        check_layers(result, quiet())
    assert (built / CHECK_REPORT).read_bytes() == before


def test_layers_of_one_structure_share_their_reference(tmp_path: Path) -> None:
    """`-c 1`'s reference specializes one layer per structure: layer 1 runs layer 0's
    functions on its own weights, bit for bit what its own functions give (not layer 0's)."""
    result = BuildResult(validate(options(FIXTURE, tmp_path / "out")), {})
    with open_model_checkpoint(FIXTURE) as checkpoint, closing(LayerReferences(result, open_model_checkpoint(FIXTURE))) as references:
        (first, functions0), (shared, functions1) = references(0), references(1)
        assert functions0 == functions1 == 0 and len(references.representatives) == 1
        own = ModuleRunner(reference_module(result, build_layer(result.plan.config, checkpoint, 1)))
        rng = np.random.default_rng(0)
        for group in range(len(result.plan.groups)):
            types = own.function(f"layer_1_g{group}").function_type.inputs.data
            shapes = [tuple(t.get_shape()) for t in types]  # type: ignore[attr-defined]  # tensor types
            inputs = [
                np.arange(s[-1]).reshape(s).astype(tensor_dtype(t)) if np.issubdtype(tensor_dtype(t), np.integer)
                else rng.standard_normal(s).astype(np.float32)
                for t, s in zip(types, shapes)
            ]
            mine = shared.call(f"layer_0_g{group}", inputs)
            assert all(np.array_equal(a, b) for a, b in zip(mine, own.call(f"layer_1_g{group}", inputs), strict=True))
            assert not np.allclose(mine[-1], first.call(f"layer_0_g{group}", inputs)[-1])


def test_layers_are_rebound_not_copied(built: Path) -> None:
    """Layer 1's file runs layer 1's weights (its output differs from layer 0's on the same input)."""
    rng = np.random.default_rng(1)
    sessions = [AxModelSession(built / f"qwen2_p8_l{i}_together.axmodel") for i in range(2)]
    spec = sessions[0].model.groups[0]
    inputs = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in spec.inputs}
    inputs["indices"] = np.array([[3]], np.uint32)
    inputs["mask"] = np.where(np.arange(32) < 3, 0.0, -65536.0).astype(np.float32).reshape(1, 1, 32)
    inputs["mask"][0, 0, -1] = 0
    outputs = [s.run(0, inputs)["output"] for s in sessions]
    assert not np.allclose(outputs[0], outputs[1])


def test_seed_command_gives_the_vendor_ladder(tmp_path: Path) -> None:
    """The seed's flags (`--kv_cache_len 1023 --prefill_len 128 --last_kv_cache_len 128 256
    384 512`) give the 6 groups of the vendor's board log (`grp: 1 -> 1, 2 -> 128, 3 -> 256,
    4 -> 384, 5 -> 512` prefill plus decode), read from the emitted file's declared shapes."""
    flags = SEED_FLAGS[:-4]  # without "-c 1 --parallel 8": the shapes are the point here
    proc = run_tool("axc-llm-build", "--input_path", FIXTURE, "--output_path", tmp_path / "seed", *flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    kv_dim, hidden = 8, 16
    expected = [ladder_row(1, (1, 1023, kv_dim), 1024, kv_dim, hidden), ladder_row(128, (1, 1, hidden), 128, kv_dim, hidden)]
    expected += [ladder_row(128, (1, h, kv_dim), h + 128, kv_dim, hidden) for h in (128, 256, 384, 512)]
    for layer in range(2):
        assert declared_ladder(tmp_path / "seed" / f"qwen2_p128_l{layer}_together.axmodel") == expected
    # Stable names: every API shows the runtime's names in every group (the file keeps unique ones).
    layer0 = tmp_path / "seed" / "qwen2_p128_l0_together.axmodel"
    session, engine = AxModelSession(layer0), InferenceSession(str(layer0))
    for group in range(6):
        assert session.input_names(group) == [a.name for a in engine.get_inputs(group)] == list(LAYER_INPUTS)
        assert session.output_names(group) == [a.name for a in engine.get_outputs(group)] == list(LAYER_OUTPUTS)
    info = run_tool("axc-run", "--info", layer0, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    rows = [line.split(maxsplit=3) for line in info.stdout.splitlines() if line.startswith("  ")]
    assert [r[1] for r in rows] == [*LAYER_INPUTS, *LAYER_OUTPUTS] * 6
    masks = [r[3] for r in rows if r[:2] == ["input", "mask"]]
    assert masks == ["[1, 1, 1024]", "[1, 128, 128]", "[1, 128, 256]", "[1, 128, 384]", "[1, 128, 512]", "[1, 128, 640]"]


def test_parallel_build_is_identical(built: Path, tmp_path: Path) -> None:
    result = build(options(FIXTURE, tmp_path / "p2", parallel=2), quiet())
    assert (result.directory / EMBED_FILENAME).read_bytes() == (built / EMBED_FILENAME).read_bytes()
    for name in ("qwen2_p8_l0_together.axmodel", "qwen2_p8_l1_together.axmodel", "qwen2_post.axmodel"):
        mine, theirs = read_axmodel(result.directory / name), read_axmodel(built / name)
        assert (mine.groups, mine.params) == (theirs.groups, theirs.params), name
        assert json.loads(mine.metadata["build_options"])["parallel"] == 2


def test_spawned_workers_build_the_same_files(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers get only text and numbers, so a `spawn` pool (no inherited state) works too."""
    monkeypatch.setattr("axc.llm_build.layers.START_METHOD", "spawn")
    result = build(options(FIXTURE, tmp_path / "spawn", parallel=2), quiet())
    name = "qwen2_p8_l1_together.axmodel"
    assert read_axmodel(result.directory / name).params == read_axmodel(built / name).params


def test_rebuild_replaces_an_earlier_build(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    shutil.copytree(built, out)
    (out / "stale.axmodel").write_text("")
    build(options(FIXTURE, out), quiet())
    assert not (out / "stale.axmodel").exists() and (out / "build_report.json").is_file()
    assert leftovers(tmp_path) == []


# --- atomicity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [AxcError("injected"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    real = target.emit_file
    calls: list[Path] = []

    def failing(path: Path, *args: object) -> int:
        calls.append(path)
        if len(calls) == 2:  # after one layer file is on disk
            raise error
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(target, "emit_file", failing)
    with pytest.raises(type(error)):
        build(options(FIXTURE, tmp_path / "out"), quiet())
    assert calls[0].exists() is False  # the staging directory is gone with it
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_failed_rebuild_keeps_the_earlier_build(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kept"
    shutil.copytree(built, out)
    before = sorted(p.name for p in out.iterdir())

    def failing(*args: object) -> int:
        raise AxcError("injected")

    monkeypatch.setattr(target, "emit_file", failing)
    with pytest.raises(AxcError):
        build(options(FIXTURE, out), quiet())
    assert sorted(p.name for p in out.iterdir()) == before and leftovers(tmp_path) == []


# --- variants ------------------------------------------------------------------------------------


def test_post_topk(tmp_path: Path) -> None:
    log = quiet()
    result = build(options(FIXTURE, tmp_path / "topk", post_topk=4, check_level=1), log)
    post = read_axmodel(result.directory / "qwen2_post.axmodel")
    assert [(t.name, t.dtype, t.shape) for t in post.groups[0].outputs] == [("indices", "int32", (1, 1, 4)), ("probs", "fp32", (1, 1, 4))]
    report = check_layers(result, log)
    assert report.logits.top1_agreement == 1.0 and report.logits.values.cosine > 0.999


@pytest.mark.parametrize("fixture", ["qwen2-tiny-gptq-int4", "llama-tiny-gptq-int4", "qwen2-tiny-gptq-int8"])
def test_gptq_build_keeps_the_checkpoint_bits(tmp_path: Path, fixture: str) -> None:
    log = quiet()
    result = build(options(GPTQ / fixture, tmp_path / "gptq", prefill_len=0, last_kv_cache_len=(), chip="AX620E"), log)
    assert result.report["effective"]["weight_type"] == ("s8" if "int8" in fixture else "s4")
    report = check_layers(result, log)
    assert report.worst_layer().output.cosine > 0.999 and report.logits.values.cosine > 0.999


def test_llama_fp16_weights_npu2(tmp_path: Path, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    log = quiet()
    result = build(options(tiny_model_dir("llama"), tmp_path / "llama", weight_type="fp16", npu_mode="NPU2"), log)
    assert read_axmodel(result.directory / "llama_p8_l0_together.axmodel").metadata["npu_mode"] == "NPU2"
    assert check_layers(result, log).worst_layer().output.cosine > 0.999
