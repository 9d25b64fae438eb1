"""Accuracy reports: a candidate `LayerExecutor` against an fp32 reference, layer by layer.

Teacher forcing: the reference (usually the tfm interpreter, which computes in fp32) runs
the runtime's host loop over a token sequence, prefill then decode, and every layer call is
recorded. The candidate then runs each recorded call on the same inputs, so errors do not
compound from layer to layer, and its own host loop over the same tokens for the logits.

    recording = record(ModuleExecutor(tfm_module), layout, tokens, prompt_len=48)
    report = compare(recording, ModuleExecutor(quant_module), tokens, prompt_len=48)
    print_report(report)
    report.save_json("accuracy.json")

Any executor fits (the interpreters, later the simulator running `.axmodel` files), and a
`Recording` can be kept and compared against several candidates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axc.hostloop import GroupLayout, HostLoop, LayerExecutor


@dataclass(frozen=True)
class Agreement:
    """How close `actual` rows are to `expected` rows: the worst row cosine, the max abs error."""

    cosine: float
    max_abs: float
    rows: int

    @staticmethod
    def of(actual: np.ndarray, expected: np.ndarray) -> Agreement:
        a = np.asarray(actual, np.float64).reshape(-1, np.shape(expected)[-1])
        e = np.asarray(expected, np.float64).reshape(a.shape)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1)
        dots = np.sum(a * e, axis=1)
        same = np.all(a == e, axis=1)
        cosine = np.where(same, 1.0, dots / np.where(norms > 0, norms, 1.0))
        return Agreement(float(np.min(cosine)), float(np.max(np.abs(a - e))), a.shape[0])

    def merge(self, other: Agreement) -> Agreement:
        return Agreement(min(self.cosine, other.cosine), max(self.max_abs, other.max_abs), self.rows + other.rows)


@dataclass(frozen=True)
class LayerAccuracy:
    """One decoder layer in one shape group (0 = decode, k ≥ 1 = prefill)."""

    layer: int
    group: int
    output: Agreement

    @property
    def kind(self) -> str:
        return "decode" if self.group == 0 else "prefill"


@dataclass(frozen=True)
class LogitsAccuracy:
    """The final logits of every position: top-1 agreement, worst cosine, max abs error."""

    positions: int
    top1_agreement: float
    top1_mismatches: tuple[int, ...]
    values: Agreement

    @staticmethod
    def of(actual: np.ndarray, expected: np.ndarray) -> LogitsAccuracy:
        actual, expected = np.asarray(actual), np.asarray(expected)
        same = np.argmax(actual, axis=-1) == np.argmax(expected, axis=-1)
        return LogitsAccuracy(
            positions=len(same),
            top1_agreement=float(np.mean(same)),
            top1_mismatches=tuple(int(i) for i in np.flatnonzero(~same)),
            values=Agreement.of(actual, expected),
        )


@dataclass
class AccuracyReport:
    layers: list[LayerAccuracy]
    logits: LogitsAccuracy
    label: str = "candidate"

    def worst_layer(self) -> LayerAccuracy:
        return min(self.layers, key=lambda row: row.output.cosine)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "layers": [
                {"layer": row.layer, "group": row.group, "kind": row.kind, **asdict(row.output)}
                for row in self.layers
            ],
            "worst_layer_cosine": self.worst_layer().output.cosine,
            "logits": {
                "positions": self.logits.positions,
                "top1_agreement": self.logits.top1_agreement,
                "top1_mismatches": list(self.logits.top1_mismatches),
                **asdict(self.logits.values),
            },
        }

    def save_json(self, path: str | Path) -> None:
        from axc.atomic import atomic_output

        with atomic_output(path) as stream:
            json.dump(self.to_json(), stream, indent=2)
            stream.write("\n")

    def table(self) -> Any:
        """A `rich` table: one row per layer and shape group, then the logits."""
        from rich.table import Table

        table = Table(title=f"accuracy of {self.label} against the fp32 reference")
        for column in ("layer", "group", "rows", "cosine (worst row)", "max abs error"):
            table.add_column(column, justify="right")
        for row in self.layers:
            a = row.output
            cells = (str(row.layer), f"{row.group} ({row.kind})", str(a.rows), f"{a.cosine:.6f}", f"{a.max_abs:.3e}")
            table.add_row(*cells)
        v = self.logits.values
        table.add_section()
        table.add_row(
            "logits",
            f"top-1 {self.logits.top1_agreement:.1%}",
            str(self.logits.positions),
            f"{v.cosine:.6f}",
            f"{v.max_abs:.3e}",
        )
        return table


@dataclass(frozen=True)
class LayerCall:
    """One `run_layer` call: its inputs and the outputs the executor gave."""

    layer: int
    group: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass
class Recording:
    """A teacher-forced run: the layout, every layer call, and the logits of every position."""

    layout: GroupLayout
    calls: list[LayerCall]
    logits: np.ndarray


@dataclass
class RecordingExecutor:
    """Passes calls through to `executor`, keeping a copy of every layer call."""

    executor: LayerExecutor
    calls: list[LayerCall] = field(default_factory=list)

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        return self.executor.embed(token_ids)

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {name: np.array(value) for name, value in inputs.items()}  # the host loop reuses its buffers
        outputs = self.executor.run_layer(layer, group, inputs)
        self.calls.append(LayerCall(layer, group, inputs, {n: np.array(v) for n, v in outputs.items()}))
        return outputs

    def post(self, hidden: np.ndarray) -> np.ndarray:
        return self.executor.post(hidden)


def teacher_forced_logits(
    executor: LayerExecutor, layout: GroupLayout, tokens: np.ndarray, prompt_len: int
) -> np.ndarray:
    """Logits `[len(tokens), vocab]`: prefill `tokens[:prompt_len]`, then decode the rest one by one."""
    loop = HostLoop(executor, layout)
    hidden = loop.prefill(np.asarray(tokens[:prompt_len]))
    logits = [loop.logits(row) for row in hidden]
    for token in tokens[prompt_len:]:
        logits.append(loop.logits(loop.decode_hidden(int(token))[-1]))
    return np.stack(logits)


def record(executor: LayerExecutor, layout: GroupLayout, tokens: np.ndarray, prompt_len: int) -> Recording:
    """Run `executor` teacher-forced over `tokens` and keep every layer call."""
    recorder = RecordingExecutor(executor)
    logits = teacher_forced_logits(recorder, layout, tokens, prompt_len)
    return Recording(layout, recorder.calls, logits)


def compare(
    reference: Recording,
    candidate: LayerExecutor,
    tokens: np.ndarray,
    prompt_len: int,
    reference_logits: np.ndarray | None = None,
    label: str = "candidate",
) -> AccuracyReport:
    """Per layer and shape group, `candidate` on the recorded inputs against the recorded outputs;
    then the candidate's own logits against `reference_logits` (default: the recording's)."""
    rows: dict[tuple[int, int], Agreement] = {}
    for call in reference.calls:
        output = candidate.run_layer(call.layer, call.group, call.inputs)["output"]
        agreement = Agreement.of(output, call.outputs["output"])
        key = (call.layer, call.group)
        rows[key] = rows[key].merge(agreement) if key in rows else agreement
    logits = teacher_forced_logits(candidate, reference.layout, tokens, prompt_len)
    expected = reference.logits if reference_logits is None else reference_logits
    return AccuracyReport(
        layers=[LayerAccuracy(layer, group, rows[(layer, group)]) for layer, group in sorted(rows)],
        logits=LogitsAccuracy.of(logits, expected),
        label=label,
    )


def compare_executors(
    reference: LayerExecutor,
    candidate: LayerExecutor,
    layout: GroupLayout,
    tokens: np.ndarray,
    prompt_len: int,
    label: str = "candidate",
) -> AccuracyReport:
    """`compare` against a fresh recording of `reference`."""
    return compare(record(reference, layout, tokens, prompt_len), candidate, tokens, prompt_len, label=label)


def print_report(report: AccuracyReport, console: Any = None) -> None:
    from rich.console import Console

    (console or Console()).print(report.table())
