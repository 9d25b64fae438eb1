"""`axc-translate`: translations into and out of the IR.

    axc-translate --import-hf models/Qwen2.5-0.5B -o qwen.mlir
    axc-translate --emit-axmodel layer0.mlir -o qwen2_p128_l0_together.axmodel
    axc-translate --import-axmodel qwen2_p128_l0_together.axmodel -o layer0.mlir

`--emit-axmodel` takes target-level IR holding one `ax650.model`/`ax620e.model` (a layer
with all its shape groups, or the post model; `--model NAME` picks one of several).
`--import-axmodel` disassembles a file; its parameter blob goes to `--params-out`
(default: the output's name with `.params.safetensors`), bound in the IR, so emitting the
result again gives the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from axc import __version__
from axc.errors import ArgumentParser, AxcError, report_errors
from axc.atomic import write_text
from axc.textio import module_text


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="axc-translate", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--import-hf", metavar="DIR", help="Hugging Face directory → tfm IR")
    mode.add_argument("--emit-axmodel", metavar="FILE.mlir", help="target IR (ax650/ax620e) → .axmodel")
    mode.add_argument("--import-axmodel", metavar="FILE.axmodel", help=".axmodel → target IR (disassembler)")
    p.add_argument("--model", metavar="NAME", help="--emit-axmodel: the model to emit when the IR holds several")
    p.add_argument("--params-out", metavar="FILE", help="--import-axmodel: where the parameter blob goes (safetensors)")
    p.add_argument("--model-config", metavar="JSON", help="vendor-style model config overriding config.json")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    p.add_argument("--version", action="version", version=f"axc-translate {__version__}")
    return p


@report_errors("axc-translate")
def main() -> None:
    args = parser().parse_args()
    if args.import_hf:
        from axc.frontend.hf_import import import_hf

        module = import_hf(args.import_hf, args.model_config)
        write_text(module_text(module), args.output)
    elif args.emit_axmodel:
        emit_axmodel(args)
    else:
        import_axmodel(args)


def emit_axmodel(args: argparse.Namespace) -> None:
    from axc.binding import store_for
    from axc.codegen.emit import find_model, write_model
    from axc.textio import read_module

    if not args.output or args.output == "-":
        raise AxcError("--emit-axmodel writes a binary file; pass -o OUT.axmodel")
    module = read_module(args.emit_axmodel)
    model = find_model(module, args.model)
    write_model(Path(args.output), model, store_for(module))


def import_axmodel(args: argparse.Namespace) -> None:
    from axc.codegen.disasm import disassemble, save_params
    from axc.codegen.payload import read_payload

    source = Path(args.import_axmodel)
    payload = read_payload(str(source))
    params_out = args.params_out
    if params_out is None:
        if not args.output or args.output == "-":
            raise AxcError("--import-axmodel needs -o FILE.mlir or --params-out FILE.safetensors for the parameters")
        params_out = str(Path(args.output).with_suffix(".params.safetensors"))
    module, arrays = disassemble(payload, source.name.removesuffix(".axmodel"))
    save_params(module, arrays, params_out)
    write_text(module_text(module), args.output)


if __name__ == "__main__":
    main()
