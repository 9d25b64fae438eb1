"""The `ax620e` dialect: engine-level programs for the AX620E family (AX630C/AX620Q).

The op classes are the shared ones of `axc.dialects.axtarget` (one instruction set for
both chips, `axc.isa`); the AX620E descriptor decides legality (2 cores, 1 MiB
OCM per core, no fp8 weights). See `axtarget` for the syntax.
"""

from __future__ import annotations

from axc.dialects.axtarget import ops_by_suffix, target_dialect

AX620E = target_dialect("ax620e", "AX620E")
OPS = ops_by_suffix(AX620E)
