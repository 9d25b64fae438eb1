"""`axc-run`: execute one function of an IR file on `.npy` inputs.

    axc-run model.mlir --func layer_0_g0 --input K_cache=k.npy ... --output-dir out/

Each result is written as `<output name>.npy` (fp32 for floating point results).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from axc import __version__
from axc.errors import ArgumentParser, AxcError, report_errors


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="axc-run", description=__doc__.splitlines()[0])
    p.add_argument("file", help="an .mlir file")
    p.add_argument("--func", required=True, help="the function to run, e.g. layer_0_g0")
    p.add_argument(
        "--input", action="append", default=[], metavar="NAME=FILE.npy", help="one per input"
    )
    p.add_argument("--output-dir", required=True, help="where to write <name>.npy results")
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


@report_errors("axc-run")
def main() -> None:
    args = parser().parse_args()
    from axc.interpreters.runner import ModuleRunner
    from axc.textio import read_module

    module = read_module(args.file)
    runner = ModuleRunner(module)
    results = runner.call(args.func, load_inputs(args.input))
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, value in zip(runner.output_names(args.func), results, strict=True):
        if value.dtype.kind not in "iub":
            value = value.astype(np.float32)
        np.save(out_dir / f"{name}.npy", value)
        print(f"{name}: {list(value.shape)} {value.dtype} -> {out_dir / (name + '.npy')}")


if __name__ == "__main__":
    main()
