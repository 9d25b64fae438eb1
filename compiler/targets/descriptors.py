"""Target descriptors: the hardware model of each AXERA NPU, one table row per chip.

Public figures come from ../shared/reference/hardware.md. Every other value is wrapped in
`Assumed(value, why)` right where it is set; the reason ends up in
`TargetDescriptor.assumptions` so logs and docs can show it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Generic, TypeVar, Union

from axc.errors import AxcError

T = TypeVar("T")

KiB = 1 << 10
MiB = 1 << 20

#: Every weight storage type axc knows, in the order messages list them.
WEIGHT_DTYPES: tuple[str, ...] = ("s8", "s4", "fp8_e4m3", "fp8_e5m2", "bf16", "fp16", "fp32")
#: Every activation (hidden state) type axc knows.
ACTIVATION_DTYPES: tuple[str, ...] = ("bf16", "fp16", "fp32")
HALF_DTYPES: tuple[str, ...] = ("bf16", "fp16")
"""The 16-bit types the matrix engine multiplies in at `half_rate` of its INT8 rate."""
DTYPE_BITS: dict[str, int] = {
    "s4": 4, "s8": 8, "fp8_e4m3": 8, "fp8_e5m2": 8, "bf16": 16, "fp16": 16, "fp32": 32,
}


@dataclass(frozen=True)
class Assumed(Generic[T]):
    """A value without a public source, and the one-line reason it was chosen."""

    value: T
    why: str


Figure = Union[T, Assumed[T]]  # noqa: UP007 - mypy takes a generic alias over a TypeVar only in this form


@dataclass(frozen=True)
class ChipSpec:
    """One row of the chip table: figures of the whole chip (rates per core are derived)."""

    family: str
    aliases: tuple[str, ...]
    cores: int
    int8_tops: Figure[float]
    int4_tops: Figure[float]
    half_rate: Figure[float]  # effective bf16/fp16 MAC rate as a fraction of the INT8 rate
    clock_hz: Figure[float]
    vector_lanes: Figure[int]  # bf16/fp16 elementwise ops per cycle per core; fp32 at half
    ocm_bytes_per_core: Figure[int]
    dma_channels_per_core: Figure[int]
    dma_bytes_per_cycle: Figure[int]  # per core
    ddr_bytes_per_s: Figure[float]
    ddr_efficiency: Figure[float]
    token_s: Figure[float]  # fixed cost per token of one group call (beyond bytes and MACs)
    unpack_per_cycle: Figure[float]  # per core: s4 weights expanded per cycle before the MACs (0: none, native int4)
    conv_units: Figure[int]  # convolution units of the chip that can take matrix work (0: none)
    conv_matmul_rate: Figure[float]  # a core's conv units on float matmuls, x its matrix engine's 16-bit rate
    ddr_alignment: Figure[int]
    ocm_alignment: Figure[int]
    matmul_tile: Figure[tuple[int, int, int]]  # (M, N, K) granularity
    weight_dtypes: Figure[tuple[str, ...]]
    activation_dtypes: Figure[tuple[str, ...]]
    max_rank: Figure[int]
    max_dim: Figure[int]


# Assumptions shared by both chips (same NPU generation, nothing public on either).
_CLOCK = Assumed(1.0e9, "NPU clock not public; 1 GHz is round, and only cycle counts (not TOPS) depend on it")
_DMA_CHANNELS = Assumed(4, "not public; per core: weight load, activation load, store, one spare for overlap")
_DDR_ALIGN = Assumed(64, "not public; one 64-byte DDR burst")
_OCM_ALIGN = Assumed(32, "not public; one 256-bit OCM word")
_ACTIVATIONS: Assumed[tuple[str, ...]] = Assumed(
    ("bf16", "fp16", "fp32"),
    "bf16 public (runtime I/O); fp16 the vendor's other hidden-state type; fp32 for statistics and logits",
)
_MAX_RANK = Assumed(5, "not public; LLM graphs need rank <= 4, 5 leaves room for split heads")
_MAX_DIM = Assumed(1 << 20, "not public; vendor post models emit 151936-wide logits; 2**20 covers 262144 too")

CHIPS: dict[str, ChipSpec] = {
    "AX650": ChipSpec(
        family="AX650",
        aliases=("AX650N", "AX650A", "AX8850"),
        cores=3,
        int8_tops=18.0,
        int4_tops=72.0,
        half_rate=Assumed(
            0.5000, "prior, not fitted: AX650's public INT4 rate is 4x its INT8 rate (72 vs 18 TOPS), MAC cost scaling with the product of operand widths, so a 16-bit activation times an 8-bit weight costs two INT8 MACs"
        ),
        clock_hz=_CLOCK,
        vector_lanes=Assumed(256, "not public; keeps norm/softmax/rope well below matmul time in prefill"),
        ocm_bytes_per_core=Assumed(
            4 * MiB, "not public; holds a 128 x 4864 bf16 prefill tile (1.2 MiB) plus double-buffered weight tiles"
        ),
        dma_channels_per_core=_DMA_CHANNELS,
        dma_bytes_per_cycle=Assumed(
            64, "not public; a 512-bit port (64 GB/s per core) beats DDR, so streaming is DDR-bound as decode shows"
        ),
        ddr_bytes_per_s=Assumed(34.128e9, "not public; LPDDR4x 64-bit at 4266 MT/s = 34.1 GB/s peak"),
        ddr_efficiency=Assumed(
            0.5162, "fitted (bench/calibrate_cost_model.py): least squares on the 12 TTFT and 15 decode rows published for AX650, jointly with token_s"
        ),
        token_s=Assumed(
            2.989e-05, "fitted (bench/calibrate_cost_model.py): least squares on the 12 TTFT and 15 decode rows published for AX650, jointly with ddr_efficiency"
        ),
        unpack_per_cycle=Assumed(
            0.0000, "stated, not fitted: AX650 publishes an INT4 rate (72 TOPS, 4x INT8), an int4 datapath, so no expansion pass before the MACs (its one s4 row, Qwen2.5-7B w4a16, decodes as fast as its bytes)"
        ),
        conv_units=6,  # vendor NPU docs: 6 convolution units and 3 tensor units, 2 and 1 per core
        conv_matmul_rate=Assumed(
            2.0,
            "not public; the conv units 'can do some matrix computations' (vendor NPU docs): each assumed as fast "
            "on float matmuls as the core's one tensor unit (the matrix engine), so a core's two give 2x",
        ),
        ddr_alignment=_DDR_ALIGN,
        ocm_alignment=_OCM_ALIGN,
        matmul_tile=Assumed((8, 64, 64), "array shape not public; supported models' widths are multiples of 64"),
        weight_dtypes=Assumed(
            ("s8", "s4", "fp8_e4m3", "fp8_e5m2", "bf16", "fp16"),
            "s8/s4 public (w8a16, w4a16 results); bf16/fp16 = activation types; fp8 decoded to bf16 for the MACs",
        ),
        activation_dtypes=_ACTIVATIONS,
        max_rank=_MAX_RANK,
        max_dim=_MAX_DIM,
    ),
    "AX620E": ChipSpec(
        family="AX620E",
        aliases=("AX630C", "AX620Q"),
        cores=2,
        int8_tops=3.2,
        int4_tops=Assumed(12.8, "not public; 4x INT8, the ratio published for AX650 (18 -> 72 TOPS)"),
        half_rate=Assumed(
            0.2500, "prior, not fitted: AX620E's INT4 rate is not public, so no evidence of width scaling: a 16-bit multiply costs four 8-bit ones"
        ),
        clock_hz=_CLOCK,
        vector_lanes=Assumed(128, "not public; half of AX650's assumed 256, tracking the smaller NPU"),
        ocm_bytes_per_core=Assumed(
            1 * MiB, "not public; smaller than AX650's: vendor `ocm alloc` fails on AX620E for models that fit AX650"
        ),
        dma_channels_per_core=_DMA_CHANNELS,
        dma_bytes_per_cycle=Assumed(32, "not public; a 256-bit port (32 GB/s per core) beats DDR: DDR-bound streaming"),
        ddr_bytes_per_s=Assumed(12.8e9, "not public; LPDDR4 32-bit at 3200 MT/s = 12.8 GB/s peak"),
        ddr_efficiency=Assumed(
            0.4507, "fitted (bench/calibrate_cost_model.py): least squares on the 7 TTFT and 9 decode rows published for AX620E, jointly with token_s"
        ),
        token_s=Assumed(
            2.64e-05, "fitted (bench/calibrate_cost_model.py): least squares on the 7 TTFT and 9 decode rows published for AX620E, jointly with ddr_efficiency"
        ),
        unpack_per_cycle=Assumed(
            6.8911, "derived, not fitted: no public INT4 rate, so s4 weights are expanded to 16 bits before the MACs; m5stack StackFlow benchmark/RESULTS.md (AX630C): Qwen2.5-1.5B TTFT 1029.41 ms w8a16, 1219.54 ms Int4, 190.13 ms more for 28 x 46.79M weights = 6.891e9 weights/s on one core (a pair outside the fitted rows)"
        ),
        conv_units=Assumed(0, "not public; the vendor says FLOAT_MATMUL_USE_CONV_EU has no effect on AX620E"),
        conv_matmul_rate=Assumed(0.0, "no convolution units take matrix work (conv_units)"),
        ddr_alignment=_DDR_ALIGN,
        ocm_alignment=_OCM_ALIGN,
        matmul_tile=Assumed((8, 32, 64), "array shape not public; half AX650's assumed N for the smaller array"),
        weight_dtypes=Assumed(
            ("s8", "s4", "bf16", "fp16"),
            "s8/s4 public (AX630C w8a16, w4a16 results); bf16/fp16 = activation types; no fp8 (nothing public)",
        ),
        activation_dtypes=_ACTIVATIONS,
        max_rank=_MAX_RANK,
        max_dim=_MAX_DIM,
    ),
}


@dataclass(frozen=True)
class Engine:
    """One NPU engine of one core: its clock and peak rate per compute dtype."""

    name: str  # "matrix" (matmul/conv) or "vector"
    clock_hz: float
    ops_per_s: tuple[tuple[str, float], ...]  # per core; a MAC counts as 2 ops

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(dtype for dtype, _ in self.ops_per_s)

    def peak_ops_per_s(self, dtype: str) -> float:
        """Peak ops/s of one core for `dtype`."""
        for name, rate in self.ops_per_s:
            if name == dtype:
                return rate
        raise AxcError(f"the {self.name} engine has no {dtype} rate (has: {', '.join(self.dtypes)})")

    def ops_per_cycle(self, dtype: str) -> float:
        return self.peak_ops_per_s(dtype) / self.clock_hz

    def macs_per_cycle(self, dtype: str) -> float:
        return self.ops_per_cycle(dtype) / 2


@dataclass(frozen=True)
class MatmulTile:
    """Granularity (in elements) that matmul M/N/K are padded to."""

    m: int
    n: int
    k: int


@dataclass(frozen=True)
class TargetDescriptor:
    """The hardware one model sees on `chip` in `npu_mode` (it uses `cores` NPU cores)."""

    chip: str  # the name asked for, e.g. "AX630C"
    family: str  # the table row, e.g. "AX620E"; selects the lowering
    npu_mode: str
    cores: int
    chip_cores: int
    matrix: Engine
    vector: Engine
    conv: Engine | None  # the convolution units of one core, on float matmuls (FLOAT_MATMUL_USE_CONV_EU)
    conv_units: int  # of the whole chip
    ocm_bytes_per_core: int
    dma_channels_per_core: int
    dma_bytes_per_s_per_core: float
    ddr_bytes_per_s: float  # peak, shared by all cores
    ddr_efficiency: float  # fitted cost-model parameter (decode)
    token_s: float  # fitted cost-model parameter: seconds per token of one group call
    unpack_weights_per_s: float  # per core: s4 weights the matrix engine expands per second before multiplying (0: none)
    ddr_alignment: int
    ocm_alignment: int
    matmul_tile: MatmulTile
    weight_dtypes: tuple[str, ...]
    activation_dtypes: tuple[str, ...]
    max_rank: int
    max_dim: int
    assumptions: tuple[tuple[str, str], ...]  # (ChipSpec field, why)

    @property
    def clock_hz(self) -> float:
        return self.matrix.clock_hz

    @property
    def ocm_bytes(self) -> int:
        return self.ocm_bytes_per_core * self.cores

    @property
    def dma_channels(self) -> int:
        return self.dma_channels_per_core * self.cores

    @property
    def dma_bytes_per_s(self) -> float:
        return self.dma_bytes_per_s_per_core * self.cores

    @property
    def effective_ddr_bytes_per_s(self) -> float:
        return self.ddr_bytes_per_s * self.ddr_efficiency

    def peak_ops_per_s(self, dtype: str, engine: str = "matrix") -> float:
        """Peak ops/s of all cores this model uses."""
        return self.engine(engine).peak_ops_per_s(dtype) * self.cores

    def tops(self, dtype: str) -> float:
        return self.peak_ops_per_s(dtype) / 1e12

    def engine(self, name: str) -> Engine:
        engines = {"matrix": self.matrix, "vector": self.vector, **({"conv": self.conv} if self.conv else {})}
        if name not in engines:
            raise AxcError(f"unknown engine {name!r} on {self.family} (valid: {', '.join(engines)})")
        return engines[name]

    def assumption(self, figure: str) -> str | None:
        """Why `figure` (a ChipSpec field) has its value, or None when it is public."""
        return dict(self.assumptions).get(figure)


def _value(figure: Figure[T]) -> T:
    return figure.value if isinstance(figure, Assumed) else figure


def _canonical(chip: str) -> tuple[str, ChipSpec]:
    wanted = chip.strip().upper()
    for family, spec in CHIPS.items():
        names = (family, *spec.aliases)
        if wanted in names:
            return names[names.index(wanted)], spec
    raise AxcError(f"unknown chip {chip!r} (valid: {', '.join(known_chips())}); pass one of these")


def known_chips() -> tuple[str, ...]:
    return tuple(name for family, spec in CHIPS.items() for name in (family, *spec.aliases))


def npu_modes(chip: str) -> tuple[str, ...]:
    """The npu_mode values of `chip`: NPU<n> uses n of its cores."""
    return tuple(f"NPU{n}" for n in range(1, _canonical(chip)[1].cores + 1))


@cache
def get_target(chip: str, npu_mode: str = "NPU1") -> TargetDescriptor:
    """The descriptor of `chip` (a family name or alias) when one model uses `npu_mode`."""
    name, spec = _canonical(chip)
    modes = npu_modes(name)
    mode = npu_mode.strip().upper()
    if mode not in modes:
        raise AxcError(f"{name} has no npu_mode {npu_mode!r} (valid: {', '.join(modes)}); pass one of these")
    clock = _value(spec.clock_hz)
    per_core_int8 = _value(spec.int8_tops) * 1e12 / spec.cores
    half = per_core_int8 * _value(spec.half_rate)
    lanes = float(_value(spec.vector_lanes))
    return TargetDescriptor(
        chip=name,
        family=spec.family,
        npu_mode=mode,
        cores=modes.index(mode) + 1,
        chip_cores=spec.cores,
        matrix=Engine(
            "matrix",
            clock,
            (
                ("s4", _value(spec.int4_tops) * 1e12 / spec.cores),
                ("s8", per_core_int8),
                *((dtype, half) for dtype in HALF_DTYPES),
            ),
        ),
        vector=Engine(
            "vector",
            clock,
            (("bf16", lanes * clock), ("fp16", lanes * clock), ("fp32", lanes * clock / 2)),
        ),
        conv=conv_engine(clock, half * _value(spec.conv_matmul_rate)) if _value(spec.conv_units) else None,
        ocm_bytes_per_core=_value(spec.ocm_bytes_per_core),
        dma_channels_per_core=_value(spec.dma_channels_per_core),
        dma_bytes_per_s_per_core=_value(spec.dma_bytes_per_cycle) * clock,
        ddr_bytes_per_s=_value(spec.ddr_bytes_per_s),
        ddr_efficiency=_value(spec.ddr_efficiency),
        token_s=_value(spec.token_s),
        unpack_weights_per_s=_value(spec.unpack_per_cycle) * clock,
        conv_units=_value(spec.conv_units),
        ddr_alignment=_value(spec.ddr_alignment),
        ocm_alignment=_value(spec.ocm_alignment),
        matmul_tile=MatmulTile(*_value(spec.matmul_tile)),
        weight_dtypes=_value(spec.weight_dtypes),
        activation_dtypes=_value(spec.activation_dtypes),
        max_rank=_value(spec.max_rank),
        max_dim=_value(spec.max_dim),
        assumptions=tuple(
            (field.name, figure.why)
            for field in fields(spec)
            if isinstance(figure := getattr(spec, field.name), Assumed)
        ),
    )


def conv_engine(clock_hz: float, rate: float) -> Engine:
    """A core's convolution units taking float matmuls at `rate` 16-bit ops/s."""
    return Engine("conv", clock_hz, tuple((dtype, rate) for dtype in HALF_DTYPES))


def with_fitted(
    target: TargetDescriptor,
    half_rate: float | None = None,
    ddr_efficiency: float | None = None,
    token_s: float | None = None,
) -> TargetDescriptor:
    """`target` with other values of the cost model's fitted parameters (what calibration varies)."""
    changes: dict[str, object] = {}
    if half_rate is not None:
        int8 = target.matrix.peak_ops_per_s("s8")
        rates = tuple((d, int8 * half_rate if d in HALF_DTYPES else r) for d, r in target.matrix.ops_per_s)
        changes["matrix"] = replace(target.matrix, ops_per_s=rates)
        if target.conv is not None:  # its rate is a multiple of the matrix engine's
            scale = int8 * half_rate / target.matrix.peak_ops_per_s(HALF_DTYPES[0])
            changes["conv"] = conv_engine(target.clock_hz, target.conv.peak_ops_per_s(HALF_DTYPES[0]) * scale)
    if ddr_efficiency is not None:
        changes["ddr_efficiency"] = ddr_efficiency
    if token_s is not None:
        changes["token_s"] = token_s
    return replace(target, **changes)  # type: ignore[arg-type]  # changes holds only fields of the descriptor, each of its type


def _check_type(
    target: TargetDescriptor, dtype: str, kind: str, known: tuple[str, ...], supported: tuple[str, ...],
    what: str, option: str,
) -> None:
    if dtype not in known:
        raise AxcError(
            f"unknown {kind} type {dtype!r} for {what} (known: {', '.join(known)}); "
            f"choose {_choices(option, supported)}"
        )
    if dtype in supported:
        return
    # Suggest types no wider than the one asked for, so the model does not grow.
    narrower = tuple(t for t in supported if DTYPE_BITS[t] <= DTYPE_BITS[dtype]) or supported
    verb = "store" if kind == "weight" else "compute"
    raise AxcError(
        f"{target.chip} cannot {verb} {dtype} {what} (supported: {', '.join(supported)}); "
        f"choose {_choices(option, narrower)}"
    )


def _choices(option: str, dtypes: tuple[str, ...]) -> str:
    choices = [f"{option} {t}" for t in dtypes]
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def check_weight_type(target: TargetDescriptor, dtype: str, what: str = "weights", option: str = "-w") -> None:
    """Raise AxcError when `target` cannot store `what` (e.g. "lm_head weights") as `dtype`."""
    _check_type(target, dtype, "weight", WEIGHT_DTYPES, target.weight_dtypes, what, option)


def check_activation_type(
    target: TargetDescriptor, dtype: str, what: str = "activations", option: str = "--hidden_state_type"
) -> None:
    """Raise AxcError when `target` cannot compute `what` in `dtype`."""
    _check_type(target, dtype, "activation", ACTIVATION_DTYPES, target.activation_dtypes, what, option)


def describe(target: TargetDescriptor, reasons: bool = False) -> str:
    """A short plain-text table of `target`; `*` marks assumed figures (`reasons` lists why)."""
    t = target
    tile = t.matmul_tile
    rows: list[tuple[str, str, tuple[str, ...]]] = [
        ("chip", f"{t.chip} ({t.family} family), {t.npu_mode}: {t.cores} of {t.chip_cores} NPU cores", ()),
        ("clock", f"{t.clock_hz / 1e9:g} GHz", ("clock_hz",)),
        ("matrix TOPS", ", ".join(f"{d} {t.tops(d):g}" for d in t.matrix.dtypes), ("int4_tops", "half_rate")),
        (
            "vector ops/cycle/core",
            ", ".join(f"{d} {t.vector.ops_per_cycle(d):g}" for d in t.vector.dtypes),
            ("vector_lanes",),
        ),
        (
            "OCM",
            f"{t.ocm_bytes_per_core // KiB} KiB/core, {t.ocm_bytes // KiB} KiB total",
            ("ocm_bytes_per_core",),
        ),
        (
            "DMA",
            f"{t.dma_channels_per_core} channels/core, {t.dma_bytes_per_s_per_core / 1e9:g} GB/s/core",
            ("dma_channels_per_core", "dma_bytes_per_cycle"),
        ),
        (
            "DDR",
            f"{t.ddr_bytes_per_s / 1e9:g} GB/s peak x {t.ddr_efficiency:g} efficiency",
            ("ddr_bytes_per_s", "ddr_efficiency"),
        ),
        ("fixed cost", f"{t.token_s * 1e6:.3g} us per token of each group call", ("token_s",)),
        (
            "s4 weights",
            f"expanded at {t.unpack_weights_per_s / 1e9:g} G weights/s/core before the MACs"
            if t.unpack_weights_per_s else "multiplied natively (no expansion pass)",
            ("unpack_per_cycle",),
        ),
        (
            "convolution units",
            f"{t.conv_units}, float matmuls at {t.conv.peak_ops_per_s('bf16') * t.cores / 1e12:g} TOPS bf16 "
            "with FLOAT_MATMUL_USE_CONV_EU=1" if t.conv else "none take matrix work",
            ("conv_units", "conv_matmul_rate"),
        ),
        (
            "alignment",
            f"DDR {t.ddr_alignment} B, OCM {t.ocm_alignment} B, matmul M/N/K {tile.m}/{tile.n}/{tile.k}",
            ("ddr_alignment", "ocm_alignment", "matmul_tile"),
        ),
        ("weights", ", ".join(t.weight_dtypes), ("weight_dtypes",)),
        ("activations", ", ".join(t.activation_dtypes), ("activation_dtypes",)),
        ("tensors", f"rank <= {t.max_rank}, dim <= {t.max_dim}", ("max_rank", "max_dim")),
    ]
    width = max(len(label) for label, _, _ in rows)
    lines = [
        f"{label:<{width}}  {value}{' *' if any(t.assumption(k) for k in keys) else ''}"
        for label, value, keys in rows
    ]
    if reasons:
        lines += [f"* {figure}: {why}" for figure, why in t.assumptions]
    else:
        lines.append("* assumed (not public); describe(target, reasons=True) says why")
    return "\n".join(lines)
