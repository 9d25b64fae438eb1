"""Pre-build validation: every check that can fail runs here, before any heavy work.

Each failure is one `AxcError` line naming the flag or file to fix. What passes becomes a
`BuildPlan`: the normalised config, the shape groups, the target and the effective
weight types, with the disk and memory the build is expected to need.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axc.llm_build.options import BuildOptions
from axc.codegen.emit import STREAM_BYTES
from axc.llm_build.runtime_files import EMBED_FILENAME, EMBED_NPY_FILENAME, ROWS_PER_CHUNK, TOKENIZER_FILES, npy_bytes
from axc.frontend.hf_import import EMBED_KEYS
from axc.llm_build.staging import check_replaceable, check_writable, existing_ancestor
from axc.errors import AxcError
from axc.frontend.checkpoint_check import check_checkpoint, expected_layer_tensors
from axc.frontend.config import ModelConfig, load_config
from axc.frontend.families import get_family
from axc.frontend.views import open_model_checkpoint
from axc.checkpoints.gptq import GptqCheckpoint
from axc.params import Checkpoint
from axc.passes.quantize_weights import QuantizeWeights, WeightChoice
from axc.passes.specialize_groups import ShapeGroup, shape_groups
from axc.quantization import CHUNK_ELEMENTS, NUMPY_TYPES, WeightSpec
from axc.targets import TargetDescriptor, check_activation_type, check_weight_type, get_target

MiB = 1 << 20
COMMAND_STREAM_BYTES = 256 * 1024
"""Assumed size of one group's command stream (disk estimate only; the IR is compact)."""
PROCESS_BYTES = 225 * MiB
"""Resident size of the main process with numpy, xDSL, onnx and rich loaded and the
structure lowered (measured on the Qwen2.5-0.5B- and 7B-shaped builds: 185-225 MiB)."""
WORKER_BYTES = 70 * MiB
"""What a forked worker adds besides the rows it streams: its layer's IR and the pages it
touches (measured on the same builds)."""
QUANTIZE_TEMP_BYTES = 4 * 4 * CHUNK_ELEMENTS
"""The quantizer's fp32 temporaries for one chunk of rows."""
DISK_MARGIN = 1.1
TOKENIZER_MODELS = ("tokenizer.json", "tokenizer.model", "vocab.json")
"""Files from which AutoTokenizer can build a tokenizer offline (any one)."""


@dataclass(frozen=True)
class Estimate:
    """What the build is expected to need, printed before it starts."""

    layer_bytes: int
    post_bytes: int
    embed_bytes: int
    embed_npy_bytes: int
    tokenizer_bytes: int
    num_layers: int
    peak_memory_bytes: int

    @property
    def disk_bytes(self) -> int:
        return (
            self.layer_bytes * self.num_layers + self.post_bytes + self.embed_bytes + self.embed_npy_bytes
            + self.tokenizer_bytes
        )


FLOAT_WEIGHTS = ("bf16", "fp16")
"""Weight types whose rounding is smaller than that of bf16 activations between ops."""


@dataclass(frozen=True)
class BuildPlan:
    """A validated build: options, config, shape groups, target and effective types."""

    options: BuildOptions
    model_dir: Path
    output_path: Path
    config: ModelConfig
    groups: tuple[ShapeGroup, ...]
    target: TargetDescriptor
    weight_type: str
    weight_choice: WeightChoice
    estimate: Estimate

    @property
    def gptq(self) -> bool:
        return self.config.quant is not None

    @property
    def histories(self) -> tuple[int, ...]:
        return tuple(g.history for g in self.groups)

    @property
    def compute_type(self) -> str | None:
        """The family's type between ops in a float-weight build, where it differs from
        the hidden states' (`Family.compute_type`)."""
        wanted = get_family(self.config.model_type).compute_type if self.weight_type in FLOAT_WEIGHTS else None
        return None if wanted == self.options.hidden_state_type else wanted


def check_lengths(options: BuildOptions) -> tuple[ShapeGroup, ...]:
    """The shape groups, with the vendor's flag names in every message."""
    kv, prefill, lasts = options.kv_cache_len, options.prefill_len, options.last_kv_cache_len
    if kv <= 0:
        raise AxcError(f"--kv_cache_len {kv} must be positive")
    if prefill < 0:
        raise AxcError(f"--prefill_len {prefill} must be 0 (decode only) or positive")
    if prefill > kv:
        raise AxcError(f"--prefill_len {prefill} exceeds --kv_cache_len {kv}; the prefill chunk must fit in the cache")
    if lasts and prefill == 0:
        raise AxcError("--last_kv_cache_len needs --prefill_len > 0 (prefill groups are chunks of prefill_len tokens)")
    for previous, history in zip((0, *lasts), lasts):
        if history < 1:
            raise AxcError(f"--last_kv_cache_len {history} must be at least 1 (the history-0 group is always built)")
        if history <= previous:
            raise AxcError(f"--last_kv_cache_len values must be strictly increasing, got {list(lasts)}")
        if history + prefill > kv:
            raise AxcError(
                f"--last_kv_cache_len {history} + --prefill_len {prefill} = {history + prefill} exceeds "
                f"--kv_cache_len {kv}; the chunk's rows are written after the history into the decode cache"
            )
    return tuple(shape_groups(kv, prefill, lasts))


def check_options(options: BuildOptions) -> None:
    if options.parallel < 1:
        raise AxcError(f"--parallel {options.parallel} must be at least 1")
    if options.post_topk < 0:
        raise AxcError(f"--post_topk {options.post_topk} must be 0 (logits) or positive")
    if not options.input_path.is_dir():
        what = "does not exist" if not options.input_path.exists() else "is not a directory"
        raise AxcError(f"--input_path {options.input_path} {what}; pass a Hugging Face model directory")
    if options.check_level == 2 and not options.prompt:
        raise AxcError("--prompt is empty; -c 2 needs a prompt to run")
    if options.check_level == 2 and not any((options.input_path / name).is_file() for name in TOKENIZER_MODELS):
        raise AxcError(
            f"-c 2 tokenizes --prompt with the input's tokenizer, but {options.input_path} has none "
            f"({', '.join(TOKENIZER_MODELS)}); add it or use -c 1"
        )


def stored_bytes(spec: WeightSpec) -> int:
    """Bytes of one weight's stored arrays (data, scales, zeros)."""
    total = math.prod(spec.data_shape) * spec.data_dtype.itemsize
    if spec.quantized:
        scales = math.prod(spec.scales_shape)
        total += scales * NUMPY_TYPES[spec.scale_type].itemsize + (scales if spec.asym else 0)
    return total


def layer_linears(config: ModelConfig) -> list[tuple[int, int]]:
    """`(out, in)` of a decoder layer's linears (its family's table)."""
    return [t.shape(config) for t in expected_layer_tensors(config, 0).values() if t.linear]  # type: ignore[misc]  # Tensor.shape is a per-family callable field, which mypy reads as a method


def layer_vector_elements(config: ModelConfig) -> int:
    """Elements of a decoder layer's norm weights and biases."""
    entries = expected_layer_tensors(config, 0).values()
    return sum(math.prod(t.shape(config)) for t in entries if not t.linear) + sum(
        t.shape(config)[0] for t in entries if t.linear and t.bias(config)
    )


def worker_count(parallel: int, layers: int) -> int:
    """The worker processes that help `--parallel`: no more than the layers to build, nor
    than the CPUs this process may run on."""
    return max(1, min(parallel, layers, len(os.sched_getaffinity(0))))


def check_workers(parallel: int, layers: int) -> int:
    """Simulator worker processes of `-c 1` (0: simulate in this process), as many as the
    build's (`worker_count`)."""
    return worker_count(parallel, layers) if parallel > 1 else 0


def check_bytes(options: BuildOptions, config: ModelConfig, layer: int, post: int, itemsize: int) -> int:
    """Peak bytes of `-c 1` (`axc.llm_build.check`): the main process holds the fp32
    reference (one layer's weights, then the lm_head widened from the checkpoint's rows,
    both copies alive while it widens) beside the workers, each simulating one layer file
    or reading the whole post file (its share of the rows)."""
    weights = sum(o * i for o, i in layer_linears(config)) + layer_vector_elements(config)
    reference = PROCESS_BYTES + max(4 * weights, config.vocab_size * config.hidden_size * (4 + itemsize))
    workers = check_workers(options.parallel, config.num_hidden_layers)
    simulator = max(layer, post)
    return reference + (workers * (WORKER_BYTES + simulator) if workers else simulator)


def stream_bytes(spec: WeightSpec, source_itemsize: int) -> int:
    """Peak bytes of emitting one weight: a piece of its rows, stored and as read from the
    checkpoint, plus the quantizer's temporaries (`axc.codegen.emit.params_chunks`)."""
    row = stored_bytes(spec) // spec.out_features
    rows = min(spec.out_features, max(1, STREAM_BYTES // max(1, row)))
    return rows * (row + spec.in_features * source_itemsize) + QUANTIZE_TEMP_BYTES


def estimate(
    options: BuildOptions, config: ModelConfig, checkpoint: Checkpoint, decoder: WeightChoice, groups: int
) -> Estimate:
    hidden, vocab = config.hidden_size, config.vocab_size
    linears = sum(stored_bytes(decoder.spec(o, i)) for o, i in layer_linears(config))
    vectors = layer_vector_elements(config) * 4
    layer = linears + vectors + groups * COMMAND_STREAM_BYTES
    post_spec = WeightChoice(options.post_weight_type).spec(vocab, hidden)
    post = stored_bytes(post_spec) + 2 * hidden + COMMAND_STREAM_BYTES
    tokenizer = sum((options.input_path / name).stat().st_size for name in TOKENIZER_FILES if (options.input_path / name).is_file())
    embed_key = checkpoint.find_key(*EMBED_KEYS)
    itemsize = np.dtype(checkpoint.dtype(embed_key)).itemsize if embed_key else 4
    workers = worker_count(options.parallel, config.num_hidden_layers)
    # Weights are quantized as they are emitted, a piece of rows at a time, so no process
    # holds a weight whole; GPTQ layers are imported (repacked) whole, twice their bytes.
    streaming = max(stream_bytes(decoder.spec(o, i), itemsize) for o, i in layer_linears(config))
    per_worker = (WORKER_BYTES if workers > 1 else 0) + streaming + (2 * layer if isinstance(checkpoint, GptqCheckpoint) else 0)
    runtime = min(vocab, ROWS_PER_CHUNK) * hidden * (2 + (4 if options.embed_npy else 0))
    # The stages do not overlap: the pool is closed before the post model and the runtime files.
    peak = PROCESS_BYTES + max(workers * per_worker, stream_bytes(post_spec, itemsize), runtime)
    if options.check_level >= 1:  # after the build: its pool is closed
        peak = max(peak, check_bytes(options, config, layer, post, itemsize))
    embed_npy = npy_bytes(vocab, hidden) if options.embed_npy else 0
    return Estimate(layer, post, vocab * hidden * 2, embed_npy, tokenizer, config.num_hidden_layers, peak)


def validate(options: BuildOptions) -> BuildPlan:
    """Check everything the build depends on; the plan it may follow."""
    check_options(options)
    groups = check_lengths(options)
    model_dir = options.input_path.resolve()
    config = load_config(model_dir, options.model_config, options.kv_cache_len)
    checkpoint = open_model_checkpoint(model_dir)
    try:
        check_checkpoint(config, checkpoint)
        gptq = checkpoint if isinstance(checkpoint, GptqCheckpoint) else None
        if gptq is not None:
            gptq.check()
        if options.post_topk > config.vocab_size:
            raise AxcError(f"--post_topk {options.post_topk} exceeds the vocabulary of {config.vocab_size} tokens")
        target = get_target(options.chip, options.npu_mode)
        decoder = QuantizeWeights(
            weight_type=options.weight_type, post_weight_type=options.post_weight_type
        ).decoder_choice(gptq)
        check_weight_type(target, decoder.kind, "decoder weights", "-w")
        check_weight_type(target, options.post_weight_type, "lm_head weights", "--post_weight_type")
        check_activation_type(target, options.hidden_state_type, "hidden states", "-t")
        output = options.output_path.absolute()
        check_replaceable(output)
        check_writable(output)
        needs = estimate(options, config, checkpoint, decoder, len(groups))
    finally:
        checkpoint.close()
    free = shutil.disk_usage(existing_ancestor(output)).free
    if needs.disk_bytes * DISK_MARGIN > free:
        raise AxcError(
            f"not enough disk for {output}: the build needs about {needs.disk_bytes / MiB:,.0f} MiB, "
            f"{free / MiB:,.0f} MiB are free; free some space or choose another --output_path"
        )
    return BuildPlan(options, model_dir, output, config, groups, target, decoder.kind, decoder, needs)


def describe_needs(plan: BuildPlan) -> str:
    e = plan.estimate
    return (
        f"expected output {e.disk_bytes / MiB:,.1f} MiB ({e.num_layers} layers x {e.layer_bytes / MiB:,.1f} MiB, "
        f"post {e.post_bytes / MiB:,.1f} MiB, {EMBED_FILENAME} {e.embed_bytes / MiB:,.1f} MiB"
        + (f", {EMBED_NPY_FILENAME} {e.embed_npy_bytes / MiB:,.1f} MiB" if e.embed_npy_bytes else "")
        + "); "
        f"expected peak memory {e.peak_memory_bytes / MiB:,.0f} MiB with --parallel {plan.options.parallel}"
    )
