"""Lower a Qwen2.5-0.5B-shaped model from the quant level to npu tile programs, and
measure the DDR traffic of every shape group of three model shapes on both chips.

    python bench/bench_tile.py [--model DIR] [--target AX650] [--weight-type s8] [--run-prefill] [--skip-traffic]

Builds the quant level first (import, specialize-groups with kv 1023, prefill 128 and
last_kv_cache_len 128,256,384,512, quantize-weights, set-activation-type bf16; not timed),
then times `tile`, `fuse`, `double-buffer` and `allocate-ocm` over the whole model and
prints, against the goals: lowering wall time (<= 10 s), npu ops of one layer over all
shape groups (<= 5,000), and the decode group's DDR traffic ratio (bytes read / bytes of
every weight, scale, KV row and input, <= 1.05) from running layer 0 in the npu
interpreter. The checkpoint is bench/make_qwen05b.py's (made if missing).

Then, for one decoder layer of Qwen2.5-0.5B, Qwen2.5-1.5B and Llama3.2-1B (random
checkpoints of bench/calibrate_cost_model.py, made if missing) on AX650 and AX620E, it
runs every group in the npu interpreter and prints the traffic ratio: DDR bytes moved
(read + written) / (every weight, scale, zero, bias, KV, input and output byte once);
goals: decode <= 1.05, prefill on AX650 <= 1.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_qwen05b import DEFAULT_OUT, ensure  # noqa: E402

GOAL_WALL_S = 10.0
GOAL_LAYER_OPS = 5000
GOAL_RATIO = 1.05
GOAL_PREFILL = 1.5
TRAFFIC_MODELS = ("Qwen2.5-0.5B", "Qwen2.5-1.5B", "Llama3.2-1B")
TRAFFIC_CHIPS = ("AX650", "AX620E")
GROUPS = dict(kv_cache_len=1023, prefill_len=128, last_kv_cache_len=(128, 256, 384, 512))


def layer_inputs(function, seed: int = 0) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Contract inputs: half of the cache visible, positions after it."""
    from axc.runtime_contract import MASKED

    rng = np.random.default_rng(seed)
    names = [n.data for n in function.attributes["axc.input_names"].data]
    args = []
    for name, type_ in zip(names, function.function_type.inputs.data):
        shape = tuple(type_.get_shape())
        if name == "indices":
            args.append((shape[-1] + np.arange(shape[-1], dtype=np.uint32)).reshape(shape))
        elif name == "mask":
            tokens, total = shape[1], shape[2]
            mask = np.full(shape, MASKED, np.float32)
            mask[0, :, : (total - tokens) // 2] = 0.0
            mask[0, :, total - tokens :][np.tril(np.ones((tokens, tokens), bool))] = 0.0
            args.append(mask)
        else:
            args.append(rng.standard_normal(shape).astype(np.float32))
    return args


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help=f"checkpoint (default: {DEFAULT_OUT}, made if missing)")
    p.add_argument("--target", default="AX650", help="chip (default: AX650)")
    p.add_argument("--weight-type", default="s8", help="decoder weight type (default: s8)")
    p.add_argument("--run-prefill", action="store_true", help="also run layer 0's first prefill group")
    p.add_argument("--skip-traffic", action="store_true", help="skip the per-group traffic of the three model shapes")
    args = p.parse_args()
    model = args.model if args.model is not None else ensure(DEFAULT_OUT)

    from rich.console import Console
    from xdsl.dialects import func

    from axc.binding import store_for
    from axc.dialects import make_context
    from axc.frontend.hf_import import import_hf
    from axc.interpreters.npu import counters_table, minimum_read_bytes
    from axc.interpreters.runner import ModuleRunner
    from axc.passes.allocate_ocm import AllocateOcm
    from axc.passes.double_buffer import DoubleBuffer
    from axc.passes.fuse import Fuse
    from axc.passes.quantize_weights import QuantizeWeights
    from axc.passes.set_activation_type import SetActivationType
    from axc.passes.specialize_groups import SpecializeGroups
    from axc.passes.tile import Tile
    from axc.structure import operation_count

    ctx = make_context()
    start = time.perf_counter()
    module = import_hf(model)
    SpecializeGroups(**GROUPS).apply(ctx, module)
    QuantizeWeights(weight_type=args.weight_type).apply(ctx, module)
    SetActivationType(hidden="bf16").apply(ctx, module)
    quant_ops = operation_count(module)
    print(f"quant level of {model}: {quant_ops} ops in {time.perf_counter() - start:.1f} s (not timed below)")

    passes = [Tile(target=args.target), Fuse(), DoubleBuffer(), AllocateOcm()]
    timings = []
    for lowering in passes:
        start = time.perf_counter()
        lowering.apply(ctx, module)
        timings.append((lowering.name, time.perf_counter() - start))
    wall = sum(t for _, t in timings)
    functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
    groups = sorted(name for name in functions if name.startswith("layer_0_g"))
    layer_ops = sum(operation_count(functions[name]) for name in groups)

    store = store_for(module)
    runner = ModuleRunner(module, store)
    decode = functions["layer_0_g0"]
    start = time.perf_counter()
    runner.call("layer_0_g0", layer_inputs(decode))
    run_s = time.perf_counter() - start
    if args.run_prefill:
        runner.call("layer_0_g1", layer_inputs(functions["layer_0_g1"]))
    minimum = minimum_read_bytes(decode, store)
    read = runner.npu.counters["layer_0_g0"].ddr_read
    ratio = read / minimum

    print(f"lowering to {args.target}: " + ", ".join(f"{name} {t:.2f} s" for name, t in timings))
    print(f"module: {operation_count(module)} ops; layer 0 groups: " + ", ".join(
        f"{g} {operation_count(functions[g])} ops / {functions[g].attributes['npu.ocm_bytes'].value.data / 1024:.0f} KiB OCM"  # type: ignore[union-attr]
        for g in groups
    ))
    print(f"decode traffic: read {read:,} B, minimum {minimum:,} B (weights, scales, KV, inputs); layer 0 decode ran in {run_s:.2f} s")
    Console(width=132).print(counters_table(runner.npu.counters))
    rows = [
        ("lowering wall s", f"{wall:.2f}", f"<= {GOAL_WALL_S:g}", wall <= GOAL_WALL_S),
        ("ops, one layer", str(layer_ops), f"<= {GOAL_LAYER_OPS}", layer_ops <= GOAL_LAYER_OPS),
        ("decode traffic", f"{ratio:.4f}", f"<= {GOAL_RATIO}", ratio <= GOAL_RATIO),
    ]
    if not args.skip_traffic:
        ratios = traffic(args.weight_type)
        decode = max(r for (_, _, group), r in ratios.items() if group == 0)
        prefill = max(r for (_, chip, group), r in ratios.items() if group > 0 and chip == "AX650")
        rows += [
            ("decode, 3 shapes", f"{decode:.4f}", f"<= {GOAL_RATIO}", decode <= GOAL_RATIO),
            ("prefill AX650", f"{prefill:.4f}", f"<= {GOAL_PREFILL}", prefill <= GOAL_PREFILL),
        ]
    print(f"{'metric':<16} {'value':>8}  {'goal':<8} ok")
    for name, value, goal, ok in rows:
        print(f"{name:<16} {value:>8}  {goal:<8} {'yes' if ok else 'NO'}")


def traffic(weight_type: str) -> dict[tuple[str, str, int], float]:
    """Run every group of one layer of each of TRAFFIC_MODELS on each of TRAFFIC_CHIPS;
    print and return the traffic ratios by (model, chip, group)."""
    from calibrate_cost_model import SHAPES, write_shape
    from xdsl.dialects import func

    from axc.binding import store_for
    from axc.dialects import make_context
    from axc.frontend.hf_import import import_hf
    from axc.interpreters.npu import minimum_read_bytes, minimum_write_bytes, traffic_ratio
    from axc.interpreters.runner import ModuleRunner
    from axc.passes.allocate_ocm import AllocateOcm
    from axc.passes.double_buffer import DoubleBuffer
    from axc.passes.fuse import Fuse
    from axc.passes.quantize_weights import QuantizeWeights
    from axc.passes.set_activation_type import SetActivationType
    from axc.passes.specialize_groups import SpecializeGroups
    from axc.passes.tile import Tile

    ratios: dict[tuple[str, str, int], float] = {}
    print(f"\n{'model':<14} {'chip':<7} {'group':<13} {'read MB':>9} {'written MB':>10} {'minimum MB':>10} {'ratio':>6}")
    for model in TRAFFIC_MODELS:
        ctx = make_context()
        quant = import_hf(write_shape(model, SHAPES[model]))
        for f in [f for f in quant.ops if isinstance(f, func.FuncOp) and not f.sym_name.data.startswith("layer_")]:
            f.detach()  # the layer only: the lm_head is not what is measured
        SpecializeGroups(**GROUPS).apply(ctx, quant)
        QuantizeWeights(weight_type=weight_type).apply(ctx, quant)
        SetActivationType(hidden="bf16").apply(ctx, quant)
        store = store_for(quant)  # holds the quantized weights; lowered clones name the same keys
        for chip in TRAFFIC_CHIPS:
            module = quant.clone()
            for lowering in (Tile(target=chip), Fuse(), DoubleBuffer(), AllocateOcm()):
                lowering.apply(ctx, module)
            runner = ModuleRunner(module, store)
            functions = sorted((f for f in module.ops if isinstance(f, func.FuncOp)), key=lambda f: f.attributes["axc.group"].value.data)  # type: ignore[union-attr]
            for function in functions:
                name = function.sym_name.data
                runner.call(name, layer_inputs(function))
                counters = runner.npu.counters[name].per_call()
                group = function.attributes["axc.group"].value.data  # type: ignore[union-attr]
                history = function.attributes["axc.history"].value.data  # type: ignore[union-attr]
                ratios[(model, chip, group)] = ratio = traffic_ratio(function, counters, store)
                minimum = minimum_read_bytes(function, store) + minimum_write_bytes(function)
                label = "decode" if group == 0 else f"prefill h{history}"
                print(
                    f"{model:<14} {chip:<7} {label:<13} {counters.ddr_read / 1e6:>9.1f} {counters.ddr_write / 1e6:>10.1f} "
                    f"{minimum / 1e6:>10.1f} {ratio:>6.3f}",
                    flush=True,
                )
    return ratios


if __name__ == "__main__":
    main()
