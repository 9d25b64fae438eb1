"""Target descriptors: the hardware model of each AXERA NPU (AX650, AX620E families)."""

from __future__ import annotations

from axc.targets.descriptors import (
    ACTIVATION_DTYPES,
    CHIPS,
    WEIGHT_DTYPES,
    Assumed,
    ChipSpec,
    Engine,
    MatmulTile,
    TargetDescriptor,
    check_activation_type,
    check_weight_type,
    describe,
    get_target,
    known_chips,
    npu_modes,
    with_fitted,
)

__all__ = [
    "ACTIVATION_DTYPES",
    "CHIPS",
    "WEIGHT_DTYPES",
    "Assumed",
    "ChipSpec",
    "Engine",
    "MatmulTile",
    "TargetDescriptor",
    "check_activation_type",
    "check_weight_type",
    "describe",
    "get_target",
    "known_chips",
    "npu_modes",
    "with_fitted",
]
