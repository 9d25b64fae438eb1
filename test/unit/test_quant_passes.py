"""The quant storage formats, GPTQ unpacking, and each pass checked by running the IR
before and after it on the same random inputs (exact for import-gptq, bounded otherwise)."""

from __future__ import annotations

import itertools
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from gptq_synth import FIXTURES, copy_fixture, write_gptq
from xdsl.dialects.builtin import ModuleOp

from axc.dialects import make_context, quant
from axc.dtypes import round_result
from axc.errors import AxcError
from axc.checkpoints import open_checkpoint
from axc.frontend.hf_import import import_hf
from axc.interpreters.runner import ModuleRunner
from axc.passes.import_gptq import ImportGptq
from axc.passes.quantize_weights import QuantizeWeights
from axc.passes.set_activation_type import SetActivationType
from axc.passes.specialize_groups import SpecializeGroups
from axc.quantization import LazyQuantized, WeightSpec, dequantize, pack_s4, quantize, unpack_s4

GPTQ_NAMES = [
    "qwen2-tiny-gptq-int4", "qwen2-tiny-gptq-int8", "qwen2-tiny-gptq-int4-actorder", "llama-tiny-gptq-int4",
    "qwen3-tiny-gptq-int8", "hunyuan-tiny-gptq-int4",
]


def apply(module: ModuleOp, *passes: object) -> ModuleOp:
    for p in passes:
        p.apply(make_context(), module)  # type: ignore[attr-defined]
    return module


def layer_inputs(
    runner: ModuleRunner, name: str, seed: int, tokens: int = 5, history: int = 3
) -> dict[str, np.ndarray]:
    """Random contract inputs for `@name` (dynamic or specialised shapes)."""
    rng = np.random.default_rng(seed)
    function = runner.function(name)
    shapes = [t.get_shape() for t in function.function_type.inputs.data]  # type: ignore[attr-defined]
    kv, hidden = shapes[0][-1], shapes[3][-1]
    cache = (1, history, kv)
    if shapes[3][1] > 0:  # specialised: a history-0 group's caches are a [1, 1, hidden] dummy
        tokens, history, cache = shapes[3][1], shapes[4][2] - shapes[3][1], tuple(shapes[0])
    mask = np.zeros((1, tokens, history + tokens), np.float32)
    mask[0, :, history:][np.triu(np.ones((tokens, tokens), bool), 1)] = -65536.0
    return {
        "K_cache": rng.normal(size=cache).astype(np.float32),
        "V_cache": rng.normal(size=cache).astype(np.float32),
        "indices": (history + np.arange(tokens, dtype=np.uint32))[None],
        "input": rng.normal(size=(1, tokens, hidden)).astype(np.float32),
        "mask": mask,
    }


def run_both(before: ModuleOp, after: ModuleOp, name: str, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    a, b = ModuleRunner(before), ModuleRunner(after)
    if name == "post":
        x = [np.random.default_rng(seed).normal(size=(1, 1, tfm_hidden(a))).astype(np.float32)]
        return list(zip(a.call(name, x), b.call(name, x), strict=True))
    inputs = layer_inputs(a, name, seed)
    return list(zip(a.call(name, inputs), b.call(name, inputs), strict=True))


def tfm_hidden(runner: ModuleRunner) -> int:
    return runner.function("post").function_type.inputs.data[0].get_shape()[-1]  # type: ignore[attr-defined]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


# --- storage formats --------------------------------------------------------------------


def test_s4_packing_low_nibble_first() -> None:
    codes = np.array([[1, 2, -8, 7, 5]], np.int8)
    packed = pack_s4(codes)
    assert packed.tolist() == [[0x21, 0x78, 0x05]]
    assert np.array_equal(unpack_s4(packed, 5, signed=True), codes)
    unsigned = np.array([[15, 0, 9]], np.uint8)
    assert np.array_equal(unpack_s4(pack_s4(unsigned), 3, signed=False), unsigned)


def test_quantize_rounds_half_to_even() -> None:
    w = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5]], np.float32)
    q = quantize(w, WeightSpec("s8", 1, 6, scale_type="bf16"))
    assert q.scales is not None and q.scales.dtype == ml_dtypes.bfloat16 and float(q.scales[0]) == 1.0
    assert q.data.tolist() == [[127, 0, 2, 2, 0, -2]]


@pytest.mark.parametrize(
    "spec",
    [
        WeightSpec("s8", 40, 160),
        WeightSpec("s8", 40, 160, group=64, asym=True),
        WeightSpec("s4", 40, 160, group=128),
        WeightSpec("s4", 40, 161, group=32, asym=True, scale_type="bf16"),
        WeightSpec("fp8_e4m3", 40, 160, scale_type="bf16"),
        WeightSpec("fp8_e5m2", 40, 160, scale_type="f16"),
        WeightSpec("bf16", 40, 160, scale_type=""),
        WeightSpec("fp16", 40, 160, scale_type=""),
    ],
    ids=lambda s: f"{s.kind}-g{s.group}-{'asym' if s.asym else 'sym'}-{s.in_features}",
)
def test_quantize_layouts_and_error(spec: WeightSpec) -> None:
    w = np.random.default_rng(0).normal(0, 0.05, (spec.out_features, spec.in_features)).astype(np.float32)
    q = quantize(w, spec)
    q.check("test")
    assert q.data.shape == spec.data_shape and q.data.dtype == spec.data_dtype
    d = dequantize(q)
    if spec.kind in ("s8", "s4"):
        scales = q.scales.astype(np.float32).reshape(spec.out_features, -1)  # type: ignore[union-attr]
        step = np.repeat(scales, spec.group_size, axis=1)[:, : spec.in_features]
        # Round to nearest: half a step; asym also rounds its zero point (up to another half at the ends).
        assert np.all(np.abs(d - w) <= step * (1.2 if spec.asym else 0.5) + 1e-7)
    bound = {"s8": 0.01, "s4": 0.15, "fp8_e4m3": 0.04, "fp8_e5m2": 0.07, "bf16": 0.003, "fp16": 0.001}[spec.kind]
    assert relative_error(d, w) <= bound
    # Codes times a bf16/f16 scale are exact in fp32: dequantizing twice gives the same bits.
    assert np.array_equal(d, dequantize(q))


@pytest.mark.parametrize(
    "spec",
    [WeightSpec("s8", 37, 160), WeightSpec("s4", 37, 161, group=32, asym=True), WeightSpec("fp8_e4m3", 37, 64, scale_type="bf16"),
     WeightSpec("bf16", 37, 64, scale_type="")],
    ids=lambda s: s.kind,
)
def test_lazy_quantized_rows_equal_those_of_the_whole(spec: WeightSpec) -> None:
    w = np.random.default_rng(1).normal(0, 0.05, (spec.out_features, spec.in_features)).astype(np.float32)
    reads: list[tuple[int, int]] = []

    def source(start: int, stop: int) -> np.ndarray:
        reads.append((start, stop))
        return w[start:stop]

    whole, lazy = quantize(w, spec).arrays(), LazyQuantized(spec, source)
    assert {role: shape for role, (shape, _) in lazy.roles().items()} == {r: a.shape for r, a in whole.items()}
    for role, expected in whole.items():
        chunks = [lazy.rows(role, start, start + 10) for start in range(0, spec.out_features, 10)]
        assert np.array_equal(np.concatenate(chunks).view(np.uint8), expected.view(np.uint8)), role
    assert len(reads) == 4  # the scales and zeros were kept while the data streamed: one pass over the source


def test_storage_check_names_the_weight() -> None:
    q = quantize(np.ones((4, 8), np.float32), WeightSpec("s4", 4, 8))
    q.data = q.data[:, :2]
    with pytest.raises(AxcError, match=r"^W: data is uint8\[4, 2\], the type needs uint8\[4, 4\]"):
        q.check("W")


# --- GPTQ unpacking and repacking -------------------------------------------------------


@pytest.mark.parametrize(
    "bits,sym,fmt,desc_act", list(itertools.product((4, 8), (True, False), ("gptq", "gptq_v2"), (False, True)))
)
def test_gptq_dequant_and_repack_are_exact(tmp_path: Path, bits: int, sym: bool, fmt: str, desc_act: bool) -> None:
    linears = write_gptq(tmp_path, bits, sym, fmt, desc_act)
    checkpoint = open_checkpoint(tmp_path)
    for prefix, linear in list(linears.items())[:7]:
        weight = checkpoint.get(f"{prefix}.weight")
        assert np.array_equal(weight, linear.weight())
        stored = checkpoint.stored(prefix)
        assert stored.spec.kind == ("s4" if bits == 4 else "s8") and stored.spec.asym == (not sym)
        assert (stored.perm is not None) == desc_act
        stored.check(prefix)
        assert np.array_equal(dequantize(stored), weight)


def test_import_gptq_synthetic_asym_actorder_layer_is_exact(tmp_path: Path) -> None:
    write_gptq(tmp_path, bits=8, sym=False, fmt="gptq_v2", desc_act=True)
    before = import_hf(tmp_path)
    after = apply(import_hf(tmp_path), ImportGptq())
    for actual, expected in run_both(before, after, "layer_1"):
        assert np.array_equal(actual, expected)


@pytest.mark.parametrize("name", GPTQ_NAMES)
def test_import_gptq_differential_is_exact(name: str) -> None:
    before = import_hf(FIXTURES / name)
    after = apply(import_hf(FIXTURES / name), ImportGptq())
    linears = [op for op in after.walk() if isinstance(op, quant.LinearOp)]
    assert len(linears) == 14  # 7 per decoder layer; the lm_head is not GPTQ
    assert all(op.weight_type.spec.scale_type == "f16" for op in linears)
    for function in ("layer_0", "layer_1", "post"):
        for actual, expected in run_both(before, after, function):
            assert np.array_equal(actual, expected)


def test_import_gptq_actorder_records_the_permutation() -> None:
    module = apply(import_hf(FIXTURES / "qwen2-tiny-gptq-int4-actorder"), ImportGptq())
    weights = [op for op in module.walk() if isinstance(op, quant.WeightOp)]
    assert weights and all(op.perm is not None for op in weights)
    assert all(op.weight_type.spec == WeightSpec("s4", *op.weight_type.shape, 128, False, "f16") for op in weights)


@pytest.mark.parametrize(
    "replace,fragment",
    [
        (
            {"model.layers.0.mlp.up_proj.g_idx": np.full(256, 2, np.int32)},
            "has value 2 at input 0, outside the 2 groups",
        ),
        ({"model.layers.1.self_attn.k_proj.scales": np.ones((2, 64), np.float16)}, "k_proj.scales has shape [2, 64]"),
        ({"model.layers.0.mlp.down_proj.qzeros": np.zeros((4, 16), np.int32)}, "down_proj.qzeros has shape [4, 16]"),
    ],
    ids=["g_idx-range", "scales-shape", "qzeros-shape"],
)
def test_gptq_bad_tensors_are_one_line_errors(tmp_path: Path, replace: dict[str, np.ndarray], fragment: str) -> None:
    directory = copy_fixture("qwen2-tiny-gptq-int4", tmp_path / "m", replace)
    with pytest.raises(AxcError) as info:
        import_hf(directory)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_gptq_uneven_actorder_groups_are_refused(tmp_path: Path) -> None:
    g_idx = np.zeros(256, np.int32)
    g_idx[-1] = 1
    directory = copy_fixture("qwen2-tiny-gptq-int4", tmp_path / "m", {"model.layers.0.mlp.up_proj.g_idx": g_idx})
    module = import_hf(directory)
    with pytest.raises(AxcError, match="does not put 128 inputs in each group; uneven act-order groups"):
        apply(module, ImportGptq())


# --- quantize-weights -------------------------------------------------------------------


@pytest.mark.parametrize(
    "weight_type,bound", [("bf16", 0.01), ("s8", 0.03), ("fp8_e4m3", 0.08), ("fp8_e5m2", 0.15), ("s4", 0.3)]
)
def test_quantize_weights_differential_is_bounded(tiny_model_dir, weight_type: str, bound: float) -> None:
    directory = tiny_model_dir("llama-wide")
    after = apply(import_hf(directory), QuantizeWeights(weight_type=weight_type))
    kinds = {op.weight_type.spec.kind for op in after.walk() if isinstance(op, quant.WeightOp)}
    assert kinds == {weight_type, "s8"}  # decoder layers, and the lm_head's vendor default
    for function in ("layer_0", "post"):
        for actual, expected in run_both(import_hf(directory), after, function):
            assert relative_error(actual, expected) <= bound


def test_quantize_weights_options(tiny_model_dir) -> None:
    module = apply(import_hf(tiny_model_dir("qwen2-wide")), QuantizeWeights(weight_type="s4", group_size=64, asym=True,
                                                                            post_weight_type="bf16"))
    specs = {op.weight_type.spec for op in module.walk() if isinstance(op, quant.WeightOp)}
    assert WeightSpec("s4", 512, 256, 64, True, "f16") in specs  # gate/up
    assert WeightSpec("bf16", 512, 256, scale_type="") in specs  # the tied lm_head
    module = apply(import_hf(tiny_model_dir("qwen2-wide")), QuantizeWeights())
    assert {op.weight_type.spec.kind for op in module.walk() if isinstance(op, quant.WeightOp)} == {"s8"}
    assert all(op.weight_type.spec.group == 0 for op in module.walk() if isinstance(op, quant.WeightOp))


def test_quantize_weights_after_import_gptq_keeps_gptq_and_quantizes_the_lm_head() -> None:
    module = apply(import_hf(FIXTURES / "qwen2-tiny-gptq-int4"), ImportGptq(), QuantizeWeights())
    weights = [op for op in module.walk() if isinstance(op, quant.WeightOp)]
    assert sum(op.weight_type.spec.scale_type == "f16" and op.weight_type.spec.kind == "s4" for op in weights) == 14
    lm_head = [op for op in weights if op.data.key.data == "lm_head.s8"]
    assert len(lm_head) == 1
    # Without import-gptq first, quantize-weights imports the GPTQ linears itself.
    alone = apply(import_hf(FIXTURES / "qwen2-tiny-gptq-int4"), QuantizeWeights(weight_type="s4"))
    assert sorted(map(str, (op.weight_type for op in alone.walk() if isinstance(op, quant.WeightOp)))) == sorted(
        map(str, (op.weight_type for op in weights))
    )


def test_quantize_weights_refuses_a_type_contradicting_gptq_bits() -> None:
    module = import_hf(FIXTURES / "qwen2-tiny-gptq-int8")
    expected = r"weight-type=s4 contradicts the 8-bit GPTQ checkpoint .*; omit weight-type or pass weight-type=s8"
    with pytest.raises(AxcError, match=expected):
        apply(module, QuantizeWeights(weight_type="s4"))


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"weight_type": "s3"}, "unknown weight-type 's3'"),
        ({"post_weight_type": "s4"}, "unknown post-weight-type 's4'"),
        ({"weight_type": "fp8_e4m3", "group_size": 64}, "group-size and asym apply to s8/s4 weights only"),
        ({"weight_type": "fp8_e4m3", "chip": "AX630C"}, "AX630C cannot store fp8_e4m3 decoder weights"),
        ({"chip": "AX999"}, "unknown chip 'AX999'"),
    ],
)
def test_quantize_weights_bad_options(tiny_model_dir, options: dict[str, object], fragment: str) -> None:
    with pytest.raises(AxcError) as info:
        apply(import_hf(tiny_model_dir("qwen2")), QuantizeWeights(**options))  # type: ignore[arg-type]
    assert fragment in str(info.value) and "\n" not in str(info.value)


# --- set-activation-type ----------------------------------------------------------------


def specialized(directory: Path, *passes: object) -> ModuleOp:
    groups = SpecializeGroups(kv_cache_len=12, prefill_len=4, last_kv_cache_len=(4, 8))
    return apply(import_hf(directory), groups, *passes)


@pytest.mark.parametrize("hidden,bound", [("bf16", 0.02), ("fp16", 0.003), ("fp32", 0.0)])
def test_set_activation_type_differential(tiny_model_dir, hidden: str, bound: float) -> None:
    directory = tiny_model_dir("qwen2-wide")
    before = specialized(directory, QuantizeWeights(weight_type="s8"))
    after = specialized(directory, QuantizeWeights(weight_type="s8"), SetActivationType(hidden=hidden))
    assert after.attributes["axc.activation_type"].data == hidden  # type: ignore[attr-defined]
    for function in ("layer_0_g0", "layer_1_g2", "post"):
        for actual, expected in run_both(before, after, function, seed=3):
            if bound == 0.0:
                assert np.array_equal(actual, expected)
            else:
                assert relative_error(actual, expected) <= bound


@pytest.mark.parametrize("hidden", ["bf16", "fp16"])
def test_set_activation_type_compute_fp32_rounds_only_the_boundary(tiny_model_dir, hidden: str) -> None:
    """`compute=fp32`: the values between ops are the fp32 ones of the module before; only
    the boundary (inputs, KV rows and hidden state out) is stored as `hidden`."""
    directory = tiny_model_dir("qwen2-wide")
    before = specialized(directory, QuantizeWeights(weight_type="s8"))
    after = specialized(directory, QuantizeWeights(weight_type="s8"), SetActivationType(hidden=hidden, compute="fp32"))
    a, b = ModuleRunner(before), ModuleRunner(after)
    for name in ("layer_0_g0", "layer_1_g2", "post"):
        function = b.function(name).function_type
        names = b.input_names(name)
        inputs = layer_inputs(a, name, seed=3) if name != "post" else {"input": np.random.default_rng(3).normal(size=(1, 1, tfm_hidden(a)))}
        stored = {n: round_result(np.asarray(inputs[n], np.float32), t) for n, t in zip(names, function.inputs.data)}
        for expected, actual, type_ in zip(a.call(name, stored), b.call(name, stored), function.outputs.data, strict=True):
            assert np.array_equal(actual, round_result(expected, type_)), name


def test_set_activation_type_retypes_boundaries_not_the_mask(tiny_model_dir) -> None:
    module = specialized(tiny_model_dir("qwen2"), SetActivationType(hidden="fp16"))
    runner = ModuleRunner(module)
    layer = runner.function("layer_0_g1")
    types = [str(t.get_element_type()) for t in layer.function_type.inputs.data]  # type: ignore[attr-defined]
    assert types == ["f16", "f16", "ui32", "f16", "bf16"]
    outputs = layer.function_type.outputs.data
    assert {str(t.get_element_type()) for t in outputs} == {"f16"}  # type: ignore[attr-defined]
    post = runner.function("post").function_type
    assert str(post.inputs.data[0].get_element_type()) == "f16"  # type: ignore[attr-defined]
    assert str(post.outputs.data[0].get_element_type()) == "f32"  # type: ignore[attr-defined]
    out = runner.call("layer_0_g0", layer_inputs(runner, "layer_0_g0", 0))
    assert all(np.array_equal(o, o.astype(np.float16).astype(np.float32)) for o in out)  # stored as fp16


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"hidden": "fp8"}, "unknown hidden type 'fp8'"),
        ({"compute": "s8"}, "unknown compute type 's8'"),
        ({"chip": "AX999"}, "unknown chip 'AX999'"),
    ],
)
def test_set_activation_type_bad_options(tiny_model_dir, options: dict[str, str], fragment: str) -> None:
    with pytest.raises(AxcError, match=fragment):
        specialized(tiny_model_dir("qwen2"), SetActivationType(**options))  # type: ignore[arg-type]
    with pytest.raises(AxcError, match="run specialize-groups first"):
        apply(import_hf(tiny_model_dir("qwen2")), SetActivationType())


def test_params_carry_over_between_axc_opt_steps(tmp_path: Path) -> None:
    from axc.binding import write_created_params
    from axc.textio import module_text, parse_module

    first = apply(import_hf(FIXTURES / "qwen2-tiny-gptq-int8"), ImportGptq())
    write_created_params(first, tmp_path / "a.safetensors")
    second = apply(parse_module(module_text(first)), QuantizeWeights())
    write_created_params(second, tmp_path / "b.safetensors")
    after = parse_module(module_text(second))  # a fresh store, bound to b only
    for actual, expected in run_both(import_hf(FIXTURES / "qwen2-tiny-gptq-int8"), after, "layer_1"):
        assert np.array_equal(actual, expected)
