"""What a chip can execute, checked on `isa` programs: by the target dialects' verifiers
(IR) and by the `.axmodel` decoder (binaries), so both refuse the same things."""

from __future__ import annotations

from collections.abc import Mapping

from axc import isa
from axc.isa import Instr, Program
from axc.errors import AxcError
from axc.targets import TargetDescriptor, check_weight_type

_RHS_CODES = {"s8": (2,), "s4": (1,), "fp8_e4m3": (13,), "fp8_e5m2": (14,)}
_FLOAT_NAMES = {9: "fp16", 10: "bf16", 11: "fp32"}


def check_instr_legality(instr: Instr, target: TargetDescriptor, where: str) -> None:
    """Engines, channels, memory spaces and element types of one instruction (AxcError)."""
    op = instr.op
    if instr.core >= target.chip_cores:
        raise AxcError(f"{where}: core {instr.core} does not exist on {target.family} ({target.chip_cores} cores)")
    if op.engine == "dma" and instr.queue >= target.dma_channels_per_core:
        raise AxcError(f"{where}: DMA channel {instr.queue} does not exist ({target.dma_channels_per_core} per core)")
    if instr.queue == isa.CONV_QUEUE:
        if target.conv is None:
            raise AxcError(
                f"{where}: {target.family} has no convolution units that take matmuls (c{instr.core}.cv); "
                f"run it on c{instr.core}.mx"
            )
        if instr.value("format") != "float":
            raise AxcError(
                f"{where}: only float (activation x activation) matmuls run on the convolution units; "
                f"{instr.value('format')} weights run on c{instr.core}.mx"
            )
    for name, operand in instr.named():
        if op.engine != "dma" and operand.space != isa.OCM:
            raise AxcError(f"{where}: {name} must be in OCM (the engines work on on-chip memory)")
        if op.mnemonic == "dma_load" and (name == "src") == (operand.space == isa.OCM):
            raise AxcError(f"{where}: dma_load moves DDR (params, scratch, in<k>) into OCM")
        if op.mnemonic == "dma_store" and (name == "src") != (operand.space == isa.OCM):
            raise AxcError(f"{where}: dma_store moves OCM into DDR (scratch, out<k>)")
        if name in op.outputs and operand.space in (isa.PARAMS, isa.INPUT):
            raise AxcError(f"{where}: {name} writes the read-only {isa.SPACE_NAMES[operand.space]} space")
    if op.engine == "dma":
        src, dst = instr.operands
        assert src is not None and dst is not None
        if src.nbytes != dst.nbytes:
            raise AxcError(f"{where}: moves {src.nbytes} bytes into {dst.nbytes}")
        return
    fmt = str(instr.value("format")) if op.mnemonic == "matmul" else "float"
    check_shapes(instr, where)
    if fmt != "float":
        try:
            check_weight_type(target, fmt, "weights", "--weight-type")
        except AxcError as error:
            raise AxcError(f"{where}: {error}") from None
        rhs = instr.operand("rhs")
        assert rhs is not None
        if rhs.dtype not in _RHS_CODES[fmt]:
            raise AxcError(f"{where}: {fmt} weights are stored as {isa.NAME_OF_CODE[_RHS_CODES[fmt][0]]}, not {isa.NAME_OF_CODE[rhs.dtype]}")
    for name, operand in instr.named():
        if operand.dtype not in isa.FLOAT_CODES or (name == "rhs" and fmt != "float") or name == "scales":
            continue
        dtype = _FLOAT_NAMES.get(operand.dtype)
        if dtype is None or dtype not in target.activation_dtypes:
            raise AxcError(
                f"{where}: {target.chip} cannot compute on {isa.NAME_OF_CODE[operand.dtype]} "
                f"({name}; supported: {', '.join(target.activation_dtypes)})"
            )


def broadcasts(source: tuple[int, ...], target: tuple[int, ...]) -> bool:
    return len(source) <= len(target) and all(a in (1, b) for a, b in zip(reversed(source), reversed(target)))


ELEMENTWISE = ("cast", "act", "add", "mul", "div", "act_mul", "softcap")


def check_shapes(instr: Instr, where: str) -> None:
    """Operand shapes that agree, so that executing the record is well defined."""
    op = instr.op
    shape = {name: operand.sizes for name, operand in instr.named()}
    if op.mnemonic == "matmul":
        fmt = str(instr.value("format"))
        lhs, rhs, out = shape["lhs"], shape["rhs"], shape["out"]
        if min(len(lhs), len(rhs), len(out)) < 2:
            raise AxcError(f"{where}: matmul operands must be at least 2-D")
        transpose = bool(instr.value("transpose_b"))
        n, k = (rhs[-2], rhs[-1]) if transpose else (rhs[-1], rhs[-2])
        k *= 2 if fmt == "s4" else 1
        if lhs[-1] != k or out[-2:] != (lhs[-2], n) or not broadcasts(lhs[:-2], out[:-2]) or not broadcasts(rhs[:-2], out[:-2]):
            raise AxcError(f"{where}: matmul of {list(lhs)} by {list(rhs)} cannot give {list(out)}")
        if (fmt == "float") != ("scales" not in shape):
            raise AxcError(f"{where}: {'float matmuls take no scales' if fmt == 'float' else fmt + ' weights need scales'}")
        if "zeros" in shape and fmt not in ("s8", "s4"):
            raise AxcError(f"{where}: only integer weights have zero points")
        if fmt != "float":
            group = int(instr.value("group"))
            groups = 1 if group == 0 else -(-k // group)
            if not transpose or any(shape[r][-2:] != (n, groups) for r in ("scales", "zeros") if r in shape):
                raise AxcError(f"{where}: {fmt} weights need [N, K] tiles with [{n}, {groups}] scales")
        if "bias" in shape and not broadcasts(shape["bias"], out):
            raise AxcError(f"{where}: bias {list(shape['bias'])} does not broadcast to {list(out)}")
    elif op.mnemonic == "window_mask":
        scores = shape["scores"]
        if len(scores) < 2 or shape["out"] != scores or shape["query_positions"] != scores[-2:-1] or shape["key_positions"] != scores[-1:]:
            raise AxcError(f"{where}: window_mask of {list(scores)} scores needs [{scores[-2:-1]}] query and key positions")
    elif op.mnemonic in ELEMENTWISE:
        out = shape["out"]
        for name, sizes in shape.items():
            if name != "out" and not broadcasts(sizes, out):
                raise AxcError(f"{where}: {name} {list(sizes)} does not broadcast to {list(out)}")


def check_program(
    program: Program,
    target: TargetDescriptor,
    spaces: Mapping[tuple[int, int], tuple[int, int | None]],
    where: str,
) -> None:
    """Every instruction legal on `target` and every address inside its space (AxcError).

    `spaces` maps (space, index) to its size in bytes and, for I/O, its element type code.
    OCM spans the cores of the npu_mode: `cores * ocm_bytes_per_core`, one slice per core.
    """
    ocm = target.ocm_bytes_per_core * target.cores
    for position, (instr, trips) in enumerate(isa.walk(program.body)):
        at = f"{where}: instruction {position} ({instr.op.mnemonic})"
        if instr.core >= target.cores:
            raise AxcError(f"{at}: core {instr.core} is not one of the {target.cores} cores of {target.npu_mode}")
        check_instr_legality(instr, target, at)
        for name, operand in instr.named():
            if operand.space == isa.OCM:
                size, code = ocm, None
            elif (operand.space, operand.index) in spaces:
                size, code = spaces[(operand.space, operand.index)]
            else:
                raise AxcError(f"{at}: {name} addresses {isa.SPACE_NAMES[operand.space]}{operand.index}, which the group does not have")
            low, high = operand.extent(trips)
            if low < 0 or high > size:
                raise AxcError(
                    f"{at}: {name} reaches bytes [{low}, {high}) of {isa.SPACE_NAMES[operand.space]} "
                    f"(size {size}): out-of-range address"
                )
            if code is not None and code != operand.dtype:
                raise AxcError(f"{at}: {name} reads {isa.NAME_OF_CODE[operand.dtype]} from a {isa.NAME_OF_CODE[code]} tensor")
