"""What FLOAT_MATMUL_USE_CONV_EU=1 changes, by the cost model: TTFT and decode with and without it.

    python bench/bench_conv_eu.py [--write-doc]

Builds one decoder layer and the post model of two shapes for AX650 twice, once with the
float matmuls (attention's QK^T and PV) on the matrix engine (the default) and once on the
convolution units (`lower-to-ax650{float-matmul-use-conv-eu=true}`, what the variable
selects), with the shape-group ladder of their recipes, and replays the emitted streams
with the fitted cost model (`bench/calibrate_cost_model.py` has the builds and the fit):

- Qwen2.5-0.5B, the seed command: KV cache 1023, prefill 128, `--last_kv_cache_len 128 256
  384 512`;
- HY-MT1.5-1.8B (hidden 2048, 32 layers, 16 heads, 4 KV heads, head_dim 128, intermediate
  6144, vocab 120818; a Llama-shaped layer: the q/k norms are <0.1% of the work), the HY-MT
  recipe: KV cache 2047, prefill 128, `--last_kv_cache_len 128 256 ... 1024`.

TTFT is a 128-token prompt (the history-0 group); "last chunk" is one 128-token chunk over
the longest history of the ladder (a long prompt's final chunk); decode is one token over
the full cache. The simulator's results do not change (test_simulator.py checks it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calibrate_cost_model import OUT, SHAPES, Built, build, replace_between

ROOT = Path(__file__).resolve().parent.parent
RECIPES: dict[str, tuple[int, tuple[int, ...]]] = {
    "Qwen2.5-0.5B": (1023, (128, 256, 384, 512)),
    "HY-MT1.5-1.8B": (2047, tuple(range(128, 1025, 128))),
}
CHIP = "AX650"


def figures(built: Built, layers: int) -> dict[str, float]:
    from axc.sim.cost import estimate

    target = built.target  # the descriptor's fitted parameters
    tokens = built.prefill_tokens
    post = estimate(built.post, target).latency_s
    first = estimate(built.prefill, target, tokens)
    last = estimate(built.last_prefill, target, tokens)
    decode = estimate(built.decode, target)
    return {
        "ttft_ms": (layers * first.latency_s + post) * 1e3,
        "last_chunk_ms": layers * last.latency_s * 1e3,
        "decode_tok_s": 1.0 / (layers * decode.latency_s + post),
        "conv_busy_ms": layers * first.busy_s["conv"] * 1e3,
        "matrix_busy_ms": layers * first.busy_s["matrix"] * 1e3,
    }


def table(results: dict[str, dict[bool, dict[str, float]]]) -> str:
    lines = [
        "| shape (recipe) | FLOAT_MATMUL_USE_CONV_EU | TTFT ms (128-token prompt) | change | last chunk ms (history) | change "
        "| decode tok/s | change |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, pair in results.items():
        kv, lasts = RECIPES[model]
        base = pair[False]
        for conv in (False, True):
            f = pair[conv]

            def change(key: str) -> str:
                return "" if not conv else f"{(f[key] - base[key]) / base[key] * 100:+.1f}%"

            lines.append(
                f"| {model} (kv {kv}, last {lasts[0]}..{lasts[-1]}) | {'1' if conv else 'unset'} | {f['ttft_ms']:.1f} | {change('ttft_ms')} "
                f"| {f['last_chunk_ms']:.1f} ({lasts[-1]}) | {change('last_chunk_ms')} | {f['decode_tok_s']:.2f} | {change('decode_tok_s')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/performance.md")
    args = parser.parse_args()
    results: dict[str, dict[bool, dict[str, float]]] = {}
    for model, (kv, lasts) in RECIPES.items():
        results[model] = {}
        for conv in (False, True):
            built = build(model, CHIP, "s8", None, kv, lasts, conv)
            print(f"built {model} conv_eu={conv} in {built.seconds:.1f} s", flush=True)
            results[model][conv] = figures(built, SHAPES[model].layers)
    text = table(results)
    print(text)
    (OUT / "conv_eu.json").write_text(json.dumps({m: {str(c): f for c, f in p.items()} for m, p in results.items()}, indent=2))
    if args.write_doc:
        doc = ROOT / "docs" / "performance.md"
        doc.write_text(replace_between(doc.read_text(), "conv-eu", text))


if __name__ == "__main__":
    main()
