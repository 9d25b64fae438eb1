"""Check levels of `axc-llm-build`: the emitted files, run by the simulator (DESIGN §2.5).

`-c 1` runs every layer file, decode and every prefill group, against the fp32 reference
(the `tfm` interpreter) on the same inputs, layer by layer with teacher forcing: random
tokens are embedded from the built bf16 table, a prompt long enough to use every prefill
group is run chunk by chunk through the runtime's host loop (so each group sees a real,
partially filled cache), then a few decode steps. Each layer is driven as a one-layer model
whose "embedding" replays the previous layer's reference outputs, so only one layer's
weights are in memory at a time. The post model is checked on the last layer's outputs.
As in the build, layers that differ only in their weights share one reference module,
specialized to the shape groups once and run on each layer's own parameters.
The reference runs layer after layer in this process; with `--parallel N` up to N worker
processes (no more than the cores) run each layer's recorded calls in the simulator while
the reference moves on, and the results are gathered in layer order, so the report is the
serial check's, number for number. The post model's reference runs while the workers
finish their last layers, then they simulate the post file on a share of the rows each
(the lm_head's fp32 reference and the post file are the check's largest arrays: never in
memory at the same time). Every process of the check multiplies with one BLAS thread,
serial or not: the processes are the parallelism (BLAS threads on top would oversubscribe
the cores), and the products are the same calls with the same threading either way.

`-c 2` tokenizes `--prompt`, runs the whole built directory in the simulator with the host
loop, prints the first token's top-10 candidates and the greedy text, and compares it with
transformers' own fp32 greedy output (or the fp32 `tfm` interpreter for GPTQ checkpoints,
which transformers cannot load without extra packages).
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Hashable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from axc.accuracy import AccuracyReport, Agreement, LayerAccuracy, LogitsAccuracy, RecordingExecutor
from axc.binding import store_for
from axc.llm_build import target
from axc.llm_build.driver import BuildResult
from axc.llm_build.layers import (
    ParamKey, keys_of, leave_signals_to_parent, reference_specs, run_passes, worker_pool,
)
from axc.llm_build.log import BuildLog
from axc.llm_build.runtime_files import write_json
from axc.llm_build.validate import check_workers
from axc.dialects.axc import POST, ParamAttr, set_module_scopes
from axc.errors import AxcError
from axc.frontend.views import open_model_checkpoint
from axc.frontend.hf_import import MODEL_SCOPE, build_layer, build_post
from axc.hostloop import GroupLayout, HostLoop
from axc.interpreters.runner import ModuleRunner
from axc.kernels import softmax
from axc.params import Checkpoint, ParamStore
from axc.structure import params_in_order, structure_key

CHECK_REPORT = "check_report.json"
DECODE_STEPS = 2
DECODE_ONLY_PROMPT = 6
SEED = 0
LOW_COSINE = 0.99
"""Below this worst-row cosine a layer is reported as a warning (vendor builds show ~0.998)."""


def reference_module(result: BuildResult, function: func.FuncOp) -> ModuleOp:
    """`function` (a `tfm` layer or `@post`) alone in a module, specialized to the shape groups."""
    module = ModuleOp([function])
    set_module_scopes(module, {MODEL_SCOPE: str(result.plan.model_dir)})
    run_passes(module, reference_specs(result.plan))
    return module


class RenamedParams(ParamStore):
    """`store` read through `names`: a representative layer's functions read another layer's
    weights (the interpreters only read parameters: get, rows, shape, dtype)."""

    def __init__(self, store: ParamStore, names: dict[ParamKey, ParamKey]):
        super().__init__()
        self.store, self.names = store, names

    def name(self, scope: str, key: str) -> ParamKey:
        return self.names.get((scope, key), (scope, key))

    def get(self, scope: str, key: str) -> np.ndarray:
        return self.store.get(*self.name(scope, key))

    def rows(self, scope: str, key: str, start: int, stop: int) -> np.ndarray:
        return self.store.rows(*self.name(scope, key), start, stop)

    def shape(self, scope: str, key: str) -> tuple[int, ...]:
        return self.store.shape(*self.name(scope, key))

    def dtype(self, scope: str, key: str) -> np.dtype:
        return self.store.dtype(*self.name(scope, key))

    def has(self, scope: str, key: str) -> bool:
        return self.store.has(*self.name(scope, key))

    def scopes(self) -> list[str]:
        return self.store.scopes()

    def checkpoint(self, scope: str) -> Checkpoint | None:
        return self.store.checkpoint(scope)


@dataclass
class Representative:
    """A layer whose specialized reference module serves every layer of its structure."""

    layer: int
    module: ModuleOp
    params: list[ParamAttr]


@dataclass
class LayerReferences:
    """The fp32 reference of each decoder layer. Layers of one structure (`shared_structures`'
    key: they differ only in parameter names, as in the build) share one specialized module,
    run on each layer's own weights, so only the first layer of a structure is specialized."""

    result: BuildResult
    checkpoint: Checkpoint
    representatives: dict[Hashable, Representative] = field(default_factory=dict)

    def __call__(self, layer: int) -> tuple[ModuleRunner, int]:
        """The reference of `layer` and the layer whose function names it has."""
        function = build_layer(self.result.plan.config, self.checkpoint, layer)
        key, mine = structure_key(function), params_in_order(function)
        rep = self.representatives.get(key)
        if rep is None:
            rep = self.representatives[key] = Representative(layer, reference_module(self.result, function), mine)
            return ModuleRunner(rep.module), layer
        names = dict(zip(keys_of(rep.params), keys_of(mine), strict=True))
        return ModuleRunner(rep.module, RenamedParams(store_for(rep.module), names)), rep.layer

    def close(self) -> None:
        self.checkpoint.close()
        for rep in self.representatives.values():
            store_for(rep.module).close()


@dataclass
class LayerSlice:
    """One decoder layer as a one-layer model whose `embed` hands out the layer's inputs
    (the previous layer's reference outputs) in call order."""

    reference: ModuleRunner
    functions: int
    """The layer whose functions `reference` has (a representative of the layer's structure)."""
    inputs: Callable[[np.ndarray], np.ndarray]

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        return self.inputs(token_ids)

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        name = f"layer_{self.functions}_g{group}"
        return dict(zip(self.reference.output_names(name), self.reference.call(name, inputs), strict=True))

    def post(self, hidden: np.ndarray) -> np.ndarray:
        raise AssertionError("a layer slice has no post model")


@dataclass
class Replay:
    """Hands out recorded hidden states one call at a time."""

    states: list[np.ndarray]
    index: int = 0

    def __call__(self, token_ids: np.ndarray) -> np.ndarray:
        state = self.states[self.index]
        self.index += 1
        return state


def check_sequence(layout: GroupLayout, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """Random tokens: a prompt that uses every prefill group, then decode steps."""
    rng = np.random.default_rng(SEED)
    longest = layout.max_prompt_len if layout.prefill_len else min(DECODE_ONLY_PROMPT, layout.kv_cache_len - DECODE_STEPS)
    prompt_len = min(longest, layout.kv_cache_len - DECODE_STEPS)
    steps = min(DECODE_STEPS, layout.kv_cache_len - prompt_len)
    tokens = rng.integers(0, vocab, prompt_len + steps)
    return tokens[:prompt_len], tokens[prompt_len:]


def vendor_line(layer: int, group: int, history: int, cosine: float) -> str:
    kind = "decode" if group == 0 else "prefill"
    where = "" if group == 0 else f" (group {group}, history {history})"
    return f"{kind} layer{layer}_gt layer{layer}_got cos_sim is: {cosine:.6f}{where}"


@dataclass(frozen=True)
class SimulatedCall:
    """One recorded layer call: the group, its inputs and the reference's output."""

    group: int
    inputs: dict[str, np.ndarray]
    expected: np.ndarray


def reference_calls(
    references: LayerReferences, layout: GroupLayout, layer: int, inputs: Callable[[np.ndarray], np.ndarray],
    prompt: np.ndarray, decode: np.ndarray,
) -> list[SimulatedCall]:
    """Layer `layer`'s reference calls on the reference's own inputs (their outputs are the
    next layer's inputs)."""
    recorder = RecordingExecutor(LayerSlice(*references(layer), inputs))
    loop = HostLoop(recorder, replace(layout, num_layers=1))
    loop.prefill(prompt)
    for token in decode:
        loop.decode_hidden(int(token))
    return [SimulatedCall(c.group, c.inputs, np.asarray(c.outputs["output"], np.float32)) for c in recorder.calls]


_simulator: target.BuiltModel | None = None
"""A worker's simulator of the built directory (opened on its first layer)."""
_simulator_threads: int | None = None
"""Its threads: one in a check worker (the processes are the parallelism), else the default."""


def worker_simulator(directory: Path) -> target.BuiltModel:
    global _simulator
    if _simulator is None or _simulator.directory != directory:
        _simulator = target.open_simulator(directory, _simulator_threads)
    return _simulator


def simulate_layer(directory: Path, layer: int, calls: list[SimulatedCall]) -> dict[int, Agreement]:
    """Layer `layer`'s file on the recorded calls: the agreement per shape group."""
    simulator = worker_simulator(directory)
    groups: dict[int, Agreement] = {}
    for call in calls:
        agreement = Agreement.of(simulator.run_layer(layer, call.group, call.inputs)["output"], call.expected)
        groups[call.group] = groups[call.group].merge(agreement) if call.group in groups else agreement
    simulator.release(layer)
    return groups


def simulate_post(directory: Path, rows: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The post file's outputs on each hidden row."""
    return [worker_simulator(directory).post_outputs(row) for row in rows]


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Pending(Protocol[T_co]):
    """A simulated result, ready or on its way (a `concurrent.futures.Future`)."""

    def done(self) -> bool: ...

    def result(self) -> T_co: ...


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T

    def done(self) -> bool:
        return True

    def result(self) -> T:
        return self.value


class Submit(Protocol):
    def __call__(self, function: Callable[..., T], /, *args: Any) -> Pending[T]: ...


@contextmanager
def simulators(workers: int) -> Iterator[Submit]:
    """`submit(function, *args)` -> its pending result: run by one of `workers` processes
    (`worker_pool`), or in this process (at submission) when 0."""
    if workers == 0:
        yield lambda function, *args: Done(function(*args))
        return
    died = (
        "a -c 1 simulator worker process died (killed for lack of memory?); "
        "free memory, or check with fewer workers (--parallel 1 simulates in this process)"
    )
    with worker_pool(workers, start_check_worker, (), died) as pool:
        yield pool.submit


def start_check_worker() -> None:
    """A check worker: signals left to the parent, one BLAS thread (as in the parent's
    check), a simulator without a helper thread, and the objects inherited from the parent
    frozen (collections then neither scan nor copy their pages)."""
    global _simulator_threads
    leave_signals_to_parent()
    gc.freeze()
    threadpool_limits(limits=1, user_api="blas")
    _simulator_threads = 1


def check_layers(result: BuildResult, log: BuildLog) -> AccuracyReport:
    """`-c 1`: every layer file and the post model against the fp32 reference (one BLAS
    thread per process)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return check_layers_threaded(result, log)


def check_layers_threaded(result: BuildResult, log: BuildLog) -> AccuracyReport:
    plan = result.plan
    layers = plan.config.num_hidden_layers
    simulator = target.open_simulator(result.directory)
    simulator.release(0)  # here it only embeds (`simulate_layer` and `simulate_post` run the files)
    layout = simulator.layout
    prompt, decode = check_sequence(layout, plan.config.vocab_size)
    workers = check_workers(plan.options.parallel, layers)
    log.info(
        f"checking {layers} layer files x {len(layout.histories)} groups in the simulator"
        + (f" ({workers} worker processes)" if workers else "")
        + f": {len(prompt)} prompt tokens, {len(decode)} decode steps, teacher-forced against the fp32 reference"
    )
    inputs: Callable[[np.ndarray], np.ndarray] = simulator.embed
    rows: list[LayerAccuracy] = []
    references = LayerReferences(result, open_model_checkpoint(plan.model_dir))
    with closing(references), log.stage("check layers"):
        pending: list[Pending[dict[int, Agreement]]] = []

        def report_ready(wait: bool) -> None:
            """Print the layers done so far, in order (all of them when `wait`)."""
            while len(rows_done) < len(pending) and (wait or pending[len(rows_done)].done()):
                layer = len(rows_done)
                rows_done.append(layer)
                for group, agreement in sorted(pending[layer].result().items()):
                    rows.append(LayerAccuracy(layer, group, agreement))
                    log.print(vendor_line(layer, group, layout.histories[group], agreement.cosine))

        rows_done: list[int] = []
        with simulators(workers) as submit:
            for layer in range(layers):
                calls = reference_calls(references, layout, layer, inputs, prompt, decode)
                pending.append(submit(simulate_layer, result.directory, layer, calls))
                inputs = Replay([c.expected for c in calls])
                report_ready(wait=False)
            # The post model on the last layer's last row of every call: its reference
            # while the workers finish, then the file, the rows split over the workers.
            hidden = [c.expected[:, -1:, :] for c in calls]
            expected = post_reference(result, hidden)
            report_ready(wait=True)
            parts = np.array_split(np.arange(len(hidden)), max(1, workers))
            simulated = [submit(simulate_post, result.directory, [hidden[i] for i in part]) for part in parts if part.size]
            logits = post_accuracy([outputs for part in simulated for outputs in part.result()], expected)
        log.print(
            f"post layer_gt layer_got cos_sim is: {logits.values.cosine:.6f} "
            f"(top-1 agreement {logits.top1_agreement:.0%} over {logits.positions} positions)"
        )
    report = AccuracyReport(rows, logits, label="simulated .axmodel files")
    log.print(report.table())
    data = {
        "level": 1, "prompt_tokens": len(prompt), "decode_steps": len(decode), "seed": SEED,
        "seconds": log.timings["check layers"], **report.to_json(),
    }
    write_json(result.directory / CHECK_REPORT, data)
    worst = report.worst_layer()
    message = (
        f"layer check done: worst cosine {worst.output.cosine:.6f} (layer {worst.layer}, {worst.kind}); "
        f"{CHECK_REPORT} written"
    )
    if worst.output.cosine < LOW_COSINE:
        log.warning(f"{message}; below {LOW_COSINE}: try wider weights (-w s8 or bf16)")
    else:
        log.success(message)
    return report


def post_reference(result: BuildResult, rows: list[np.ndarray]) -> np.ndarray:
    """The fp32 reference's logits `[rows, vocab]` of `@post` on each hidden row."""
    checkpoint = open_model_checkpoint(result.plan.model_dir)
    function = build_post(result.plan.config, checkpoint)
    checkpoint.close()
    module = reference_module(result, function)
    reference = ModuleRunner(module)
    try:
        return np.stack([reference.call(POST, [row])[0].reshape(-1) for row in rows])
    finally:
        store_for(module).close()


def post_accuracy(outputs: list[dict[str, np.ndarray]], expected: np.ndarray) -> LogitsAccuracy:
    """The simulated post model's outputs against the reference's logits."""
    if "indices" not in outputs[0]:
        return LogitsAccuracy.of(np.stack([o["output"].reshape(-1) for o in outputs]), expected)
    # --post_topk: compare the ids' probabilities and the argmax.
    indices = np.stack([o["indices"].reshape(-1) for o in outputs]).astype(np.int64)
    probs = np.stack([o["probs"].reshape(-1) for o in outputs])
    wanted = np.take_along_axis(softmax(expected), indices, axis=-1)
    same = indices[:, 0] == np.argmax(expected, axis=-1)
    return LogitsAccuracy(len(same), float(np.mean(same)), tuple(int(i) for i in np.flatnonzero(~same)), Agreement.of(probs, wanted))


# --- -c 2 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRun:
    prompt_ids: list[int]
    generated: list[int]
    text: str
    top: list[tuple[int, str, float]]
    reference: list[int]
    reference_text: str
    reference_kind: str

    @property
    def agree(self) -> bool:
        return self.generated == self.reference

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_ids": self.prompt_ids,
            "generated": self.generated,
            "text": self.text,
            "top10": [{"id": i, "token": t, "probability": p} for i, t, p in self.top],
            "reference": self.reference,
            "reference_text": self.reference_text,
            "reference_kind": self.reference_kind,
            "agree": self.agree,
        }


def load_tokenizer(model_dir: Path) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as error:
        raise AxcError(f"cannot load the tokenizer of {model_dir} for -c 2 ({str(error).splitlines()[0]}); add its tokenizer files") from None


def eos_ids(result: BuildResult, tokenizer: Any) -> set[int]:
    configured = result.plan.config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [] if configured is None else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def reference_generate(result: BuildResult, prompt: list[int], max_new: int, eos: set[int]) -> tuple[list[int], str]:
    """Greedy fp32 tokens from transformers (or the `tfm` interpreter for GPTQ)."""
    plan = result.plan
    if plan.gptq:
        from axc.frontend.hf_import import import_hf
        from axc.interpreters.executor import ModuleExecutor

        module = import_hf(plan.model_dir, plan.options.model_config, plan.options.kv_cache_len)
        run_passes(module, reference_specs(plan))
        executor = ModuleExecutor(module)
        tokens = HostLoop(executor, executor.layout).generate(np.array(prompt), max_new, eos)
        return tokens, "the fp32 tfm interpreter (GPTQ, dequantized exactly)"
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = AutoModelForCausalLM.from_pretrained(str(plan.model_dir), dtype=torch.float32, local_files_only=True)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=max_new, do_sample=False, eos_token_id=sorted(eos) or None,
            pad_token_id=next(iter(sorted(eos)), 0),
        )
    return [int(t) for t in out[0, len(prompt):]], "transformers, fp32"


def check_prompt(result: BuildResult, log: BuildLog) -> PromptRun:
    """`-c 2`: the prompt through the simulated directory and through the reference."""
    plan = result.plan
    tokenizer = load_tokenizer(plan.model_dir)
    prompt = [int(t) for t in tokenizer(plan.options.prompt)["input_ids"]]
    simulator = target.open_simulator(result.directory)
    layout = simulator.layout
    limit = layout.max_prompt_len
    if not 0 < len(prompt) <= limit or len(prompt) >= layout.kv_cache_len:
        raise AxcError(
            f"--prompt is {len(prompt)} tokens; this build takes 1..{min(limit, layout.kv_cache_len - 1)} "
            "(raise --kv_cache_len/--last_kv_cache_len or shorten the prompt)"
        )
    eos = eos_ids(result, tokenizer)
    max_new = layout.kv_cache_len - len(prompt) + 1
    first: list[np.ndarray] = []
    with log.stage("check prompt"):
        generated = HostLoop(simulator, layout).generate(np.array(prompt), max_new, eos, first.append)
        reference, kind = reference_generate(result, prompt, max_new, eos)
    probs = softmax(first[0][None])[0]
    order = np.argsort(-probs, kind="stable")[:10]
    top = [(int(i), tokenizer.decode([int(i)]), float(probs[i])) for i in order if np.isfinite(first[0][i])]
    run = PromptRun(
        prompt, generated, tokenizer.decode(generated, skip_special_tokens=True), top, reference,
        tokenizer.decode(reference, skip_special_tokens=True), kind,
    )
    log.print(f"prompt {plan.options.prompt!r} -> {len(prompt)} tokens {prompt}")
    log.print("top-10 candidates for the first token (simulated):")
    for rank, (token, text, p) in enumerate(run.top, 1):
        log.print(f"  {rank:>2}. {token:>7} {text!r:<16} {p:.4f}")
    log.print(f"simulated .axmodel answers {plan.options.prompt!r} with {run.text!r}", style="bold")
    log.print(f"reference ({kind}) answers {run.reference_text!r}")
    verdict = "agree" if run.agree else "DIFFER"
    (log.success if run.agree else log.warning)(f"prompt check: the simulated model and the reference {verdict}")
    path = result.directory / CHECK_REPORT
    data = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, {**data, "level": 2, "prompt": {**run.to_json(), "seconds": log.timings["check prompt"]}})
    return run


def run_checks(result: BuildResult, log: BuildLog) -> None:
    level = result.plan.options.check_level
    if level >= 1:
        check_layers(result, log)
    if level >= 2:
        check_prompt(result, log)

