"""Calibrate the cost model's one free parameter per chip and predict the published rows.

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

`ddr_efficiency` (DDR bandwidth x efficiency is what DMA streams at) is the only free
parameter. It is solved per chip on ONE figure, Qwen2.5-0.5B w8a16 decode: 32 tok/s on
AX650N and 10.3 tok/s on AX630C; every other row is a prediction (never fitted per model).
`--write-descriptors` stores the two values in compiler/targets/descriptors.py,
`--write-doc` the table in docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PREFILL = 128
NPU_MODE = "NPU1"
"""Pulsar2's documented default npu_mode; the published rows do not say otherwise."""


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

    target: object
    decode: object
    prefill: object
    post: object
    seconds: float


def build(model: str, chip: str, weight: str, group: int | None, kv: int) -> Built:
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
    from axc.targets import get_target

    start = time.perf_counter()
    directory = write_shape(model, SHAPES[model])
    target = get_target(chip, NPU_MODE)
    module = import_hf(directory)
    ctx = make_context()
    SpecializeGroups(kv_cache_len=kv, prefill_len=PREFILL, last_kv_cache_len=(PREFILL,)).apply(ctx, module)
    QuantizeWeights(weight_type=weight, group_size=group, post_weight_type="s8").apply(ctx, module)
    SetActivationType(hidden="bf16").apply(ctx, module)
    Tile(target=chip, npu_mode=NPU_MODE).apply(ctx, module)
    for p in (Fuse(), DoubleBuffer(), AllocateOcm()):
        p.apply(ctx, module)
    (LowerToAx650() if target.family == "AX650" else LowerToAx620e()).apply(ctx, module)
    store = store_for(module)
    out = OUT / "cost" / f"{model}_{chip}_{weight}{group or ''}_kv{kv}"
    out.mkdir(parents=True, exist_ok=True)
    payloads = {}
    for unit in ("layer_0", "post"):  # the binary is the truth: estimate from the emitted files
        path = out / f"{unit}.axmodel"
        write_axmodel(path, to_axmodel(find_model(module, unit), store))
        payloads[unit] = read_payload(str(path))
    layer, post = payloads["layer_0"], payloads["post"]
    return Built(target, layer.programs[0], layer.programs[1], post.programs[0], time.perf_counter() - start)


def predict(built: Built, layers: int, efficiency: float) -> tuple[float, float]:
    """(decode tok/s, TTFT ms) at `efficiency`."""
    from axc.sim.cost import estimate

    target = dataclasses.replace(built.target, ddr_efficiency=efficiency)
    decode = estimate(built.decode, target).latency_s
    prefill = estimate(built.prefill, target).latency_s
    post = estimate(built.post, target).latency_s
    return 1.0 / (layers * decode + post), (layers * prefill + post) * 1e3


def calibrate(built: Built, layers: int, tok_s: float) -> float:
    """The efficiency at which the model decodes at `tok_s` (bisection; latency falls with it)."""
    low, high = 0.01, 1.0
    if predict(built, layers, high)[0] < tok_s:
        return high
    for _ in range(40):
        mid = (low + high) / 2
        if predict(built, layers, mid)[0] < tok_s:
            low = mid
        else:
            high = mid
    return high


def error(predicted: float, published: float | None) -> str:
    return "" if published is None else f"{(predicted - published) / published * 100:+.0f}%"


def table(results: list[tuple[Row, float, float]]) -> str:
    lines = [
        "| model | chip | weights | KV | TTFT ms published | TTFT ms predicted | error | decode tok/s published | decode tok/s predicted | error | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row, tok_s, ttft in results:
        weights = f"{row.weight}{' g' + str(row.group) if row.group else ''}"
        if tok_s != tok_s:  # NaN: the build failed
            lines.append(
                f"| {row.label} | {row.chip} | {weights} | {row.kv} | {row.ttft_ms if row.ttft_ms is not None else '-'} | - | | "
                f"{row.tok_s if row.tok_s is not None else '-'} | - | | build fails (see below) |"
            )
            continue
        lines.append(
            f"| {row.label} | {row.chip} | {weights} | {row.kv} | {row.ttft_ms if row.ttft_ms is not None else '-'} | "
            f"{ttft:.0f} | {error(ttft, row.ttft_ms)} | {row.tok_s if row.tok_s is not None else '-'} | {tok_s:.1f} | "
            f"{error(tok_s, row.tok_s)} | {row.note} |"
        )
    return "\n".join(lines)


def write_descriptors(efficiencies: dict[str, float]) -> None:
    path = ROOT / "compiler" / "targets" / "descriptors.py"
    text = path.read_text()
    for family, value in efficiencies.items():
        row = CALIBRATION[family]
        why = f"calibrated (bench/calibrate_cost_model.py): {row.model} w8a16 decode {row.tok_s:g} tok/s on {row.chip}"
        pattern = re.compile(r'(    "' + family + r'": ChipSpec\(.*?ddr_efficiency=)Assumed\(\s*[0-9.]+,\s*".*?"\s*\)', re.S)
        text, count = pattern.subn(lambda m: f'{m.group(1)}Assumed(\n            {value:.4f}, "{why}"\n        )', text)
        assert count == 1, family
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-descriptors", action="store_true", help="store the calibrated efficiencies")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/performance.md")
    parser.add_argument("--models", nargs="*", help="only these models (default: all rows)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from axc.targets import get_target

    from axc.errors import AxcError

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
    efficiencies: dict[str, float] = {}
    for family, row in CALIBRATION.items():
        if row.build in builds:
            efficiencies[family] = calibrate(builds[row.build], SHAPES[row.model].layers, float(row.tok_s))  # type: ignore[arg-type]
            print(f"{family}: ddr_efficiency = {efficiencies[family]:.4f} ({row.model} {row.chip} {row.tok_s} tok/s)")
    results = []
    for row in rows:
        if row.build in failed:
            results.append((row, float("nan"), float("nan")))
            continue
        family = get_target(row.chip).family
        efficiency = efficiencies.get(family, get_target(row.chip).ddr_efficiency)
        tok_s, ttft = predict(builds[row.build], SHAPES[row.model].layers, efficiency)
        results.append((row, tok_s, ttft))
    text = table(results)
    for key, reason in failed.items():
        text += f"\n\nBuild failure of {key[0]} on {key[1]}: `{reason}`"
    print(text)
    (OUT / "cost_model.json").write_text(
        json.dumps(
            {
                "ddr_efficiency": efficiencies,
                "npu_mode": NPU_MODE,
                "rows": [dict(dataclasses.asdict(r), predicted_tok_s=t, predicted_ttft_ms=f) for r, t, f in results],
            },
            indent=2,
        )
    )
    if args.write_descriptors:
        write_descriptors(efficiencies)
    if args.write_doc:
        doc = ROOT / "docs" / "performance.md"
        current = doc.read_text()
        start, end = current.index("<!-- table -->"), current.index("<!-- /table -->")
        doc.write_text(current[: start + len("<!-- table -->")] + "\n" + text + "\n" + current[end:])


if __name__ == "__main__":
    main()
