"""Small queries over xDSL IR that every level needs (no dialect of ours below them).

```python
function = enclosing_function(op)   # the func.func holding op, or None
```
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.ir import Operation


def enclosing_function(op: Operation) -> func.FuncOp | None:
    """The `func.func` that holds `op` (at any depth), or None outside a function."""
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        parent = parent.parent_op()
    return parent
