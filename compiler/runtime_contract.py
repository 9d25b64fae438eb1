"""The board runtime's contract (ax-llm): tensor names, the mask value and file names.

Every level that produces or consumes a built model agrees on these: the frontend names a
layer's arguments with them, the emitter names the `.axmodel` files, the host loop and the
simulator feed and read them. This module imports nothing, so any level may use it.

```python
out = executor.run_layer(layer, group, {K_CACHE: k, V_CACHE: v, INDICES: i, INPUT: x, MASK: m})
out[OUTPUT], out[K_CACHE_OUT], out[V_CACHE_OUT]
```
"""

from __future__ import annotations

K_CACHE = "K_cache"
V_CACHE = "V_cache"
INDICES = "indices"
INPUT = "input"
MASK = "mask"
K_CACHE_OUT = "K_cache_out"
V_CACHE_OUT = "V_cache_out"
OUTPUT = "output"

LAYER_INPUTS = (K_CACHE, V_CACHE, INDICES, INPUT, MASK)
"""A decoder layer's inputs, in the order of its `.axmodel` graph."""
LAYER_OUTPUTS = (K_CACHE_OUT, V_CACHE_OUT, OUTPUT)
"""A decoder layer's outputs: the new tokens' K and V rows, then the hidden state."""

MASKED = -65536.0
"""The runtime's additive mask value for an invisible position (exact in bf16)."""

EMBED_FILENAME = "model.embed_tokens.weight.bfloat16.bin"
"""The embedding table the host looks tokens up in: raw row-major `[vocab, hidden]` bf16."""
EMBED_NPY_FILENAME = "model.embed_tokens.weight.npy"
"""The same table as an fp32 `.npy`, as the vendor's embed step leaves it (its Python runners read it)."""


def layer_filename(model_type: str, prefill_len: int, layer: int) -> str:
    """The `.axmodel` of decoder layer `layer` (all shape groups together)."""
    return f"{model_type}_p{prefill_len}_l{layer}_together.axmodel"


def post_filename(model_type: str) -> str:
    """The `.axmodel` of the final norm and the lm head."""
    return f"{model_type}_post.axmodel"
