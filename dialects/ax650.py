"""The `ax650` dialect: engine-level programs for the AX650 family (AX650N/AX650A/AX8850).

The op classes are the shared ones of `axc.dialects.axtarget` (one instruction set for
both chips, `axc.isa`); the AX650 descriptor decides legality (3 cores, fp8
weights allowed). See `axtarget` for the syntax.
"""

from __future__ import annotations

from axc.dialects.axtarget import ops_by_suffix, target_dialect

AX650 = target_dialect("ax650", "AX650")
OPS = ops_by_suffix(AX650)
