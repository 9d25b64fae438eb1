"""`AxModelSession`: run the shape groups of one `.axmodel` file on numpy inputs.

The session reads nothing but the file: it decodes the container and every command
stream once (`axc.codegen.payload`), builds an execution plan per group on first use
(`axc.sim.plan`) and reuses it; OCM and the parameter blob are shared by the file's
groups, as on the chip.

```python
session = AxModelSession("qwen2_p128_l0_together.axmodel")
out = session.run(0, {"K_cache": k, "V_cache": v, "indices": idx, "input": x, "mask": m})
out["output"], session.counters[0].ddr_read
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from axc import npu_semantics as sem
from axc.axmodel import AxModel, read_axmodel
from axc.codegen.payload import CONTAINER_DTYPES, Payload, load_payload, spec_bytes
from axc.errors import AxcError
from axc.named_inputs import ordered_inputs
from axc.sim.plan import Memories, Plan, Workspace, build_plan


class AxModelSession:
    """Executes the command streams of one `.axmodel` (see the module docstring)."""

    def __init__(self, model: str | Path | AxModel, workspace: Workspace | None = None):
        self.workspace = workspace if workspace is not None else Workspace()
        if isinstance(model, AxModel):
            self.where = "axmodel"
            self.payload: Payload = load_payload(model, cache=self.workspace.programs)
        else:
            self.where = str(model)
            self.payload = load_payload(read_axmodel(model), self.where, self.workspace.programs)
        target = self.payload.target
        self.ocm = np.full(target.ocm_bytes_per_core * target.cores, sem.FILL_BYTE, np.uint8)
        self.params = self.payload.data()  # read-only, no copy: programs never write parameters
        self.plans: dict[int, Plan] = {}
        self.counters: dict[int, sem.Counters] = {}
        self.signatures: dict[int, tuple[list[str], list[tuple[int, ...]], list[str]]] = {}
        """By group, built with its plan: input names, input shapes, output names."""

    @property
    def model(self) -> AxModel:
        return self.payload.model

    def group_count(self) -> int:
        return len(self.model.groups)

    def input_names(self, group: int = 0) -> list[str]:
        return [t.name for t in self.model.groups[self.check_group(group)].inputs]

    def output_names(self, group: int = 0) -> list[str]:
        return [t.name for t in self.model.groups[self.check_group(group)].outputs]

    def check_group(self, group: int) -> int:
        count = self.group_count()
        if not 0 <= group < count:
            raise AxcError(f"{self.where}: no shape group {group} (the file has {count}: 0..{count - 1})")
        return group

    def plan(self, group: int) -> Plan:
        """The execution plan of `group`, built on first use."""
        group = self.check_group(group)
        if group not in self.plans:
            spec = self.model.groups[group]
            program = self.payload.programs[group]
            memories = Memories(
                self.ocm,
                self.params,
                np.zeros(program.scratch_bytes, np.uint8),
                [np.zeros(spec_bytes(t), np.uint8) for t in spec.inputs],
                [np.zeros(spec_bytes(t), np.uint8) for t in spec.outputs],
            )
            shapes_in = [(t.shape, CONTAINER_DTYPES[t.dtype]) for t in spec.inputs]
            shapes_out = [(t.shape, CONTAINER_DTYPES[t.dtype]) for t in spec.outputs]
            analysis = self.workspace.analysis(spec.commands, program)
            self.plans[group] = build_plan(program, memories, shapes_in, shapes_out, self.workspace, analysis)
            self.counters[group] = sem.Counters()
            self.signatures[group] = ([t.name for t in spec.inputs], [t.shape for t in spec.inputs], [t.name for t in spec.outputs])
        return self.plans[group]

    def run(
        self, group: int, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray], as_stored: bool = False
    ) -> dict[str, np.ndarray]:
        """Run one shape group; outputs by name (floats as fp32, integers as stored;
        `as_stored`: every output in its declared dtype, e.g. bf16)."""
        plan = self.plans.get(group) or self.plan(group)
        names, shapes, outputs = self.signatures[group]
        values = ordered_inputs(f"group {group}", names, inputs)
        for name, shape, value in zip(names, shapes, values):
            if (value.shape if isinstance(value, np.ndarray) else tuple(np.shape(value))) != shape:
                raise AxcError(f"input {name} of group {group} has shape {list(np.shape(value))}, expected {list(shape)}")
        results = plan.run(values, as_stored)
        total = self.counters[group]
        per_call = plan.counters
        total.ddr_read += per_call.ddr_read
        total.ddr_write += per_call.ddr_write
        total.dma_ops += per_call.dma_ops
        total.vector_ops += per_call.vector_ops
        total.calls += 1
        for fmt, macs in per_call.macs.items():
            total.add_macs(fmt, macs)
        return dict(zip(outputs, results, strict=True))
