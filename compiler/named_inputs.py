"""Inputs given by name or by position, put in a program's input order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from axc.errors import AxcError


def ordered_inputs(
    owner: str, names: Sequence[str], inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray]
) -> list[np.ndarray]:
    """`inputs` in the order of `names`; `owner` (e.g. `@layer_0_g0`, `group 1`) names the program in errors."""
    if type(inputs) is dict and len(inputs) == len(names):  # the names are distinct: all there, none unknown
        try:
            return [inputs[n] for n in names]
        except KeyError:
            pass
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        unknown = [n for n in inputs if n not in names]
        if missing or unknown:
            raise AxcError(
                f"{owner} takes inputs {', '.join(names)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        return [inputs[n] for n in names]
    values = list(inputs)
    if len(values) != len(names):
        raise AxcError(f"{owner} takes {len(names)} inputs ({', '.join(names)}), got {len(values)}")
    return values
