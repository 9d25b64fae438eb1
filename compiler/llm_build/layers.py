"""Compile structure once, stream weights (DESIGN §2.2) for `axc-llm-build`.

The main process lowers one representative decoder layer per distinct structure (one for
Llama/Qwen2) plus `@post`, through one pass pipeline:

    quantize-weights → specialize-groups → set-activation-type → post-topk → tile → ... (→ target)

Every other layer is bound, not compiled: a worker runs `quantize-weights` on that
layer's own `tfm` function (its weights, quantized the same way), pairs its parameters
with the representative's (`params_in_order`: same structure, same order), and re-binds
a copy of the representative's lowered unit to them before emitting the file. Forked
workers inherit the lowered models; spawned ones get them as text (a `LayerJob` is plain
data), so both start methods work.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline

from axc.binding import store_for
from axc.llm_build import target
from axc.llm_build.pipeline import llm_pipeline, spec, stage
from axc.llm_build.pipeline import pipeline_text as pipeline_text_of
from axc.llm_build.runtime_files import layer_filename
from axc.llm_build.validate import BuildPlan, worker_count
from axc.dialects import make_context
from axc.dialects.axc import EMBED, ParamAttr, layer_index, set_module_scopes
from axc.errors import AxcError
from axc.frontend.config import ModelConfig, load_config
from axc.frontend.views import open_model_checkpoint
from axc.frontend.hf_import import MODEL_SCOPE, build_layer, import_hf
from axc.passes import PASSES
from axc.passes.quantize_weights import QuantizeWeights
from axc.passes.specialize_groups import SpecializeGroups
from axc.structure import params_in_order, shared_structures
from axc.textio import module_text, parse_module

ParamKey = tuple[str, str]


def build_pipeline(plan: BuildPlan) -> list[ModulePass]:
    """The pass pipeline of `plan` (`axc.llm_build.pipeline`)."""
    o = plan.options
    return llm_pipeline(
        chip=plan.target.chip,
        npu_mode=plan.target.npu_mode,
        kv_cache_len=o.kv_cache_len,
        prefill_len=o.prefill_len,
        last_kv_cache_len=o.last_kv_cache_len,
        weight_type=o.weight_type,
        post_weight_type=o.post_weight_type,
        hidden=o.hidden_state_type,
        compute=plan.compute_type,
        post_topk=o.post_topk,
        float_matmul_on_conv=o.float_matmul_use_conv_eu and plan.target.conv is not None,  # AX620E: ignored (the driver says so)
    )


def quantize_spec(plan: BuildPlan) -> str:
    """The first stage, run per layer by the workers, as an `axc-opt` spec."""
    return spec(stage(build_pipeline(plan), QuantizeWeights))


def structure_specs(plan: BuildPlan) -> list[str]:
    """The passes after quantization, as `axc-opt` specs."""
    return [spec(p) for p in build_pipeline(plan) if not isinstance(p, QuantizeWeights)]


def reference_specs(plan: BuildPlan) -> list[str]:
    """`specialize-groups` alone: the fp32 `tfm` reference of the check levels."""
    return [spec(stage(build_pipeline(plan), SpecializeGroups))]


def pipeline_text(plan: BuildPlan) -> str:
    """The whole pipeline as one `axc-opt -p` argument (for logs and the report)."""
    return pipeline_text_of(build_pipeline(plan))


def run_passes(module: ModuleOp, specs: list[str], timings: dict[str, float] | None = None) -> None:
    """Apply `specs` (an `axc-opt -p` pipeline) to `module`; wall time per pass into `timings`."""
    clock = [time.perf_counter()]

    def tick(previous: object, _module: ModuleOp, _next: object) -> None:
        now = time.perf_counter()
        if previous is not None and timings is not None:
            name = previous.name  # type: ignore[attr-defined]  # xDSL's callback passes the ModulePass it ran as object
            timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    PassPipeline.parse_spec(PASSES, ",".join(specs), tick).apply(make_context(), module)


def keys_of(params: list[ParamAttr]) -> tuple[ParamKey, ...]:
    return tuple((p.scope.data, p.key.data) for p in params)


@dataclass(frozen=True)
class LayerJob:
    """What a worker needs to build any layer (plain data, picklable)."""

    model_dir: str
    model_config: str | None
    quantize: str
    structure: str
    """The lowered module of the representative layers as text (filled for spawned workers only)."""
    representative: tuple[int, ...]
    """Per layer, the representative layer it is bound from."""
    representative_params: dict[int, tuple[ParamKey, ...]]
    """Per representative, its quantized `tfm` function's parameters in order."""
    model_type: str
    prefill_len: int
    out_dir: str
    metadata: dict[str, str]
    context_len: int | None = None
    """The kv_cache_len (a longrope's factor table follows it)."""


@dataclass(frozen=True)
class LayerResult:
    layer: int
    path: str
    size: int
    seconds: float


@dataclass
class Structure:
    """The lowered representative layers and post, and what the workers need."""

    module: ModuleOp
    job: LayerJob
    pass_timings: dict[str, float] = field(default_factory=dict)


def quantized_layer(job: LayerJob, config: ModelConfig, layer: int) -> tuple[ModuleOp, func.FuncOp]:
    """Layer `layer`'s `tfm` function after `quantize-weights`, alone in a module (its store
    holds the layer's quantized weights)."""
    checkpoint = open_model_checkpoint(job.model_dir)
    function = build_layer(config, checkpoint, layer)
    checkpoint.close()
    module = ModuleOp([function])
    set_module_scopes(module, {MODEL_SCOPE: job.model_dir})
    run_passes(module, [job.quantize])
    return module, function


def layer_functions(module: ModuleOp) -> dict[func.FuncOp, int]:
    """The decoder layer functions of `module`, with their layer index."""
    return {f: index for f in module.ops if isinstance(f, func.FuncOp) and (index := layer_index(f)) is not None}


def prepare(plan: BuildPlan, out_dir: Path, metadata: dict[str, str]) -> Structure:
    """Lower the representative layers and `@post` once."""
    module = import_hf(plan.model_dir, plan.options.model_config, plan.options.kv_cache_len)
    layers = layer_functions(module)
    representative: dict[int, int] = {}
    for members in shared_structures(list(layers)):
        for member in members:
            representative[layers[member]] = layers[members[0]]
    keep = set(representative.values())
    for op in list(module.ops):
        if isinstance(op, func.FuncOp) and (op.sym_name.data == EMBED or (op in layers and layers[op] not in keep)):
            module.body.block.erase_op(op)
    timings: dict[str, float] = {}
    quantize = quantize_spec(plan)
    run_passes(module, [quantize], timings)
    params = {index: keys_of(params_in_order(f)) for f, index in layer_functions(module).items()}
    run_passes(module, structure_specs(plan), timings)
    job = LayerJob(
        model_dir=str(plan.model_dir),
        model_config=None if plan.options.model_config is None else str(plan.options.model_config.resolve()),
        quantize=quantize,
        structure="",
        representative=tuple(representative[i] for i in range(plan.config.num_hidden_layers)),
        representative_params=params,
        model_type=plan.config.model_type,
        prefill_len=plan.options.prefill_len,
        out_dir=str(out_dir),
        metadata=metadata,
        context_len=plan.options.kv_cache_len,
    )
    return Structure(module, job, timings)


@dataclass
class LayerBuilder:
    """Builds layer files from a `LayerJob` and the lowered representative models."""

    job: LayerJob
    units: dict[str, target.Unit]
    config: ModelConfig

    @staticmethod
    def of(job: LayerJob, module: ModuleOp | None = None) -> LayerBuilder:
        """From the lowered module itself, or (in a spawned worker) from `job.structure`."""
        module = module if module is not None else parse_module(job.structure, "<structure>")
        return LayerBuilder(job, target.file_units(module), load_config(job.model_dir, job.model_config, job.context_len))

    def __call__(self, layer: int) -> LayerResult:
        start = time.perf_counter()
        job = self.job
        rep = job.representative[layer]
        module, function = quantized_layer(job, self.config, layer)
        mine = params_in_order(function)
        mapping = {ParamAttr(s, k): p for (s, k), p in zip(job.representative_params[rep], mine, strict=True)}
        unit = target.rebind_unit(self.units[f"layer_{rep}"], mapping, layer)
        path = Path(job.out_dir) / layer_filename(job.model_type, job.prefill_len, layer)
        size = target.emit_file(path, unit, store_for(module), job.metadata)
        store_for(module).close()
        del module, function, unit, mapping
        gc.collect()  # xDSL ops hold cycles; free this layer's arrays before the next one
        return LayerResult(layer, str(path), size, time.perf_counter() - start)


_builder: LayerBuilder | None = None
START_METHOD: str | None = None
"""The pool's start method; None: `fork` where the platform has it (cheap, shares pages), else `spawn`."""


def leave_signals_to_parent() -> None:
    """In a pool worker: the parent alone handles Ctrl-C and SIGTERM (it terminates the pool)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pool_start_method() -> str:
    import multiprocessing

    return START_METHOD or ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def init_worker(job: LayerJob | None) -> None:
    """Pool initializer (`leave_signals_to_parent`). A spawned worker builds its
    `LayerBuilder` from the job's text; a forked one inherits it, frozen: the collection
    after each layer then scans only that layer's objects, not the inherited lowered
    models (nor copies their pages)."""
    leave_signals_to_parent()
    gc.freeze()
    global _builder
    if job is not None:
        _builder = LayerBuilder.of(job)


def build_in_worker(layer: int) -> LayerResult:
    assert _builder is not None, "init_worker was not run"
    return _builder(layer)


@contextmanager
def worker_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...], died: str
) -> Iterator[ProcessPoolExecutor]:
    """`workers` processes (`pool_start_method`), forked here, before any thread starts (a
    progress bar's: forked workers then inherit no held console lock). A worker that dies
    (killed for lack of memory) is the one-line error `died`, not a wait for a result that
    never comes; leaving cancels what has not started and waits for what has."""
    import multiprocessing

    context = multiprocessing.get_context(pool_start_method())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
    try:
        pool.submit(int).result()  # starts the workers now
        yield pool
    except BrokenProcessPool:
        raise AxcError(died) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def layer_pool(structure: Structure, parallel: int, count: int) -> Iterator[Callable[[list[int]], Iterator[LayerResult]]]:
    """A function building layers with `parallel` worker processes (in this process when 1),
    in the order they finish; each worker holds one layer at a time."""
    global _builder
    workers = worker_count(parallel, count)
    if workers <= 1:
        builder = LayerBuilder.of(structure.job, structure.module)
        yield lambda layers: map(builder, layers)
        return
    if pool_start_method() == "fork":
        _builder, job = LayerBuilder.of(structure.job, structure.module), None
    else:
        job = replace(structure.job, structure=module_text(structure.module))
    died = "a layer-building worker process died (killed for lack of memory?); free memory or lower --parallel"
    try:
        with worker_pool(workers, init_worker, (job,), died) as pool:
            yield lambda layers: (done.result() for done in as_completed([pool.submit(build_in_worker, i) for i in layers]))
    finally:
        _builder = None
