"""Fit the cost model's parameters per chip on the published rows and predict every row.

    python bench/calibrate_cost_model.py [--write-descriptors] [--write-doc] [--models NAME ...]

For every model of ../shared/reference/hardware.md the script writes a random checkpoint
of the model's published config shape with ONE decoder layer (bf16, numpy; cached under
bench/out/shapes/), builds it with axc (specialize-groups with the row's KV cache and one
128-token prefill group, quantize-weights, set-activation-type bf16, tile/fuse/
double-buffer/allocate-ocm, lower-to-<chip>), emits the layer and post `.axmodel` files and
replays their command streams on the timing model (`axc.sim.cost`). Cost depends on
shapes only, so a model's figures are `layers x layer + post`:

    decode tok/s = 1 / (L * latency(layer, decode group) + latency(post))
    TTFT         = L * latency(layer, first prefill group) + latency(post)

Per chip family, two numbers are fitted, jointly, by least squares on the relative errors
of every published TTFT and decode row of the family:
- `ddr_efficiency` (DDR bandwidth x efficiency is what DMA streams at);
- `token_s`, a fixed cost per token of every group call (a 128-token prefill layer pays
  it 128 times, a decode step once per layer and once in post);
`half_rate` (the matrix engine's 16-bit MAC rate, a fraction of INT8) is not fitted but
stated per family (`HALF_RATE`, with its reason). Every figure is also predicted by the
fit with that figure left out (leave-one-out). "before" is the prior: `half_rate` 1/4, no
fixed cost, `ddr_efficiency` from ONE decode row (Qwen2.5-0.5B w8a16: 32 tok/s on AX650N,
10.3 tok/s on AX630C).
`CHECKS` are published figures outside the issue's table (the vendor's AX650N benchmark
page, StackFlow's boards, a model card's log): they are never fitted, only predicted with
the fitted parameters, so their errors say how the model does on rows it has not seen.
`--write-descriptors` stores the values in compiler/targets/descriptors.py, `--write-doc`
the tables in docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import ml_dtypes
import numpy as np

if TYPE_CHECKING:
    from axc.isa import Program
    from axc.targets import TargetDescriptor

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PREFILL = 128
NPU_MODE = "NPU1"
"""Pulsar2's documented default npu_mode; the published rows do not say otherwise."""
PRIOR_HALF_RATE = 0.25
"""The matrix rate of the "before" model: 1/4 of INT8, as a 16-bit multiply costs four 8-bit ones."""
HALF_RATE = {
    "AX650": (
        0.5,
        "prior, not fitted: AX650's public INT4 rate is 4x its INT8 rate (72 vs 18 TOPS), MAC cost scaling with "
        "the product of operand widths, so a 16-bit activation times an 8-bit weight costs two INT8 MACs",
    ),
    "AX620E": (
        0.25,
        "prior, not fitted: AX620E's INT4 rate is not public, so no evidence of width scaling: a 16-bit multiply "
        "costs four 8-bit ones",
    ),
}
"""The 16-bit matrix rate of each family (fraction of INT8), stated rather than fitted."""
STACKFLOW = "m5stack StackFlow benchmark/RESULTS.md"
UNPACK: dict[str, tuple[str, float, float] | None] = {
    "AX650": None,
    "AX620E": ("Qwen2.5-1.5B", 1029.41, 1219.54),
}
"""Where each family's s4 expansion rate comes from: None, no expansion pass (AX650 has an
int4 datapath: its INT4 rate is public); else (model, w8a16 TTFT ms, Int4 TTFT ms), a
published pair of one board and runtime (StackFlow's AX630C rows, not a row of the fit):
the Int4 prefill's extra time over the model's weights is the rate."""
EFFICIENCY_BASE = 0.5
LATTICE = 1.002
"""Resolution of the efficiency search: `ddr_efficiency = EFFICIENCY_BASE * LATTICE**k`."""
COARSE = range(-300, 241, 20)
"""The first sweep of `k`: `ddr_efficiency` from 0.27 to 0.81."""
T_MAX = 200e-6
"""The largest fixed cost per token searched (seconds)."""


@dataclass(frozen=True)
class Shape:
    """A model's published config (what the cost depends on)."""

    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    head_dim: int = 0
    note: str = ""


SHAPES: dict[str, Shape] = {
    "Qwen2.5-0.5B": Shape("qwen2", 896, 4864, 24, 14, 2, 151936, True),
    "Qwen2.5-1.5B": Shape("qwen2", 1536, 8960, 28, 12, 2, 151936, True),
    "Qwen2.5-3B": Shape("qwen2", 2048, 11008, 36, 16, 2, 151936, True),
    "Qwen2.5-7B": Shape("qwen2", 3584, 18944, 28, 28, 4, 152064, False),
    "Qwen2-0.5B": Shape("qwen2", 896, 4864, 24, 14, 2, 151936, True),
    "Qwen2-1.5B": Shape("qwen2", 1536, 8960, 28, 12, 2, 151936, True),
    "Qwen3-0.6B": Shape("llama", 1024, 3072, 28, 16, 8, 151936, True, 128, "Llama-shaped (q/k norms omitted, <0.1% of bytes)"),
    "Llama3.2-1B": Shape("llama", 2048, 8192, 16, 32, 8, 128256, True),
    "TinyLlama-1.1B": Shape("llama", 2048, 5632, 22, 32, 4, 32000, False),
    "MiniCPM-1.2B": Shape("llama", 1536, 3840, 52, 24, 8, 73440, True, 0, "Llama-shaped (MiniCPM's scalings change no shape)"),
    "Phi3-mini-3.8B": Shape("llama", 3072, 8192, 32, 32, 32, 32064, False, 0, "Llama-shaped (fused qkv/gate-up stored split)"),
    "Llama3-8B": Shape("llama", 4096, 14336, 32, 32, 8, 128256, False),
    "HY-MT1.5-1.8B": Shape("llama", 2048, 6144, 32, 16, 4, 120818, True, 128, "Llama-shaped (q/k norms omitted, <0.1% of bytes)"),
    "Qwen1.5-0.5B": Shape("qwen2", 1024, 2816, 24, 16, 16, 151936, True),
    "Qwen1.5-1.8B": Shape("qwen2", 2048, 5504, 24, 16, 16, 151936, False),
    "Qwen1.5-4B": Shape("qwen2", 2560, 6912, 40, 20, 20, 151936, False),
    "Llama3.2-3B": Shape("llama", 3072, 8192, 28, 24, 8, 128256, True),
    "MiniCPM-2.4B": Shape("llama", 2304, 5760, 40, 36, 36, 122753, True, 0, "Llama-shaped (MiniCPM's scalings change no shape)"),
    "Llama2-7B": Shape("llama", 4096, 11008, 32, 32, 32, 32000, False),
    "Qwen3-4B": Shape("llama", 2560, 9728, 36, 32, 8, 151936, True, 128, "Llama-shaped (q/k norms omitted, <0.1% of bytes)"),
}


@dataclass(frozen=True)
class Row:
    """One published result: model, chip, weights, KV cache, TTFT (ms) and decode tok/s."""

    label: str
    model: str
    chip: str
    weight: str = "s8"
    group: int | None = None
    kv: int = 1023
    ttft_ms: float | None = None
    tok_s: float | None = None
    note: str = ""
    source: str = ""

    @property
    def weights(self) -> str:
        """The weight format as the tables print it: `s8`, `s4 g128`."""
        return f"{self.weight}{' g' + str(self.group) if self.group else ''}"

    @property
    def build(self) -> tuple[str, str, str, int | None, int]:
        return (self.model, self.chip, self.weight, self.group, self.kv)


ROWS: tuple[Row, ...] = (
    Row("Qwen2.5-0.5B", "Qwen2.5-0.5B", "AX650N", ttft_ms=124, tok_s=32, note="calibration (128-token prompt)"),
    Row("Qwen2.5-0.5B GPTQ-Int8", "Qwen2.5-0.5B", "AX650", "s8", 128, ttft_ms=135.7, tok_s=34.0, note="12-token prompt"),
    Row("Qwen2.5-1.5B", "Qwen2.5-1.5B", "AX650N", ttft_ms=230, tok_s=11.5),
    Row("Qwen2.5-3B", "Qwen2.5-3B", "AX650N", ttft_ms=420, tok_s=5.8),
    Row("Qwen2.5-7B w8a16", "Qwen2.5-7B", "AX650", tok_s=2.6),
    Row("Qwen2.5-7B w4a16", "Qwen2.5-7B", "AX650", "s4", 128, tok_s=4.8),
    Row("Qwen2-0.5B", "Qwen2-0.5B", "AX650N", ttft_ms=122, tok_s=29.0),
    Row("Qwen2-0.5B", "Qwen2-0.5B", "AX630C", ttft_ms=360, tok_s=10.7),
    Row("Qwen2-1.5B", "Qwen2-1.5B", "AX650N", ttft_ms=230, tok_s=11.2),
    Row("Qwen2-1.5B", "Qwen2-1.5B", "AX630C", ttft_ms=1080, tok_s=3.7),
    Row("Qwen2.5-0.5B", "Qwen2.5-0.5B", "AX630C", tok_s=10.3, note="calibration (figure given by the issue)"),
    Row("Qwen2.5-0.5B w4a16", "Qwen2.5-0.5B", "AX630C", "s4", 128, ttft_ms=443, tok_s=12.5),
    Row("Qwen3-0.6B", "Qwen3-0.6B", "AX650", kv=2559, ttft_ms=173.7, tok_s=15.7, note="23-token prompt"),
    Row(
        "Qwen3-0.6B (as published)", "Qwen2.5-0.5B", "AX630C", ttft_ms=361.8, tok_s=10.3,
        note="built as Qwen2.5-0.5B: the figures are StackFlow's qwen2.5-coder-0.5B-ax630c (361.81 ms, 10.28 tok/s)",
    ),
    Row("Llama3.2-1B", "Llama3.2-1B", "AX650N", ttft_ms=183, tok_s=14.2),
    Row("Llama3.2-1B", "Llama3.2-1B", "AX630C", ttft_ms=880, tok_s=4.5),
    Row("TinyLlama-1.1B", "TinyLlama-1.1B", "AX650N", ttft_ms=200, tok_s=16.5),
    Row("TinyLlama-1.1B", "TinyLlama-1.1B", "AX630C", ttft_ms=880, tok_s=5.4),
    Row("MiniCPM-1.2B", "MiniCPM-1.2B", "AX650N", ttft_ms=350, tok_s=11.3),
    Row("MiniCPM-1.2B", "MiniCPM-1.2B", "AX630C", ttft_ms=1100, tok_s=3.9),
    Row("Phi3-mini 3.8B", "Phi3-mini-3.8B", "AX650N", ttft_ms=580, tok_s=4.5),
    Row("Llama3-8B", "Llama3-8B", "AX650N", ttft_ms=880, tok_s=2.5),
    Row("InternVL2_5-1B (LLM part)", "Qwen2.5-0.5B", "AX650", tok_s=32, note="decode only; TTFT includes the image"),
    Row("InternVL2_5-1B (LLM part)", "Qwen2.5-0.5B", "AX630C", tok_s=11, note="decode only; TTFT includes the image"),
)
CALIBRATION = {"AX650": ROWS[0], "AX620E": ROWS[10]}
AXLLM_BENCH = "AXERA-TECH/ax-llm benchmark/LLM_Benchmark_AX650N.md @e79bcaa (AXera-Pi Pro, Pulsar2 3.2)"
STACKFLOW_AT = f"{STACKFLOW} @7133a76"
CHECKS: tuple[Row, ...] = (
    Row("Qwen1.5-0.5B", "Qwen1.5-0.5B", "AX650N", tok_s=28.0, source=AXLLM_BENCH),
    Row("Qwen1.5-1.8B", "Qwen1.5-1.8B", "AX650N", tok_s=9.0, source=AXLLM_BENCH),
    Row("Qwen1.5-4B", "Qwen1.5-4B", "AX650N", tok_s=4.2, source=AXLLM_BENCH),
    Row("Llama3.2-3B", "Llama3.2-3B", "AX650N", ttft_ms=450, tok_s=5.5, source=AXLLM_BENCH),
    Row("MiniCPM-2.4B", "MiniCPM-2.4B", "AX650N", tok_s=6.0, source=AXLLM_BENCH),
    Row("Llama2-7B", "Llama2-7B", "AX650N", tok_s=2.7, source=AXLLM_BENCH),
    Row(
        "Qwen3-4B", "Qwen3-4B", "AX650", kv=2559, tok_s=4.22, note="the board's runner (`main_ax650`), 16-token prompt",
        source="AXERA-TECH/Qwen3-4B model card (Hugging Face), log of run_qwen3_4b_int8_ctx_ax650.sh",
    ),
    Row("qwen2.5-0.5B-Int4", "Qwen2.5-0.5B", "AX650N", "s4", 128, ttft_ms=134.49, tok_s=42.34, note="Sipeed board", source=STACKFLOW_AT),
    Row("qwen2.5-1.5B-Int4", "Qwen2.5-1.5B", "AX650N", "s4", 128, ttft_ms=282.07, tok_s=18.31, note="Sipeed board", source=STACKFLOW_AT),
    Row("qwen2.5-3B-Int4", "Qwen2.5-3B", "AX650N", "s4", 128, ttft_ms=543.67, tok_s=9.73, note="Sipeed board", source=STACKFLOW_AT),
    Row("qwen2.5-7B-Int4", "Qwen2.5-7B", "AX650N", "s4", 128, ttft_ms=1136.33, tok_s=4.54, note="Sipeed board", source=STACKFLOW_AT),
    Row(
        "deepseek-r1-1.5B", "Qwen2.5-1.5B", "AX630C", ttft_ms=1075.04, tok_s=3.57,
        note="DeepSeek-R1-Distill-Qwen-1.5B has Qwen2.5-1.5B's shape", source=STACKFLOW_AT,
    ),
    Row("openbuddy-llama3.2-1B", "Llama3.2-1B", "AX630C", ttft_ms=891.02, tok_s=4.52, source=STACKFLOW_AT),
)
"""Published figures outside the issue's table (hardware.md), never fitted: every one is
predicted by the parameters fitted on ROWS, so each error is out of sample. (StackFlow's
AX630C Qwen2.5-1.5B pair derives the s4 expansion rate, so it is not a check.)"""


def layer_weights(shape: Shape) -> int:
    """Weights of one decoder layer (the four projections and the gated MLP)."""
    head_dim = shape.head_dim or shape.hidden // shape.heads
    q, kv = shape.heads * head_dim, shape.kv_heads * head_dim
    return shape.hidden * (q + 2 * kv) + q * shape.hidden + 3 * shape.hidden * shape.intermediate


def unpack_per_cycle(family: str) -> tuple[float, str]:
    """The s4 expansion rate of `family` (weights per cycle per core) and its reason."""
    from axc.targets import get_target

    source = UNPACK[family]
    if source is None:
        return 0.0, (
            "stated, not fitted: AX650 publishes an INT4 rate (72 TOPS, 4x INT8), an int4 datapath, so no "
            "expansion pass before the MACs (its one s4 row, Qwen2.5-7B w4a16, decodes as fast as its bytes)"
        )
    model, w8, w4 = source
    shape = SHAPES[model]
    weights = shape.layers * layer_weights(shape)
    per_s = weights / ((w4 - w8) * 1e-3)
    return per_s / get_target(family).clock_hz, (
        f"derived, not fitted: no public INT4 rate, so s4 weights are expanded to 16 bits before the MACs; "
        f"{STACKFLOW} (AX630C): {model} TTFT {w8} ms w8a16, {w4} ms Int4, {w4 - w8:.2f} ms more for "
        f"{shape.layers} x {layer_weights(shape) / 1e6:.2f}M weights = {per_s / 1e9:.3f}e9 weights/s on one core "
        f"(a pair outside the fitted rows)"
    )


def write_shape(name: str, shape: Shape) -> Path:
    """A one-layer random bf16 checkpoint of `shape` (cached)."""
    import safetensors.numpy
    import transformers

    directory = OUT / "shapes" / name
    if (directory / "model.safetensors").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    head_dim = shape.head_dim or shape.hidden // shape.heads
    common = dict(
        vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=1, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        tie_word_embeddings=shape.tied, max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1e6,
    )
    if shape.model_type == "qwen2":
        config = transformers.Qwen2Config(**common)
    else:
        config = transformers.LlamaConfig(**common, head_dim=head_dim)
    config.save_pretrained(directory)
    rng = np.random.default_rng(0)

    def random(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims, dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)

    q, kv = shape.heads * head_dim, shape.kv_heads * head_dim
    p = "model.layers.0."
    tensors = {
        "model.embed_tokens.weight": random(shape.vocab, shape.hidden),
        "model.norm.weight": np.ones(shape.hidden, ml_dtypes.bfloat16),
        p + "input_layernorm.weight": np.ones(shape.hidden, ml_dtypes.bfloat16),
        p + "post_attention_layernorm.weight": np.ones(shape.hidden, ml_dtypes.bfloat16),
        p + "self_attn.q_proj.weight": random(q, shape.hidden),
        p + "self_attn.k_proj.weight": random(kv, shape.hidden),
        p + "self_attn.v_proj.weight": random(kv, shape.hidden),
        p + "self_attn.o_proj.weight": random(shape.hidden, q),
        p + "mlp.gate_proj.weight": random(shape.intermediate, shape.hidden),
        p + "mlp.up_proj.weight": random(shape.intermediate, shape.hidden),
        p + "mlp.down_proj.weight": random(shape.hidden, shape.intermediate),
    }
    if shape.model_type == "qwen2":
        for proj, width in (("q", q), ("k", kv), ("v", kv)):
            tensors[p + f"self_attn.{proj}_proj.bias"] = random(width)
    if not shape.tied:
        tensors["lm_head.weight"] = random(shape.vocab, shape.hidden)
    safetensors.numpy.save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


@dataclass
class Built:
    """The command streams of one build (cost depends on nothing else)."""

    target: TargetDescriptor
    decode: Program
    prefill: Program
    post: Program
    prefill_tokens: int
    seconds: float
    last_prefill: Program  # the prefill group with the longest history


def build(
    model: str, chip: str, weight: str, group: int | None, kv: int,
    lasts: tuple[int, ...] = (PREFILL,), conv_eu: bool = False,
) -> Built:
    """One layer and post of `model` for `chip`, prefill groups of histories 0 and `lasts`
    (`conv_eu`: FLOAT_MATMUL_USE_CONV_EU, float matmuls on AX650's convolution units)."""
    from axc.axmodel import write_axmodel
    from axc.binding import store_for
    from axc.codegen.emit import find_model, to_axmodel
    from axc.codegen.payload import read_payload
    from axc.dialects import make_context
    from axc.frontend.hf_import import import_hf
    from axc.passes.allocate_ocm import AllocateOcm
    from axc.passes.double_buffer import DoubleBuffer
    from axc.passes.fuse import Fuse
    from axc.passes.lower_to_ax620e import LowerToAx620e
    from axc.passes.lower_to_ax650 import LowerToAx650
    from axc.passes.quantize_weights import QuantizeWeights
    from axc.passes.set_activation_type import SetActivationType
    from axc.passes.specialize_groups import SpecializeGroups
    from axc.passes.tile import Tile
    from axc.sim.cost import group_tokens
    from axc.targets import get_target

    start = time.perf_counter()
    directory = write_shape(model, SHAPES[model])
    target = get_target(chip, NPU_MODE)
    module = import_hf(directory)
    ctx = make_context()
    SpecializeGroups(kv_cache_len=kv, prefill_len=PREFILL, last_kv_cache_len=lasts).apply(ctx, module)
    QuantizeWeights(weight_type=weight, group_size=group, post_weight_type="s8").apply(ctx, module)
    SetActivationType(hidden="bf16").apply(ctx, module)
    Tile(target=chip, npu_mode=NPU_MODE).apply(ctx, module)
    for p in (Fuse(), DoubleBuffer(), AllocateOcm()):
        p.apply(ctx, module)
    (LowerToAx650(float_matmul_use_conv_eu=conv_eu) if target.family == "AX650" else LowerToAx620e()).apply(ctx, module)
    store = store_for(module)
    variant = ("_last" + "-".join(map(str, lasts)) if lasts != (PREFILL,) else "") + ("_conv" if conv_eu else "")
    out = OUT / "cost" / f"{model}_{chip}_{weight}{group or ''}_kv{kv}{variant}"
    out.mkdir(parents=True, exist_ok=True)
    payloads = {}
    for unit in ("layer_0", "post"):  # the binary is the truth: estimate from the emitted files
        path = out / f"{unit}.axmodel"
        write_axmodel(path, to_axmodel(find_model(module, unit), store))
        payloads[unit] = read_payload(str(path))
    layer, post = payloads["layer_0"], payloads["post"]
    return Built(
        target, layer.programs[0], layer.programs[1], post.programs[0], group_tokens(layer.model.groups[1]),
        time.perf_counter() - start, layer.programs[-1],
    )


@dataclass(frozen=True)
class Params:
    """The cost model's calibrated parameters of one chip family."""

    half_rate: float
    ddr_efficiency: float
    token_s: float

    def target(self, built: Built) -> TargetDescriptor:
        from axc.targets import with_fitted

        return with_fitted(built.target, self.half_rate, self.ddr_efficiency, self.token_s)


def predict(built: Built, layers: int, params: Params) -> tuple[float, float]:
    """(decode tok/s, TTFT ms) of a `layers`-layer model."""
    from axc.sim.cost import estimate

    target = params.target(built)
    decode = estimate(built.decode, target).latency_s
    prefill = estimate(built.prefill, target, built.prefill_tokens).latency_s
    post = estimate(built.post, target).latency_s
    return 1.0 / (layers * decode + post), (layers * prefill + post) * 1e3


def calibrate_ddr(built: Built, layers: int, tok_s: float, params: Params) -> float:
    """The efficiency at which the model decodes at `tok_s` (bisection; latency falls with it).
    Only the "before" model uses it (the prior: one decode row fixes the bandwidth)."""
    low, high = 0.01, 1.0
    if predict(built, layers, dataclasses.replace(params, ddr_efficiency=high))[0] < tok_s:
        return high
    for _ in range(40):
        mid = (low + high) / 2
        if predict(built, layers, dataclasses.replace(params, ddr_efficiency=mid))[0] < tok_s:
            low = mid
        else:
            high = mid
    return high


def efficiency(k: int) -> float:
    return EFFICIENCY_BASE * LATTICE**k


@dataclass
class JointFit:
    """Least squares of one chip family's published TTFT and decode rows over
    (`ddr_efficiency`, `token_s`), `half_rate` fixed at the family's prior.

    For an efficiency on the lattice `efficiency(k)` the replays give each row's time
    without the fixed cost: `A_i(k) = L_i * prefill_i + post_i` (TTFT) and `D_i(k) = L_i *
    decode_i + post_i` (one decode step). The fixed cost `t` per token of a call adds
    `n_i = L_i * T + 1` token-calls to a TTFT and `m_i = L_i + 1` to a step, so
    `TTFT_i = A_i + n_i t` and `tok/s_i = 1 / (D_i + m_i t)`; for each `k` the best `t >= 0`
    is a one-dimensional search on these sums (no replays), and only `k` is searched over
    the replays (a coarse sweep, then single lattice steps).
    """

    rows: list[Row]
    builds: dict[tuple, Built]
    half_rate: float
    replays: dict[int, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)

    def replay(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(A, D) of every row at lattice point `k`, in seconds."""
        if k not in self.replays:
            from axc.sim.cost import estimate

            params = Params(self.half_rate, efficiency(k), 0.0)
            ttft, step = [], []
            for row in self.rows:
                built, layers = self.builds[row.build], SHAPES[row.model].layers
                target = params.target(built)
                post = estimate(built.post, target).latency_s
                prefill = estimate(built.prefill, target, built.prefill_tokens).latency_s if row.ttft_ms else 0.0
                ttft.append(layers * prefill + post)
                step.append(layers * estimate(built.decode, target).latency_s + post if row.tok_s else 0.0)
            self.replays[k] = (np.asarray(ttft), np.asarray(step))
        return self.replays[k]

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Token-calls of each row's TTFT (`L * T + 1`) and of one decode step (`L + 1`)."""
        n = [SHAPES[r.model].layers * self.builds[r.build].prefill_tokens + 1 for r in self.rows]
        m = [SHAPES[r.model].layers + 1 for r in self.rows]
        return np.asarray(n, float), np.asarray(m, float)

    def errors(self, k: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Relative TTFT and decode errors of every row (NaN where a row has no such figure)."""
        (a, d), (n, m) = self.replay(k), self.counts()
        ttft = np.asarray([r.ttft_ms or np.nan for r in self.rows], float) / 1e3
        tok = np.asarray([r.tok_s or np.nan for r in self.rows], float)
        return (a + n * t - ttft) / ttft, (1.0 / (d + m * t) - tok) / tok

    def sse(self, k: int, t: float, keep: np.ndarray) -> float:
        """Sum of squared relative errors over the figures in `keep` ([rows, 2]: TTFT, decode)."""
        errors = np.stack(self.errors(k, t), axis=1)
        return float(np.sum(np.where(keep & ~np.isnan(errors), errors, 0.0) ** 2))

    def solve(self, k: int, keep: np.ndarray) -> tuple[float, float]:
        """(squared error, best fixed cost t >= 0 in seconds) at lattice point `k`: golden
        section on t (the error is unimodal in it)."""
        low, high = 0.0, T_MAX
        ratio = (5**0.5 - 1) / 2
        for _ in range(60):
            a, b = high - ratio * (high - low), low + ratio * (high - low)
            if self.sse(k, a, keep) <= self.sse(k, b, keep):
                high = b
            else:
                low = a
        t = (low + high) / 2
        return self.sse(k, t, keep), t

    def fit(self, keep: np.ndarray, start: int | None = None) -> tuple[int, float]:
        """(lattice point, fixed cost per token in seconds) of the least-squares fit on `keep`."""
        if start is None:
            start = min(COARSE, key=lambda k: self.solve(k, keep)[0])
        best = start
        for step in (1, -1):
            while self.solve(best + step, keep)[0] < self.solve(best, keep)[0]:
                best += step
        return best, self.solve(best, keep)[1]


@dataclass
class FamilyFit:
    """One chip family's parameters before (prior matrix rate 1/4, no fixed cost, the
    efficiency from one decode row) and after the joint fit, with leave-one-out predictions."""

    before: Params
    after: Params
    rows: list[Row]
    rms: tuple[float, float]  # TTFT, decode
    loo: dict[Row, tuple[float | None, float | None]]  # (TTFT ms, decode tok/s) with that figure left out


def fit_family(family: str, rows: list[Row], builds: dict[tuple, Built]) -> FamilyFit:
    """Fit `ddr_efficiency` and `token_s` on every published TTFT and decode row of the family."""
    calibration = CALIBRATION[family]
    anchor, layers, tok_s = builds[calibration.build], SHAPES[calibration.model].layers, float(calibration.tok_s or 0)
    before = Params(PRIOR_HALF_RATE, 0.0, 0.0)
    before = dataclasses.replace(before, ddr_efficiency=calibrate_ddr(anchor, layers, tok_s, before))
    fitted_rows = [r for r in rows if r.build in builds and (r.ttft_ms or r.tok_s)]
    fit = JointFit(fitted_rows, builds, HALF_RATE[family][0])
    keep = np.ones((len(fitted_rows), 2), bool)
    k, t = fit.fit(keep)
    ttft_errors, decode_errors = fit.errors(k, t)
    rms = tuple(float(np.sqrt(np.nanmean(e**2))) for e in (ttft_errors, decode_errors))
    loo: dict[Row, tuple[float | None, float | None]] = {}
    for i, row in enumerate(fitted_rows):  # refit without each figure of row i, predict it
        predicted: list[float | None] = []
        for column, figure in enumerate((row.ttft_ms, row.tok_s)):
            if figure is None:
                predicted.append(None)
                continue
            left = keep.copy()
            left[i, column] = False
            k_i, t_i = fit.fit(left, k)
            error = fit.errors(k_i, t_i)[column][i]
            predicted.append(figure * (1 + error))
        loo[row] = (predicted[0], predicted[1])
    return FamilyFit(before, Params(fit.half_rate, efficiency(k), t), fitted_rows, rms, loo)  # type: ignore[arg-type]


def error(predicted: float, published: float | None) -> str:
    return "" if published is None else f"{(predicted - published) / published * 100:+.0f}%"


@dataclass(frozen=True)
class Result:
    """One row's predictions before and after the fit (NaN: the build failed)."""

    row: Row
    before: tuple[float, float]  # (decode tok/s, TTFT ms)
    after: tuple[float, float]
    loo: tuple[float | None, float | None]  # (TTFT ms, decode tok/s) predicted with the figure left out


def cells(value: float | None, published: float | None, digits: int) -> str:
    return " | " if value is None or published is None else f"{value:.{digits}f} | {error(value, published)}"


def table(results: list[Result]) -> str:
    lines = [
        "| model | chip | weights | KV | TTFT ms published | before | error | fitted | error | leave-one-out | error "
        "| decode tok/s published | before | error | fitted | error | leave-one-out | error | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        row = r.row
        weights = row.weights
        ttft = row.ttft_ms if row.ttft_ms is not None else "-"
        tok = row.tok_s if row.tok_s is not None else "-"
        if r.after[0] != r.after[0]:  # NaN: the build failed
            lines.append(f"| {row.label} | {row.chip} | {weights} | {row.kv} | {ttft} |" + " - | |" * 3 + f" {tok} |" + " - | |" * 3 + " build fails (see below) |")
            continue
        lines.append(
            f"| {row.label} | {row.chip} | {weights} | {row.kv} | {ttft} | "
            f"{r.before[1]:.0f} | {error(r.before[1], row.ttft_ms)} | {r.after[1]:.0f} | {error(r.after[1], row.ttft_ms)} | "
            f"{cells(r.loo[0], row.ttft_ms, 0)} | {tok} | {r.before[0]:.1f} | {error(r.before[0], row.tok_s)} | "
            f"{r.after[0]:.1f} | {error(r.after[0], row.tok_s)} | {cells(r.loo[1], row.tok_s, 1)} | {row.note} |"
        )
    return "\n".join(lines)


def check_table(results: list[Result]) -> str:
    """The rows the fit never saw: published figure, prediction, error, source."""
    lines = [
        "| model | chip | weights | KV | TTFT ms published | predicted | error | decode tok/s published | predicted | error | source |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        row = r.row
        weights = row.weights
        source = row.source + (f"; {row.note}" if row.note else "")
        lines.append(
            f"| {row.label} | {row.chip} | {weights} | {row.kv} | {row.ttft_ms if row.ttft_ms is not None else '-'} | "
            f"{cells(r.after[1], row.ttft_ms, 0)} | {row.tok_s if row.tok_s is not None else '-'} | "
            f"{cells(r.after[0], row.tok_s, 2)} | {source} |"
        )
    ttft = [(r.after[1] - r.row.ttft_ms) / r.row.ttft_ms for r in results if r.row.ttft_ms and r.after[1] == r.after[1]]
    decode = [(r.after[0] - r.row.tok_s) / r.row.tok_s for r in results if r.row.tok_s and r.after[0] == r.after[0]]
    lines.append("")
    lines.append(
        f"Out of sample: TTFT {sum(abs(e) <= 0.20 for e in ttft)} of {len(ttft)} within ±20% "
        f"({min(ttft, default=0) * 100:+.0f}% … {max(ttft, default=0) * 100:+.0f}%), decode "
        f"{sum(abs(e) <= 0.12 for e in decode)} of {len(decode)} within ±12% "
        f"({min(decode, default=0) * 100:+.0f}% … {max(decode, default=0) * 100:+.0f}%)."
    )
    return "\n".join(lines)


def rms(values: list[float]) -> str:
    return f"{float(np.sqrt(np.mean(np.square(values)))) * 100:.1f}%" if values else "-"


def parameter_table(fits: dict[str, FamilyFit]) -> str:
    from axc.targets import get_target

    lines = [
        "| chip family | `half_rate` (16-bit MACs / INT8, not fitted) | 16-bit rate per core | `ddr_efficiency` (fitted) "
        "| `token_s` (fitted) | rows fitted (TTFT + decode) | TTFT rms error fitted / left out | decode rms error fitted / left out |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for family, fit in fits.items():
        target = get_target(family)
        per_core = target.matrix.peak_ops_per_s("s8") * fit.after.half_rate / 2e12
        ttft = [r for r in fit.rows if r.ttft_ms]
        decode = [r for r in fit.rows if r.tok_s]
        loo_ttft = [(fit.loo[r][0] - r.ttft_ms) / r.ttft_ms for r in ttft]  # type: ignore[operator]
        loo_decode = [(fit.loo[r][1] - r.tok_s) / r.tok_s for r in decode]  # type: ignore[operator]
        lines.append(
            f"| {family} | {fit.after.half_rate:g} | {per_core:.2f} TMAC/s | {fit.after.ddr_efficiency:.4f} "
            f"(before {fit.before.ddr_efficiency:.4f}, one decode row) | {fit.after.token_s * 1e6:.1f} us "
            f"({fit.after.token_s * PREFILL * 1e3:.2f} ms per {PREFILL}-token layer call) | {len(ttft)} + {len(decode)} "
            f"| {fit.rms[0] * 100:.1f}% / {rms(loo_ttft)} | {fit.rms[1] * 100:.1f}% / {rms(loo_decode)} |"
        )
    return "\n".join(lines)


def set_figure(text: str, family: str, name: str, value: float, why: str) -> str:
    """`text` with `name=Assumed(value, why)` in `family`'s ChipSpec block."""
    start = text.index(f'    "{family}": ChipSpec(')
    end = text.index("\n    ),\n", start)
    pattern = re.compile(r"(\n        " + name + r"=)Assumed\(\s*[0-9.e-]+,\s*\".*?\"\s*\)", re.S)
    number = f"{value:.4f}" if value >= 1e-3 or not value else f"{value:.4g}"
    block, count = pattern.subn(lambda m: f'{m.group(1)}Assumed(\n            {number}, "{why}"\n        )', text[start:end])
    assert count == 1, (family, name)
    return text[:start] + block + text[end:]


def write_descriptors(fits: dict[str, FamilyFit]) -> None:
    path = ROOT / "compiler" / "targets" / "descriptors.py"
    text = path.read_text()
    for family, fit in fits.items():
        ttft, decode = sum(1 for r in fit.rows if r.ttft_ms), sum(1 for r in fit.rows if r.tok_s)
        rows = f"least squares on the {ttft} TTFT and {decode} decode rows published for {family}, jointly with"
        text = set_figure(text, family, "half_rate", fit.after.half_rate, HALF_RATE[family][1])
        text = set_figure(text, family, "unpack_per_cycle", *unpack_per_cycle(family))
        text = set_figure(text, family, "token_s", fit.after.token_s, f"fitted (bench/calibrate_cost_model.py): {rows} ddr_efficiency")
        text = set_figure(text, family, "ddr_efficiency", fit.after.ddr_efficiency, f"fitted (bench/calibrate_cost_model.py): {rows} token_s")
    path.write_text(text)


def replace_between(text: str, marker: str, body: str) -> str:
    start, end = text.index(f"<!-- {marker} -->"), text.index(f"<!-- /{marker} -->")
    return text[: start + len(f"<!-- {marker} -->")] + "\n" + body + "\n" + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-descriptors", action="store_true", help="store the fitted parameters")
    parser.add_argument("--write-doc", action="store_true", help="write the tables into docs/performance.md")
    parser.add_argument("--models", nargs="*", help="only these models (default: all rows)")
    args = parser.parse_args()
    from axc.errors import AxcError
    from axc.targets import get_target

    rows = [r for r in ROWS if not args.models or r.model in args.models]
    checks = [r for r in CHECKS if not args.models or r.model in args.models]
    builds: dict[tuple, Built] = {}
    failed: dict[tuple, str] = {}
    for row in rows + checks:
        if row.build not in builds and row.build not in failed:
            try:
                builds[row.build] = build(*row.build)
                print(f"built {row.build} in {builds[row.build].seconds:.1f} s", flush=True)
            except AxcError as error:  # reported in the table, as the vendor's `ocm alloc` failures are
                failed[row.build] = str(error)
                print(f"cannot build {row.build}: {error}", flush=True)
    fits: dict[str, FamilyFit] = {}
    for family, calibration in CALIBRATION.items():
        family_rows = [r for r in rows if get_target(r.chip).family == family]
        if calibration.build in builds:
            fits[family] = fit = fit_family(family, family_rows, builds)
            a = fit.after
            print(
                f"{family}: half_rate = {a.half_rate:g} (prior), ddr_efficiency = {a.ddr_efficiency:.4f}, "
                f"token_s = {a.token_s * 1e6:.2f} us (rms TTFT {fit.rms[0] * 100:.1f}%, decode {fit.rms[1] * 100:.1f}%)",
                flush=True,
            )

    def results_of(selected: list[Row], before: bool = True) -> list[Result]:
        """Each row's predictions; `before` also the prior's (the checks print only the fit's)."""
        results = []
        for row in selected:
            family = get_target(row.chip).family
            if row.build in failed or family not in fits:
                results.append(Result(row, (float("nan"),) * 2, (float("nan"),) * 2, (None, None)))  # type: ignore[arg-type]
                continue
            built, layers, fit = builds[row.build], SHAPES[row.model].layers, fits[family]
            after = predict(built, layers, fit.after)
            prior = predict(built, layers, fit.before) if before else (float("nan"),) * 2
            results.append(Result(row, prior, after, fit.loo.get(row, (None, None))))
        return results

    results, checked = results_of(rows), results_of(checks, before=False)
    text = table(results)
    check_text = check_table(checked)
    for key, reason in failed.items():
        text += f"\n\nBuild failure of {key[0]} on {key[1]}: `{reason}`"
    parameters = parameter_table(fits)
    print(parameters)
    print(text)
    print(check_text)
    (OUT / "cost_model.json").write_text(
        json.dumps(
            {
                "npu_mode": NPU_MODE,
                "fits": {f: {"before": dataclasses.asdict(v.before), "after": dataclasses.asdict(v.after)} for f, v in fits.items()},
                "rows": [
                    dict(
                        dataclasses.asdict(r.row), before_tok_s=r.before[0], before_ttft_ms=r.before[1],
                        predicted_tok_s=r.after[0], predicted_ttft_ms=r.after[1], loo_ttft_ms=r.loo[0], loo_tok_s=r.loo[1],
                    )
                    for r in results
                ],
                "checks": [
                    dict(dataclasses.asdict(r.row), predicted_tok_s=r.after[0], predicted_ttft_ms=r.after[1])
                    for r in checked
                ],
            },
            indent=2,
        )
    )
    if args.write_descriptors:
        write_descriptors(fits)
    if args.write_doc:
        doc = ROOT / "docs" / "performance.md"
        updated = replace_between(replace_between(doc.read_text(), "calibration", parameters), "table", text)
        doc.write_text(replace_between(updated, "checks", check_text))


if __name__ == "__main__":
    main()
