"""Reading the payload of an axc `.axmodel`: the parameter blob and each group's command
stream, decoded and checked against the container and the chip (one AxcError line on any
defect). The simulator, the disassembler and `axc-run` start here.

```python
payload = load_payload(read_axmodel("qwen2_p128_l0_together.axmodel"))
payload.programs[0].body   # group 0's instructions (isa.Instr / isa.Loop)
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from axc.axmodel import AxModel, TensorSpec, read_axmodel
from axc import isa
from axc.isa import encoding
from axc.isa import Program
from axc.isa.encoding import ParamsBlob
from axc.isa.legality import check_program
from axc.errors import AxcError
from axc.targets import TargetDescriptor, get_target

CONTAINER_DTYPES: dict[str, np.dtype] = {
    "bf16": isa.DTYPE_OF_CODE[10],
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "fp64": np.dtype(np.float64),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
    "int64": np.dtype(np.int64),
    "uint64": np.dtype(np.uint64),
}
CONTAINER_NAMES: dict[np.dtype, str] = {dtype: name for name, dtype in CONTAINER_DTYPES.items()}


def spec_code(spec: TensorSpec) -> int | None:
    dtype = CONTAINER_DTYPES.get(spec.dtype)
    return None if dtype is None else isa.CODE_OF_DTYPE.get(dtype)


def spec_bytes(spec: TensorSpec) -> int:
    dtype = CONTAINER_DTYPES.get(spec.dtype, np.dtype(np.uint8))
    return math.prod(spec.shape) * dtype.itemsize


@dataclass(frozen=True)
class Payload:
    """A decoded `.axmodel`: its container, target, parameter table and programs."""

    model: AxModel
    target: TargetDescriptor
    params: ParamsBlob
    programs: tuple[Program, ...]

    def data(self) -> np.ndarray:
        """The parameter data area as bytes (a read-only view of the file's blob)."""
        blob = np.frombuffer(self.model.params, np.uint8)
        return blob[self.params.data_offset :]


ProgramCache = dict[tuple[bytes, str, str, tuple[tuple[tuple[int, int], tuple[int, int | None]], ...]], Program]
"""Checked programs by (command stream, chip, NPU mode, address spaces): the layer files of
a model share one stream, so a reader of all of them decodes and checks it once."""


def load_payload(model: AxModel, where: str = "axmodel", cache: ProgramCache | None = None) -> Payload:
    """The payload of `model`; with `cache`, streams decoded and checked before are reused
    (the cached programs are shared: callers must not modify them)."""
    target = get_target(model.metadata["chip"], model.metadata["npu_mode"])
    params = encoding.decode_params(model.params, f"{where}: npu_params")
    programs = []
    for k, group in enumerate(model.groups):
        at = f"{where}: group {k} command stream"
        spaces: dict[tuple[int, int], tuple[int, int | None]] = {
            (isa.PARAMS, 0): (params.data_bytes, None),
        }
        for space, specs in ((isa.INPUT, group.inputs), (isa.OUTPUT, group.outputs)):
            for index, spec in enumerate(specs):
                spaces[(space, index)] = (spec_bytes(spec), spec_code(spec))
        key = (group.commands, target.chip, target.npu_mode, tuple(spaces.items()))
        cached = None if cache is None else cache.get(key)
        if cached is not None:
            programs.append(cached)
            continue
        program = encoding.decode_program(group.commands, at)
        if isa.CHIPS[program.chip] != target.family or program.cores != target.cores:
            raise AxcError(
                f"{at}: compiled for {isa.CHIPS[program.chip]} with {program.cores} cores, but the file says "
                f"{target.chip} {target.npu_mode}; the file is inconsistent, rebuild it"
            )
        if (program.inputs, program.outputs) != (len(group.inputs), len(group.outputs)):
            raise AxcError(f"{at}: {program.inputs} inputs and {program.outputs} outputs, the graph has {len(group.inputs)} and {len(group.outputs)}; rebuild it")
        spaces[(isa.SCRATCH, 0)] = (program.scratch_bytes, None)
        check_program(program, target, spaces, at)
        programs.append(program)
        if cache is not None:
            cache[key] = program
    return Payload(model, target, params, tuple(programs))


def read_payload(path: str) -> Payload:
    return load_payload(read_axmodel(path), path)
