"""`axengine`: the vendor's Python runtime API (pyaxengine) over axc's simulator.

The vendor's runners only do `from axengine import InferenceSession`; with axc installed
they run unchanged on a PC, every `.axmodel` executed by `axc.sim` with pyaxengine's
strictness (exact shapes and dtypes, its exception types):

```python
from axengine import InferenceSession
session = InferenceSession("qwen2_p128_l0_together.axmodel")
[i.name for i in session.get_inputs(shape_group=1)]  # ['K_cache', 'V_cache', 'indices', 'input', 'mask']
k_out, v_out, hidden = session.run(None, feed, shape_group=1)
```
"""

from __future__ import annotations

from axengine.session import (
    InferenceSession,
    NodeArg,
    SessionOptions,
    get_all_providers,
    get_available_providers,
)

__all__ = ["InferenceSession", "NodeArg", "SessionOptions", "get_all_providers", "get_available_providers"]
