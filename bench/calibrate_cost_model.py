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

Per chip family, three numbers come from the published rows:
- `ddr_efficiency` (DDR bandwidth x efficiency is what DMA streams at) reproduces ONE decode
  figure, Qwen2.5-0.5B w8a16: 32 tok/s on AX650N, 10.3 tok/s on AX630C (bisection);
- `half_rate` (the matrix engine's effective 16-bit MAC rate, a fraction of INT8) and
  `token_s` (a fixed cost per token of every group call: a 128-token prefill layer pays it
  128 times, a decode step once per layer) minimise the relative squared TTFT error over
  every published TTFT row of the family (least squares);
the two steps alternate until both settle. Each TTFT row is also predicted by a fit that
leaves it out (leave-one-out). "before" is the prior: `half_rate` 1/4, no fixed cost.
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
"""The matrix rate before fitting: 1/4 of INT8, as a 16-bit multiply costs four 8-bit ones."""
LATTICE = 1.005
"""Resolution of the matrix-rate search: `half_rate = PRIOR_HALF_RATE * LATTICE**k`."""
COARSE = range(-140, 421, 20)
"""The first sweep of `k`: `half_rate` from 0.12 to 2.0."""


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
    Row("Qwen3-0.6B", "Qwen3-0.6B", "AX630C", ttft_ms=361.8, tok_s=10.3),
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
    """The cost model's fitted parameters of one chip family."""

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
    """The efficiency at which the model decodes at `tok_s` (bisection; latency falls with it)."""
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


def half_rate(k: int) -> float:
    return PRIOR_HALF_RATE * LATTICE**k


@dataclass
class PrefillFit:
    """Least squares of the TTFT rows of one chip over (half_rate, token_s), `ddr_efficiency` fixed.

    For a matrix rate on the lattice `half_rate(k)` the replayed TTFT without the fixed cost
    is `A_i(k) = L_i * prefill_i(k) + post_i(k)`; the fixed cost enters linearly, `TTFT_i =
    A_i(k) + n_i * t` with `n_i = L_i * T + 1` token-calls (T prefill tokens per layer, one
    for post), so the `t >= 0` minimising the relative squared error is closed-form and only
    `k` is searched (a coarse sweep, then single lattice steps).
    """

    rows: list[Row]
    builds: dict[tuple, Built]
    ddr_efficiency: float
    replays: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)

    def replay(self, k: int) -> np.ndarray:
        if k not in self.replays:
            from axc.sim.cost import estimate

            params = Params(half_rate(k), self.ddr_efficiency, 0.0)
            values = []
            for row in self.rows:
                built = self.builds[row.build]
                target = params.target(built)
                prefill = estimate(built.prefill, target, built.prefill_tokens).latency_s
                values.append((SHAPES[row.model].layers * prefill + estimate(built.post, target).latency_s) * 1e3)
            self.replays[k] = np.asarray(values)
        return self.replays[k]

    def calls(self) -> np.ndarray:
        """Token-calls of each row's TTFT: `L * T` in the layers and one in post."""
        return np.asarray([SHAPES[r.model].layers * self.builds[r.build].prefill_tokens + 1 for r in self.rows], float)

    def solve(self, k: int, keep: np.ndarray) -> tuple[float, float]:
        """(relative squared error, fixed cost per token in ms) at lattice point `k` over the rows in `keep`."""
        replay, calls = self.replay(k)[keep], self.calls()[keep]
        published = np.asarray([r.ttft_ms for r in self.rows], float)[keep]
        w = 1.0 / published**2
        fixed = max(0.0, float(np.sum(w * calls * (published - replay)) / np.sum(w * calls * calls)))
        return float(np.sum(w * (replay + calls * fixed - published) ** 2)), fixed

    def predict(self, k: int, fixed_ms: float, i: int) -> float:
        return float(self.replay(k)[i] + self.calls()[i] * fixed_ms)

    def fit(self, keep: np.ndarray, start: int | None = None) -> tuple[int, float, float]:
        """(lattice point, fixed cost per token in ms, rms relative error) of the least-squares fit on `keep`."""
        if start is None:
            start = min(COARSE, key=lambda k: self.solve(k, keep)[0])
        best = start
        for step in (1, -1):
            while self.solve(best + step, keep)[0] < self.solve(best, keep)[0]:
                best += step
        sse, fixed = self.solve(best, keep)
        return best, fixed, (sse / int(keep.sum())) ** 0.5


@dataclass
class FamilyFit:
    """One chip family's parameters before (prior matrix rate, no fixed cost) and after the fit."""

    before: Params
    after: Params
    rows: list[Row]
    rms: float
    loo: dict[Row, float]
    rounds: int


def fit_family(family: str, rows: list[Row], builds: dict[tuple, Built]) -> FamilyFit:
    """Alternate the decode calibration of `ddr_efficiency` and the TTFT least squares until both settle."""
    calibration = CALIBRATION[family]
    anchor, layers, tok_s = builds[calibration.build], SHAPES[calibration.model].layers, float(calibration.tok_s or 0)
    params = Params(PRIOR_HALF_RATE, 0.0, 0.0)
    params = dataclasses.replace(params, ddr_efficiency=calibrate_ddr(anchor, layers, tok_s, params))
    before = params
    ttft_rows = [r for r in rows if r.ttft_ms is not None and r.build in builds]
    start: int | None = None
    for rounds in range(1, 7):
        fit = PrefillFit(ttft_rows, builds, params.ddr_efficiency)
        keep = np.ones(len(ttft_rows), bool)
        k, fixed_ms, rms = fit.fit(keep, start)
        fitted = Params(half_rate(k), params.ddr_efficiency, fixed_ms / 1e3)
        fitted = dataclasses.replace(fitted, ddr_efficiency=calibrate_ddr(anchor, layers, tok_s, fitted))
        settled = k == start and abs(fitted.ddr_efficiency - params.ddr_efficiency) < 1e-4
        params, start = fitted, k
        if settled:
            break
    loo: dict[Row, float] = {}
    for i, row in enumerate(ttft_rows):  # refit without row i, predict row i
        keep = np.arange(len(ttft_rows)) != i
        k_i, fixed_i, _ = fit.fit(keep, start)
        loo[row] = fit.predict(k_i, fixed_i, i)
    return FamilyFit(before, params, ttft_rows, rms, loo, rounds)


def error(predicted: float, published: float | None) -> str:
    return "" if published is None else f"{(predicted - published) / published * 100:+.0f}%"


@dataclass(frozen=True)
class Result:
    """One row's predictions before and after the fit (NaN: the build failed)."""

    row: Row
    before: tuple[float, float]  # (decode tok/s, TTFT ms)
    after: tuple[float, float]
    loo_ttft: float | None


def table(results: list[Result]) -> str:
    lines = [
        "| model | chip | weights | KV | TTFT ms published | before | error | fitted | error | leave-one-out | error "
        "| decode tok/s published | before | error | after | error | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        row = r.row
        weights = f"{row.weight}{' g' + str(row.group) if row.group else ''}"
        ttft = row.ttft_ms if row.ttft_ms is not None else "-"
        tok = row.tok_s if row.tok_s is not None else "-"
        if r.after[0] != r.after[0]:  # NaN: the build failed
            lines.append(f"| {row.label} | {row.chip} | {weights} | {row.kv} | {ttft} | - | | - | | - | | {tok} | - | | - | | build fails (see below) |")
            continue
        loo = "" if r.loo_ttft is None else f"{r.loo_ttft:.0f} | {error(r.loo_ttft, row.ttft_ms)}"
        lines.append(
            f"| {row.label} | {row.chip} | {weights} | {row.kv} | {ttft} | "
            f"{r.before[1]:.0f} | {error(r.before[1], row.ttft_ms)} | {r.after[1]:.0f} | {error(r.after[1], row.ttft_ms)} | "
            f"{loo or ' | '} | {tok} | {r.before[0]:.1f} | {error(r.before[0], row.tok_s)} | "
            f"{r.after[0]:.1f} | {error(r.after[0], row.tok_s)} | {row.note} |"
        )
    return "\n".join(lines)


def parameter_table(fits: dict[str, FamilyFit]) -> str:
    from axc.targets import get_target

    lines = [
        "| chip family | `half_rate` (16-bit MACs / INT8) | 16-bit rate per core | `token_s` | `ddr_efficiency` "
        "| TTFT rows fitted | rms error (fitted) | rms error (leave-one-out) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for family, fit in fits.items():
        target = get_target(family)
        per_core = target.matrix.peak_ops_per_s("s8") * fit.after.half_rate / 2e12
        loo = np.asarray([(fit.loo[r] - r.ttft_ms) / r.ttft_ms for r in fit.rows])  # type: ignore[operator]
        lines.append(
            f"| {family} | {fit.after.half_rate:.3f} (prior {PRIOR_HALF_RATE:g}) | {per_core:.2f} TMAC/s "
            f"| {fit.after.token_s * 1e6:.1f} us ({fit.after.token_s * PREFILL * 1e3:.2f} ms per {PREFILL}-token layer call) | {fit.after.ddr_efficiency:.4f} (before {fit.before.ddr_efficiency:.4f}) "
            f"| {len(fit.rows)} | {fit.rms * 100:.1f}% | {float(np.sqrt(np.mean(loo**2))) * 100:.1f}% |"
        )
    return "\n".join(lines)


def set_figure(text: str, family: str, name: str, value: float, why: str) -> str:
    """`text` with `name=Assumed(value, why)` in `family`'s ChipSpec block."""
    start = text.index(f'    "{family}": ChipSpec(')
    end = text.index("\n    ),\n", start)
    pattern = re.compile(r"(\n        " + name + r"=)Assumed\(\s*[0-9.e-]+,\s*\".*?\"\s*\)", re.S)
    number = f"{value:.4f}" if value >= 1e-3 else f"{value:.4g}"
    block, count = pattern.subn(lambda m: f'{m.group(1)}Assumed(\n            {number}, "{why}"\n        )', text[start:end])
    assert count == 1, (family, name)
    return text[:start] + block + text[end:]


def write_descriptors(fits: dict[str, FamilyFit]) -> None:
    path = ROOT / "compiler" / "targets" / "descriptors.py"
    text = path.read_text()
    for family, fit in fits.items():
        row = CALIBRATION[family]
        rows = f"least squares on the {len(fit.rows)} published {family} TTFT rows"
        text = set_figure(text, family, "half_rate", fit.after.half_rate, f"fitted (bench/calibrate_cost_model.py): {rows}")
        text = set_figure(text, family, "token_s", fit.after.token_s, f"fitted (bench/calibrate_cost_model.py): {rows}")
        text = set_figure(
            text, family, "ddr_efficiency", fit.after.ddr_efficiency,
            f"calibrated (bench/calibrate_cost_model.py): {row.model} w8a16 decode {row.tok_s:g} tok/s on {row.chip}",
        )
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
    builds: dict[tuple, Built] = {}
    failed: dict[tuple, str] = {}
    for row in rows:
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
                f"{family}: half_rate = {a.half_rate:.4f}, token_s = {a.token_s * 1e6:.2f} us, "
                f"ddr_efficiency = {a.ddr_efficiency:.4f} ({fit.rounds} rounds; TTFT rms {fit.rms * 100:.1f}%)",
                flush=True,
            )
    results = []
    for row in rows:
        family = get_target(row.chip).family
        if row.build in failed or family not in fits:
            results.append(Result(row, (float("nan"),) * 2, (float("nan"),) * 2, None))  # type: ignore[arg-type]
            continue
        built, layers, fit = builds[row.build], SHAPES[row.model].layers, fits[family]
        results.append(Result(row, predict(built, layers, fit.before), predict(built, layers, fit.after), fit.loo.get(row)))
    text = table(results)
    for key, reason in failed.items():
        text += f"\n\nBuild failure of {key[0]} on {key[1]}: `{reason}`"
    parameters = parameter_table(fits)
    print(parameters)
    print(text)
    (OUT / "cost_model.json").write_text(
        json.dumps(
            {
                "npu_mode": NPU_MODE,
                "fits": {f: {"before": dataclasses.asdict(v.before), "after": dataclasses.asdict(v.after)} for f, v in fits.items()},
                "rows": [
                    dict(
                        dataclasses.asdict(r.row), before_tok_s=r.before[0], before_ttft_ms=r.before[1],
                        predicted_tok_s=r.after[0], predicted_ttft_ms=r.after[1], loo_ttft_ms=r.loo_ttft,
                    )
                    for r in results
                ],
            },
            indent=2,
        )
    )
    if args.write_descriptors:
        write_descriptors(fits)
    if args.write_doc:
        doc = ROOT / "docs" / "performance.md"
        doc.write_text(replace_between(replace_between(doc.read_text(), "calibration", parameters), "table", text))


if __name__ == "__main__":
    main()
