"""Reference numpy kernels shared by every interpreter level (fp32 in, fp32 out)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

Array = np.ndarray


def rms_norm(x: Array, weight: Array, eps: float) -> Array:
    variance = np.mean(np.square(x, dtype=np.float32), axis=-1, keepdims=True)
    return (x / np.sqrt(variance + np.float32(eps))) * weight


def head_norm(x: Array, weight: Array, eps: float, head_dim: int) -> Array:
    """RMSNorm of every `head_dim` slice of the last dimension (one weight for all heads)."""
    heads = x.reshape(*x.shape[:-1], x.shape[-1] // head_dim, head_dim)
    return rms_norm(heads, weight, eps).reshape(x.shape)


def layer_norm(x: Array, weight: Array, bias: Array | None, eps: float) -> Array:
    mean = np.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    out = centred / np.sqrt(variance + np.float32(eps)) * weight
    return out + bias if bias is not None else out


def linear(x: Array, weight: Array, bias: Array | None) -> Array:
    out = np.matmul(x, weight.T)
    return out + bias if bias is not None else out


class Activation(StrEnum):
    """The activation kinds of every level: `tfm.act`, `npu.act`/`act_mul`, the ISA's `act`.

    The order is the ISA's encoding of the `kind` immediate: append, never reorder.
    """

    SILU = "silu"
    GELU = "gelu"  # the erf form
    GELU_TANH = "gelu_tanh"
    RELU = "relu"


ACTIVATIONS: tuple[str, ...] = tuple(Activation)
ROPE_SCALINGS = ("default", "linear", "llama3", "longrope")
"""The RoPE frequency scalings `RopeSpec` computes (transformers' `rope_type`)."""


def silu(x: Array) -> Array:
    return x / (np.float32(1) + np.exp(-x))


def activation(kind: str, x: Array) -> Array:
    if kind == Activation.SILU:
        return silu(x)
    if kind == Activation.RELU:
        return np.maximum(x, np.float32(0))
    if kind == Activation.GELU_TANH:
        inner = np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x**3)
        return np.float32(0.5) * x * (np.float32(1) + np.tanh(inner))
    if kind == Activation.GELU:
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)
    raise ValueError(f"unknown activation {kind}")


@dataclass(frozen=True)
class RopeSpec:
    """Everything that determines the rotary frequencies of a model.

    The one definition of RoPE's parameters: `#tfm.rope<...>` (on `tfm.rope` and `npu.rope`)
    holds these fields but `head_dim`, and the ISA's `rope` immediates are these fields, so a
    new field (a longrope factor, an interleaved layout) is added here and nowhere else.
    """

    head_dim: int
    rotary_dim: int
    theta: float
    scaling: str = dataclasses.field(default="default", metadata={"choices": ROPE_SCALINGS})
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_positions: int = 0
    mscale: float = 1.0
    """`longrope`: the factor on cos and sin (transformers' `attention_factor`)."""
    interleaved: bool = False
    """Which features pair up: `i` with `i + rotary_dim/2` (rotate-half, Llama), or `2i` with
    `2i+1` (interleaved, GLM and GPT-J)."""

    @property
    def needs_ext_factors(self) -> bool:
        """`longrope` reads its per-pair frequency divisors from an `ext_factors` operand."""
        return self.scaling == "longrope"

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> RopeSpec:
        """A spec from plain values by field name (missing fields keep their defaults)."""
        casts = {"int": int, "float": float, "str": str, "bool": bool}
        return cls(**{f.name: casts[str(f.type)](values[f.name]) for f in dataclasses.fields(cls) if f.name in values})

    def values(self) -> dict[str, int | float | str | bool]:
        return dataclasses.asdict(self)

    def inverse_frequencies(self, ext_factors: Array | None = None) -> Array:
        """The per-pair frequencies, as transformers computes them (fp32); `longrope`
        divides them by its `ext_factors [rotary_dim / 2]` table."""
        exponents = np.arange(0, self.rotary_dim, 2, dtype=np.int64).astype(np.float32)
        if self.scaling == "longrope":
            assert ext_factors is not None, "longrope needs its factor table"
            powers = self.theta ** (exponents / np.float32(self.rotary_dim))
            return (1.0 / (np.asarray(ext_factors, np.float32) * powers)).astype(np.float32)
        inv_freq = (1.0 / (self.theta ** (exponents / self.rotary_dim))).astype(np.float32)
        if self.scaling == "linear":
            return (inv_freq / np.float32(self.factor)).astype(np.float32)
        if self.scaling == "llama3":
            old_len = self.original_max_positions
            low_wavelen = old_len / self.low_freq_factor
            high_wavelen = old_len / self.high_freq_factor
            wavelen = 2 * math.pi / inv_freq
            scaled = np.where(wavelen > low_wavelen, inv_freq / self.factor, inv_freq)
            smooth = (old_len / wavelen - self.low_freq_factor) / (
                self.high_freq_factor - self.low_freq_factor
            )
            smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
            medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
            return np.where(medium, smoothed, scaled).astype(np.float32)
        return inv_freq

    def cos_sin(self, positions: Array, ext_factors: Array | None = None) -> tuple[Array, Array]:
        """`cos`, `sin` tables `[tokens, rotary_dim]` for integer positions."""
        freqs = positions.astype(np.float32)[:, None] * self.inverse_frequencies(ext_factors)[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)
        if self.mscale != 1.0:
            return cos * np.float32(self.mscale), sin * np.float32(self.mscale)
        return cos, sin


def rope(x: Array, positions: Array, num_heads: int, spec: RopeSpec, ext_factors: Array | None = None) -> Array:
    """Rotate `x [1, T, heads*head_dim]` at `positions [1, T]` (rotate-half, or
    interleaved pairs)."""
    tokens = x.shape[1]
    heads = x.reshape(tokens, num_heads, spec.head_dim)
    cos, sin = spec.cos_sin(positions.reshape(tokens), ext_factors)
    half = spec.rotary_dim // 2
    rot = heads[..., : spec.rotary_dim]
    if spec.interleaved:
        cos, sin = np.repeat(cos[:, :half], 2, axis=-1), np.repeat(sin[:, :half], 2, axis=-1)
        rotated = np.stack([-rot[..., 1::2], rot[..., 0::2]], axis=-1).reshape(rot.shape)
    else:
        rotated = np.concatenate([-rot[..., half:], rot[..., :half]], axis=-1)
    out = heads.copy()
    out[..., : spec.rotary_dim] = rot * cos[:, None, :] + rotated * sin[:, None, :]
    return out.reshape(x.shape)


WINDOW_MASKED = -65536.0
"""Added to a score outside a layer's sliding window: the runtime's own mask value."""


def softcap(x: Array, cap: float) -> Array:
    """`tanh(x / cap) * cap` (Gemma2's attention-score and final-logit soft-capping)."""
    c = np.float32(cap)
    return (np.tanh(np.asarray(x, np.float32) / c) * c).astype(np.float32)


def window_mask(query_positions: Array, key_positions: Array, window: int) -> Array:
    """Additive `[T, S]` mask hiding keys at or beyond `window` positions behind each query
    (a key at `p_k` is visible from `p_q` iff `p_q - p_k < window`, the current token included)."""
    distance = query_positions.astype(np.int64)[:, None] - key_positions.astype(np.int64)[None, :]
    return np.where(distance >= window, np.float32(WINDOW_MASKED), np.float32(0)).astype(np.float32)


def softmax(x: Array, axis: int = -1) -> Array:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def attention(
    q: Array,
    k: Array,
    v: Array,
    k_cache: Array | None,
    v_cache: Array | None,
    mask: Array,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    scale: float,
    softcap_value: float = 0.0,
    window: int = 0,
    positions: Array | None = None,
) -> Array:
    """Grouped-query attention of `T` new tokens over `S` cached plus the new rows
    (no cache: the new rows alone).

    Scores are soft-capped (when `softcap_value` > 0) before the mask; with a `window`,
    cache row `j` holds position `j` and new row `u` position `positions[u]`."""
    tokens = q.shape[1]
    keys = (k[0] if k_cache is None else np.concatenate([k_cache[0], k[0]], axis=0)).reshape(-1, num_kv_heads, head_dim)
    values = (v[0] if v_cache is None else np.concatenate([v_cache[0], v[0]], axis=0)).reshape(-1, num_kv_heads, head_dim)
    group = num_heads // num_kv_heads
    # Batched BLAS products over (kv head, group): np.einsum would run unoptimised loops.
    queries = np.ascontiguousarray(q[0].reshape(tokens, num_kv_heads, group, head_dim).transpose(1, 2, 0, 3))
    keys = np.ascontiguousarray(keys.transpose(1, 0, 2))[:, None]
    scores = np.matmul(queries, keys.swapaxes(-1, -2)) * np.float32(scale)
    if softcap_value > 0:
        scores = softcap(scores, softcap_value)
    scores = scores + mask[0][None, None, :, :]
    if window > 0:
        assert positions is not None
        query_positions = np.asarray(positions).reshape(tokens)
        history = 0 if k_cache is None else k_cache.shape[1]
        key_positions = np.concatenate([np.arange(history), query_positions])
        scores = scores + window_mask(query_positions, key_positions, window)[None, None]
    probs = softmax(scores)
    out = np.matmul(probs, np.ascontiguousarray(values.transpose(1, 0, 2))[:, None]).transpose(2, 0, 1, 3)
    return out.reshape(1, tokens, num_heads * head_dim).astype(np.float32)


def topk(x: Array, k: int) -> tuple[Array, Array]:
    """Softmax probabilities and indices of the `k` largest logits (largest first)."""
    probs = softmax(x.astype(np.float32))
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(probs, order, axis=-1), order.astype(np.int32)
