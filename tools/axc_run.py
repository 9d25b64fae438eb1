"""`axc-run`: execute one function of an IR file on `.npy` inputs.

    axc-run model.mlir --func layer_0_g0 --input K_cache=k.npy ... --output-dir out/

Each result is written as `<output name>.npy` (fp32 for floating point results);
`--report` prints what an npu-level function cost (DDR bytes, MACs, vector ops).

    axc-run quant.mlir --compare reference.mlir [--tokens 64 --prompt-len 48] [--json report.json]

compares every layer and shape group of a model with a reference built with the same
shape groups (usually the fp32 tfm level), teacher-forced over random tokens, and the
final logits (see `axc.accuracy`).

    axc-run --info FILE.axmodel

prints every shape group's inputs and outputs (runtime names, dtypes, shapes) as the
runtime sees them, for axc's files and any ONNX-container `.axmodel` (the vendor's too).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from axc import __version__
from axc.errors import ArgumentParser, AxcError, report_errors

if TYPE_CHECKING:
    from axc.interpreters.runner import ModuleRunner


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="axc-run", description=__doc__.splitlines()[0])
    p.add_argument("file", help="an .mlir file or an .axmodel file")
    p.add_argument("--info", action="store_true", help=".axmodel: print every shape group's inputs and outputs, run nothing")
    p.add_argument("--func", help="the function to run, e.g. layer_0_g0 (required without --compare)")
    p.add_argument("--group", type=int, help=".axmodel: the shape group to run (0 = decode)")
    p.add_argument(
        "--input", action="append", default=[], metavar="NAME=FILE.npy", help="one per input"
    )
    p.add_argument("--output-dir", help="where to write <name>.npy results (required without --compare)")
    p.add_argument("--compare", metavar="REFERENCE.mlir", help="accuracy report of FILE against this reference")
    p.add_argument("--tokens", type=int, default=64, help="--compare: teacher-forced tokens (default 64)")
    p.add_argument("--prompt-len", type=int, help="--compare: tokens prefilled before decoding (default 3/4)")
    p.add_argument("--seed", type=int, default=0, help="--compare: seed of the random token ids")
    p.add_argument("--json", metavar="FILE", help="--compare: also write the report as JSON")
    p.add_argument("--report", action="store_true", help="print the npu cost counters (DDR bytes, MACs, vector ops)")
    p.add_argument("--version", action="version", version=f"axc-run {__version__}")
    return p


def load_inputs(specs: list[str]) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise AxcError(f"--input expects NAME=FILE.npy, got '{spec}'")
        if not Path(path).is_file():
            raise AxcError(f"input {name}: {path} does not exist; pass an existing .npy file")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise AxcError(f"cannot read input {name} from {path}: {error}") from None
    return inputs


def compare(args: argparse.Namespace) -> None:
    from axc.accuracy import print_report, record
    from axc.accuracy import compare as compare_to
    from axc.dialects.axc import POST
    from axc.interpreters.executor import ModuleExecutor
    from axc.textio import read_module

    candidate, reference = (ModuleExecutor(read_module(path)) for path in (args.file, args.compare))
    if candidate.layout != reference.layout:
        raise AxcError(
            f"{args.file} and {args.compare} have different shape groups; run specialize-groups with the same options"
        )
    longest = reference.layout.max_prompt_len
    prompt_len = args.prompt_len if args.prompt_len is not None else min(args.tokens * 3 // 4, longest)
    if not 0 < prompt_len <= min(args.tokens, longest) or args.tokens > reference.layout.kv_cache_len:
        raise AxcError(
            f"need 0 < --prompt-len ({prompt_len}) <= --tokens ({args.tokens}) <= kv-cache-len "
            f"({reference.layout.kv_cache_len}), and a prompt the prefill groups can take (at most {longest})"
        )
    logits_type = reference.runner.function(POST).function_type.outputs.data[0]
    vocab = logits_type.get_shape()[-1]  # type: ignore[attr-defined]  # the logits type is a tensor (the verifier made it so)
    tokens = np.random.default_rng(args.seed).integers(0, vocab, size=args.tokens)
    recording = record(reference, reference.layout, tokens, prompt_len)
    report = compare_to(recording, candidate, tokens, prompt_len, label=args.file)
    print_report(report)
    if args.json:
        report.save_json(args.json)


def write_outputs(outputs: dict[str, np.ndarray], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, value in outputs.items():
        if value.dtype.kind not in "iub":
            value = value.astype(np.float32)
        np.save(out_dir / f"{name}.npy", value)
        print(f"{name}: {list(value.shape)} {value.dtype} -> {out_dir / (name + '.npy')}")


def run_axmodel(args: argparse.Namespace) -> None:
    from axc.sim.cost import estimate, group_tokens
    from axc.sim.session import AxModelSession

    if args.group is None or not args.output_dir:
        parser().error("an .axmodel needs --group K and --output-dir")
    session = AxModelSession(args.file)
    outputs = session.run(session.check_group(args.group), load_inputs(args.input))
    write_outputs(outputs, Path(args.output_dir))
    c = session.counters[args.group]
    payload = session.payload
    cost = estimate(payload.programs[args.group], payload.target, group_tokens(payload.model.groups[args.group]))
    macs = ", ".join(f"{fmt} {n}" for fmt, n in sorted(c.macs.items())) or "0"
    print(
        f"counters: DDR read {c.ddr_read} B, DDR write {c.ddr_write} B, {c.dma_ops} DMAs, "
        f"MACs {macs}, vector ops {c.vector_ops}"
    )
    print(cost.summary())


@report_errors("axc-run")
def main() -> None:
    args = parser().parse_args()
    if args.info:
        from axc.axmodel.info import describe, format_info

        return print(format_info(describe(args.file), args.file))
    if args.file.endswith(".axmodel"):
        return run_axmodel(args)
    if args.compare:
        return compare(args)
    if not args.func or not args.output_dir:
        parser().error("--func and --output-dir are required (or pass --compare REFERENCE.mlir)")
    from axc.interpreters.runner import ModuleRunner
    from axc.textio import read_module

    module = read_module(args.file)
    runner = ModuleRunner(module)
    results = runner.call(args.func, load_inputs(args.input))
    write_outputs(dict(zip(runner.output_names(args.func), results, strict=True)), Path(args.output_dir))
    if args.report:
        print_report_table(runner)


def print_report_table(runner: ModuleRunner) -> None:
    from rich.console import Console

    from axc.interpreters.npu import counters_table

    if not runner.npu.counters:
        print("no npu ops ran: --report counts npu-level programs (run tile first)")
        return
    console = Console()
    console.width = max(console.width, 132)  # keep the table on one line per function when piped
    console.print(counters_table(runner.npu.counters))


if __name__ == "__main__":
    main()
