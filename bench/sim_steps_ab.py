"""Per decode token, what the simulator's specialised vector and attention steps cost
against the `npu_semantics` calls they replace, in one process, tokens alternating.

    python bench/sim_steps_ab.py [--build DIR] [--tokens 24]

Every step of every plan is timed (`perf_counter` around each call); "A" runs each
specialised step's `npu_semantics` call instead (the fused act_mul: the staging copies and
`sem.act_mul`; the attention's matmuls: `sem.matmul`), "B" the steps as planned. The
results are the same bits either way, so the two share one decode. Prints the median
milliseconds per token by kind of step.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
PROMPT = np.array([9707, 11, 1246, 525, 498, 30, 358, 1079])
Step = Callable[[], object]
VECTOR_KINDS = ["AddRmsNorm", "Binary", "RmsNorm", "Rope", "fill", "mask add + online_softmax", "OnlineSoftmax", "SiluMul"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "out" / "qwen05b_ax650_kv255")
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()

    from axc import npu_semantics as sem
    from axc.hostloop import HostLoop
    from axc.sim import attention, vector
    from axc.sim.executor import AxModelExecutor
    from axc.sim.plan import Workspace

    originals: dict[int, tuple[np.ndarray, ...]] = {}
    for cls in (attention.RowsByTile, attention.Outer):
        def recording(c: type, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, *rest: object, of: Callable[..., object] = cls.of) -> object:
            step = of(out, lhs, rhs, *rest)
            if step is not None:
                originals[id(step)] = (out, lhs, rhs)
            return step
        cls.of = classmethod(recording)  # records the 3-D views for "A"

    executor = AxModelExecutor(args.build, Workspace(threads=2))
    executor.prepare()
    loop = HostLoop(executor, executor.layout)
    spent: dict[str, dict[str, float]] = {"A": collections.defaultdict(float), "B": collections.defaultdict(float)}
    mode = ["A"]

    def timed(step: Step, kind: str) -> Step:
        def run() -> None:
            start = time.perf_counter()
            step()
            spent[mode[0]][kind] += time.perf_counter() - start
        return run

    def semantics(step: object) -> tuple[str, Step] | None:
        """The kind of a specialised step and its `npu_semantics` call, or None."""
        if isinstance(step, attention.RowsByTile):
            out, lhs, rhs = originals[id(step)]
            return "attention scores", partial(sem.matmul, out, lhs, rhs, alpha=float(step.alpha), transpose_b=True)
        if isinstance(step, attention.Outer):
            return "attention p @ v (new row)", step.fallback
        if isinstance(step, vector.OnlineSoftmax) and step.mask is not None:
            assert isinstance(step.fallback, vector.Both)
            first, second = step.fallback.first, step.fallback.second
            return "mask add + online_softmax", vector.Both(first.fallback, second.fallback)
        if isinstance(step, vector.Fill):
            return "fill", partial(sem.fill, step.out, float(step.value.astype(np.float32)))
        fallback = getattr(step, "fallback", None)
        return None if fallback is None else (type(step).__name__, fallback)

    plans = []
    for session in (*executor.sessions.values(), executor.post_model()):
        for plan in session.plans.values():
            planned, before = [], []
            for step in plan.steps:
                if type(step).__name__ == "Fused" and isinstance(step.op, vector.SiluMulProducts):
                    fused = step.op.fallback.__self__  # the Fused over staged products, its op a SiluMul
                    def staged(fused: object = fused) -> None:
                        for name, j in fused.sources.items():
                            np.copyto(fused.staged[name], fused.products[:, j], casting="unsafe")
                        fused.op.fallback()
                    kind = "act_mul (after the MLP's batch)"
                    planned.append(timed(_replace_op(step, timed(step.op, kind)), "Fused (the batch, incl. act_mul)"))
                    before.append(timed(_replace_op(step, timed(staged, kind)), "Fused (the batch, incl. act_mul)"))
                    continue
                pair = semantics(step)
                if pair is None:
                    kind = type(step).__name__ if not isinstance(step, partial) else getattr(step.func, "__name__", "call")
                    planned.append(timed(step, kind))
                    before.append(planned[-1])
                else:
                    planned.append(timed(step, pair[0]))
                    before.append(timed(pair[1], pair[0]))
            plans.append((plan, planned, before))

    def use(which: str) -> None:
        mode[0] = which
        for plan, planned, before in plans:
            plan.steps = planned if which == "B" else before

    use("A")
    loop.reset()
    token = int(np.argmax(loop.logits(loop.prefill(PROMPT)[-1])))
    tokens: dict[str, list[float]] = {"A": [], "B": []}
    kinds: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for k in range(2 * args.tokens + 2):
        which = "AB"[k % 2]
        use(which)
        before_token = dict(spent[which])
        start = time.perf_counter()
        token = int(np.argmax(loop.logits(loop.decode_hidden(token)[-1])))
        if k >= 2:
            tokens[which].append(time.perf_counter() - start)
            kinds[which].append({c: spent[which][c] - before_token.get(c, 0.0) for c in spent[which]})
    print(f"ms per decode token, medians of {args.tokens} alternating tokens (A: npu_semantics calls, B: as planned)")
    for kind in sorted(set(kinds["A"][0]) | set(kinds["B"][0])):
        a, b = (float(np.median([t.get(kind, 0.0) for t in kinds[w]])) * 1e3 for w in "AB")
        if a or b:
            print(f"  {kind:34s} A {a:7.2f}  B {b:7.2f}")
    specialised = [*VECTOR_KINDS, "act_mul (after the MLP's batch)", "attention scores", "attention p @ v (new row)"]
    a, b = (float(np.median([sum(t.get(k, 0.0) for k in specialised) for t in kinds[w]])) * 1e3 for w in "AB")
    print(f"  {'all specialised steps':34s} A {a:7.2f}  B {b:7.2f}")
    print(f"  {'whole token':34s} A {np.median(tokens['A']) * 1e3:7.2f}  B {np.median(tokens['B']) * 1e3:7.2f}")


def _replace_op(fused: object, op: Step) -> Step:
    """`fused` (a `Fused` step) with the op over its products replaced by `op`."""
    import dataclasses

    return dataclasses.replace(fused, op=op)


if __name__ == "__main__":
    main()
