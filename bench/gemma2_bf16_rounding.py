"""Where the tiny Gemma2's bf16 accuracy goes: an fp32 forward of the test's model
(`test/unit/family_models.py`) that rounds chosen tensors to bf16, against transformers'
fp32 logits, worst cosine over every position of each sequence.

    .venv/bin/python bench/gemma2_bf16_rounding.py [--prompts 16]

Rows: bf16 weights alone; plus the runtime's tensors (embedding rows, hidden states
between layers, KV rows: what the `compute=fp32` build rounds); plus each op result inside
the layers on its own; plus all of them (a build with bf16 between ops); transformers' own
bf16 run. Columns: the test's sequence (its 19-token prompt and 6 greedy tokens), then the
mean, the least and the share below 0.9999 over that and `--prompts - 1` random
25-token sequences.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "unit"))
from family_models import FAMILY_MODELS

CONTRACT = ("embedding", "hidden", "kv")
INSIDE = ("norm", "linear", "rope", "scores", "probs", "attention", "mlp", "residual", "logits")


def bf16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).float()


def forward(model: transformers.PreTrainedModel, tokens: list[int], rounded: frozenset[str]) -> torch.Tensor:
    """Gemma2's forward in fp32 on bf16 weights, rounding the tensors named in `rounded`."""
    c, w = model.config, {k: bf16(v.float()) for k, v in model.state_dict().items()}
    r: Callable[[torch.Tensor, str], torch.Tensor] = lambda x, tag: bf16(x) if tag in rounded else x  # noqa: E731
    heads, kv_heads, d, count = c.num_attention_heads, c.num_key_value_heads, c.head_dim, len(tokens)

    def norm(x: torch.Tensor, key: str) -> torch.Tensor:  # (1 + w) in fp32, as the build's views serve it
        weight = 1 + model.state_dict()[key].float()
        return r(x * torch.rsqrt((x * x).mean(-1, keepdim=True) + c.rms_norm_eps) * weight, "norm")

    positions = torch.arange(count).float()[:, None] / (10000.0 ** (torch.arange(0, d, 2).float() / d))
    cos, sin = torch.cat([positions.cos()] * 2, -1), torch.cat([positions.sin()] * 2, -1)

    def rope(x: torch.Tensor) -> torch.Tensor:
        return r(x * cos + torch.cat([-x[..., d // 2 :], x[..., : d // 2]], -1) * sin, "rope")

    rows = model.state_dict()["model.embed_tokens.weight"].float() * np.float32(np.sqrt(c.hidden_size))
    x = r(rows[tokens], "embedding")
    q_index, k_index = torch.arange(count)[:, None], torch.arange(count)[None]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        h = norm(x, p + "input_layernorm.weight")
        q, k, v = (r(h @ w[f"{p}self_attn.{n}_proj.weight"].T, "linear").view(count, -1, d).transpose(0, 1) for n in "qkv")
        q, k, v = rope(q), r(rope(k), "kv"), r(v, "kv")
        k, v = k.repeat_interleave(heads // kv_heads, 0), v.repeat_interleave(heads // kv_heads, 0)
        scores = q @ k.transpose(1, 2) * c.query_pre_attn_scalar**-0.5
        scores = r(torch.tanh(scores / c.attn_logit_softcapping) * c.attn_logit_softcapping, "scores")
        visible = k_index <= q_index
        if c.layer_types[i] == "sliding_attention":
            visible &= k_index > q_index - c.sliding_window
        probs = r(torch.softmax(scores.masked_fill(~visible, -1e30), -1), "probs")
        attention = r((probs @ v).transpose(0, 1).reshape(count, heads * d), "attention")
        o = r(attention @ w[p + "self_attn.o_proj.weight"].T, "linear")
        x = r(x + norm(o, p + "post_attention_layernorm.weight"), "residual")
        h = norm(x, p + "pre_feedforward_layernorm.weight")
        gate, up = (r(h @ w[f"{p}mlp.{n}_proj.weight"].T, "linear") for n in ("gate", "up"))
        product = r(r(torch.nn.functional.gelu(gate, approximate="tanh"), "mlp") * up, "mlp")
        down = r(product @ w[p + "mlp.down_proj.weight"].T, "linear")
        x = r(r(x + norm(down, p + "post_feedforward_layernorm.weight"), "residual"), "hidden")
    logits = r(norm(x, "model.norm.weight") @ w["model.embed_tokens.weight"].T, "logits")
    return torch.tanh(logits / c.final_logit_softcapping) * c.final_logit_softcapping


def worst(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(ours, reference, dim=-1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16, help="sequences (the test's first; default 16)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as directory:
        model_dir, _ = FAMILY_MODELS["gemma2"](Path(directory))
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        own = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    tokens = list(map(int, np.random.default_rng(7).integers(3, 100, size=19)))  # test_family_builds' prompt
    for _ in range(6):
        tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
    rng = np.random.default_rng(123)
    sequences = [tokens] + [list(map(int, rng.integers(3, 100, size=25))) for _ in range(args.prompts - 1)]
    references = [model(torch.tensor([s])).logits[0] for s in sequences]
    rows: list[tuple[str, Callable[[list[int]], torch.Tensor]]] = [
        ("bf16 weights", lambda s: forward(model, s, frozenset())),
        ("+ embedding, hidden, KV rows (compute=fp32)", lambda s: forward(model, s, frozenset(CONTRACT))),
        *[(f"  + {tag}", lambda s, t=tag: forward(model, s, frozenset((*CONTRACT, t)))) for tag in INSIDE],
        ("+ every op result (bf16 between ops)", lambda s: forward(model, s, frozenset((*CONTRACT, *INSIDE)))),
        ("transformers' bf16 run", lambda s: own(torch.tensor([s])).logits[0].float()),
    ]
    print(f"{'rounded to bf16':46s} {'test':>9s} {'mean':>9s} {'least':>9s} {'<0.9999':>8s}")
    for name, run in rows:
        cosines = np.array([worst(run(s), ref) for s, ref in zip(sequences, references)])
        print(f"{name:46s} {cosines[0]:9.6f} {cosines.mean():9.6f} {cosines.min():9.6f} {np.mean(cosines < 0.9999):8.0%}")


if __name__ == "__main__":
    main()
