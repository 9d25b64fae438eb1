"""`axc-llm-build`: validate, lower the structure once, build every layer file, the post
model and the runtime's side files into a staging directory, then rename it into place."""

from __future__ import annotations

import json
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import TaskID

import axc
from axc.binding import store_for
from axc.dialects.axc import POST
from axc.llm_build import target
from axc.llm_build.layers import LayerResult, layer_pool, pipeline_text, prepare
from axc.llm_build.log import BuildLog
from axc.llm_build.options import CONV_EU_ENV, BuildOptions
from axc.llm_build.runtime_files import layer_filename, post_filename, write_json, write_runtime_files
from axc.llm_build.staging import MARKER, staged_directory
from axc.llm_build.validate import BuildPlan, describe_needs, validate, worker_count
from axc.frontend.families import get_family
from axc.frontend.views import language_model_line, open_model_checkpoint

REPORT = MARKER


@dataclass(frozen=True)
class BuildResult:
    plan: BuildPlan
    report: dict[str, Any]

    @property
    def directory(self) -> Path:
        return self.plan.output_path


def metadata(plan: BuildPlan) -> dict[str, str]:
    """Build metadata of every `.axmodel` (docs/axmodel-format.md)."""
    return {
        "chip": plan.target.chip,
        "npu_mode": plan.target.npu_mode,
        "build_options": json.dumps(plan.options.to_json(), sort_keys=True),
        "model_type": plan.config.model_type,
        "weight_type": plan.weight_type,
        "hidden_state_type": plan.options.hidden_state_type,
    }


def peak_rss() -> dict[str, int]:
    """Peak resident memory of this process and of its largest finished child, in bytes."""
    return {
        "main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "largest_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


def predictions(plan: BuildPlan, directory: Path, representative: tuple[int, ...]) -> dict[str, Any]:
    """The cost model's latency per shape group of each representative layer's file and of
    the post file, and what they imply for the model (layer i runs layer
    `representative[i]`'s command streams)."""
    o, model_type = plan.options, plan.config.model_type
    layers = {
        f"layer_{rep}": [vars(p) for p in target.predict(directory / layer_filename(model_type, o.prefill_len, rep))]
        for rep in sorted(set(representative))
    }
    post = [vars(p) for p in target.predict(directory / post_filename(model_type))]
    per_layer = [layers[f"layer_{rep}"] for rep in representative]
    decode_ms = sum(groups[0]["latency_ms"] for groups in per_layer) + post[0]["latency_ms"]
    summary: dict[str, Any] = {"decode_ms_per_token": decode_ms, "decode_tokens_per_s": 1e3 / decode_ms}
    if len(per_layer[0]) > 1:
        summary["prefill_ms_per_chunk"] = {
            g["label"]: sum(groups[g["group"]]["latency_ms"] for groups in per_layer) + post[0]["latency_ms"]
            for g in per_layer[0][1:]
        }
    return {"layers": layers, "post": post, "model": summary, "assumptions": dict(plan.target.assumptions)}


def build(options: BuildOptions, log: BuildLog) -> BuildResult:
    """Build the runtime's model directory; nothing appears at the output path unless complete."""
    with log.stage("validate"):
        plan = validate(options)
    log.print(plan.config.format_block())
    if options.kv_cache_len > plan.config.max_position_embeddings:
        log.warning(
            f"kv_cache_len {options.kv_cache_len} reaches past max_position_embeddings="
            f"{plan.config.max_position_embeddings}: the model was not trained on positions that far"
        )
    log.info(
        f"chip {plan.target.chip} {plan.target.npu_mode}, weights {plan.weight_type}, lm_head {options.post_weight_type}, "
        f"hidden states {options.hidden_state_type}"
        + (f" ({plan.compute_type} between ops inside the layers and post, as {plan.config.model_type} needs)" if plan.compute_type else "")
        + f", shape groups: decode over {options.kv_cache_len} cached rows"
        + "".join(f", prefill {g.tokens} over {g.history}" for g in plan.groups[1:])
    )
    log.info(describe_needs(plan))
    if plan.config.wrapper:
        log.info(language_model_line(plan.config, open_model_checkpoint(plan.model_dir)))
    scaling = plan.config.rope_scaling
    if scaling.kind == "longrope":
        static = not get_family(plan.config.model_type).longrope_from_context
        context = (
            f"max_position_embeddings {plan.config.max_position_embeddings}, {plan.config.model_type}'s static choice"
            if static
            else f"kv_cache_len {options.kv_cache_len}"
        )
        log.info(
            f"longrope: the {'long' if scaling.long else 'short'} factor table ({context} "
            f"{'>' if scaling.long else '<='} original context {scaling.original_max_position_embeddings}), "
            f"cos/sin x {scaling.mscale:.6g}"
        )
    if options.float_matmul_use_conv_eu:
        log.info(
            f"{CONV_EU_ENV}=1: float matmuls (attention's QK^T and PV) run on the convolution units"
            if plan.target.conv is not None
            else f"{CONV_EU_ENV}=1 ignored: {plan.target.family} has no convolution units that take matmuls"
        )
    workers = worker_count(options.parallel, plan.config.num_hidden_layers)
    if workers < options.parallel:
        log.info(
            f"--parallel {options.parallel}: {workers} worker process{'es' if workers > 1 else ''} "
            f"({plan.config.num_hidden_layers} layers, {len(os.sched_getaffinity(0))} CPUs here; more would not help)"
        )
    config, layers = plan.config, plan.config.num_hidden_layers
    files: dict[str, int] = {}
    with staged_directory(plan.output_path) as staging:
        with log.stage("prepare"):
            structure = prepare(plan, staging, metadata(plan))
        log.info(f"pass pipeline: {pipeline_text(plan)}")
        log.success("prepare llm model done!")
        with log.stage("decode layers"), layer_pool(structure, options.parallel, layers) as run:
            with log.progress("building llm decode layers", layers) as bar:
                results: list[LayerResult] = []
                for result in run(list(range(layers))):
                    results.append(result)
                    files[Path(result.path).name] = result.size
                    bar.advance(TaskID(0))
        units = target.file_units(structure.module)
        with log.stage("post layer"), log.progress("building llm post layer", 1) as bar:
            name = post_filename(config.model_type)
            files[name] = target.emit_file(staging / name, units[POST], store_for(structure.module), metadata(plan))
            bar.advance(TaskID(0))
        with log.stage("runtime files"):
            checkpoint = open_model_checkpoint(plan.model_dir)
            try:
                for name in write_runtime_files(
                    config, checkpoint, plan.model_dir, staging, options.prefill_len, plan.target.chip, options.embed_npy
                ):
                    files[name] = (staging / name).stat().st_size
            finally:
                checkpoint.close()
        with log.stage("cost model"):
            predicted = predictions(plan, staging, structure.job.representative)
        model = predicted["model"]
        log.info(
            f"cost model ({plan.target.chip} {plan.target.npu_mode}): decode {model['decode_ms_per_token']:.1f} ms/token "
            f"({model['decode_tokens_per_s']:.1f} tokens/s)"
            + "".join(f", {label} chunk {ms:.1f} ms" for label, ms in model.get("prefill_ms_per_chunk", {}).items())
        )
        report = {
            "tool": "axc-llm-build",
            "version": axc.__version__,
            "options": options.to_json(),
            "effective": {
                "weight_type": plan.weight_type,
                "chip": plan.target.chip,
                "npu_mode": plan.target.npu_mode,
                "histories": list(plan.histories),
                "pipeline": pipeline_text(plan),
            },
            "model": {"model_type": config.model_type, "num_hidden_layers": layers, "vocab_size": config.vocab_size},
            "timings_s": {**log.timings, "passes": structure.pass_timings, "layer_mean": _mean(r.seconds for r in results)},
            "files": dict(sorted(files.items())),
            "total_bytes": sum(files.values()),
            "estimate": {"disk_bytes": plan.estimate.disk_bytes, "peak_memory_bytes": plan.estimate.peak_memory_bytes},
            "peak_rss_bytes": peak_rss(),
            "predictions": predicted,
        }
        write_json(staging / REPORT, report)
    log.success(f"build llm model done! {plan.output_path} ({sum(files.values()) / (1 << 20):,.1f} MiB)")
    return BuildResult(plan, report)


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
