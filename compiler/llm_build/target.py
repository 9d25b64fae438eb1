"""The build's integration points with the target level, one function each.

- `file_units` / `rebind_unit`: the target model of each file, and a representative
  layer's model bound to another layer's parameters (only segment names change);
- `emit_file`: one model → one `.axmodel` (`axc.codegen.emit`);
- `open_simulator`: a `LayerExecutor` running the files of a built directory in the
  simulator (`axc.sim.executor`), which reads nothing but the files;
- `predict`: the cost model's latency per shape group of an emitted file (`axc.sim.cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from axc.axmodel import read_axmodel
from axc.codegen.emit import find_models, write_model
from axc.codegen.lowering import rebind_model, set_metadata
from axc.dialects.axc import ParamAttr
from axc.isa import encoding
from axc.dialects.axtarget import ModelOpBase
from axc.params import ParamStore
from axc.sim.cost import estimate, group_tokens
from axc.sim.executor import AxModelExecutor
from axc.sim.plan import Workspace
from axc.targets import get_target

Unit = ModelOpBase
"""What one `.axmodel` file is made from: an `ax650.model` / `ax620e.model`."""


def file_units(module: ModuleOp) -> dict[str, Unit]:
    """`layer_<i>` and `post` → their target model."""
    return {model.sym_name.data: model for model in find_models(module)}


def rebind_unit(unit: Unit, mapping: dict[ParamAttr, ParamAttr], layer: int) -> Unit:
    """A copy of a representative layer's model reading layer `layer`'s parameters."""
    missing = sorted(str(s.param) for s in unit.segments() if s.param not in mapping)
    if missing:
        raise RuntimeError(f"the lowered layer reads parameters its quantized source lacks: {missing[:3]}")
    return rebind_model(unit, mapping, f"layer_{layer}")


def emit_file(path: Path, unit: Unit, store: ParamStore, metadata: dict[str, str]) -> int:
    """Write `unit` as an `.axmodel` with build `metadata`; its size in bytes."""
    set_metadata(unit, metadata)
    write_model(path, unit, store)
    return path.stat().st_size


@dataclass(frozen=True)
class GroupPrediction:
    """The cost model's estimate for one shape group of one file."""

    group: int
    label: str
    latency_ms: float
    ddr_bytes: int
    busy_ms: dict[str, float]


def predict(path: Path) -> list[GroupPrediction]:
    """The cost model's latency per shape group of an emitted `.axmodel`, from its command
    streams (the parameter blob is not read)."""
    model = read_axmodel(path, params=False)
    chip = get_target(model.metadata["chip"], model.metadata["npu_mode"])
    predictions = []
    for index, group in enumerate(model.groups):
        program = encoding.decode_program(group.commands, f"{path}: group {index} command stream")
        cost = estimate(program, chip, group_tokens(group))
        busy = {engine: seconds * 1e3 for engine, seconds in cost.busy_s.items()}
        predictions.append(GroupPrediction(index, group.name, cost.latency_s * 1e3, cost.ddr_bytes, busy))
    return predictions


class BuiltModel(AxModelExecutor):
    """The simulator's executor of a built directory, plus what the checks need: dropping a
    layer's session (and its plans) and the outputs of a `--post_topk` model."""

    def release(self, layer: int) -> None:
        self.sessions.pop(layer, None)

    def post_outputs(self, hidden: np.ndarray) -> dict[str, np.ndarray]:
        """`output` (logits), or `indices` and `probs` with --post_topk."""
        return self.post_model().run(0, {"input": hidden})

    def post(self, hidden: np.ndarray) -> np.ndarray:
        """Logits; a top-K post model gives log-probabilities of its K ids and -inf elsewhere."""
        outputs = self.post_outputs(hidden)
        if "indices" not in outputs:
            return outputs["output"]
        logits = np.full((1, 1, self.vocab), -np.inf, np.float32)
        with np.errstate(divide="ignore"):
            logits[0, 0, outputs["indices"].reshape(-1)] = np.log(outputs["probs"].reshape(-1))
        return logits


def open_simulator(directory: Path, threads: int | None = None) -> BuiltModel:
    """The simulator of a built directory (`threads`: its `Workspace.threads`, default as there)."""
    return BuiltModel(directory, None if threads is None else Workspace(threads=threads))
