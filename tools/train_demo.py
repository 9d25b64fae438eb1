"""Train the shipped demo model: a tiny Qwen2 that does 2-digit integer addition.

Usage::

    .venv/bin/python tools/train_demo.py --out demo/qwen2-add

The script is fully deterministic (fixed seeds, single-threaded CPU torch) and
writes a standard Hugging Face checkpoint directory:

* ``config.json``, ``generation_config.json``, ``model.safetensors`` -- a
  ``Qwen2ForCausalLM`` (hidden 128, intermediate 384, 2 layers, 4 query heads,
  2 KV heads, head_dim 32, vocab 16, tied embeddings, rope_theta 10000) with
  weights stored in **float32**;
* ``tokenizer.json``, ``tokenizer_config.json`` (+ ``special_tokens_map.json``
  when the installed transformers writes one) -- a character-level WordLevel
  tokenizer: ``<pad>``=0, ``<eos>``=1, ``<unk>``=2, digits ``0``-``9`` = 3..12,
  ``+``=13, ``=``=14.  No special tokens are added automatically, so
  ``"1+1="`` encodes to exactly four ids;
* ``heldout.json`` -- 200 ``[a, b]`` pairs (seeded) never seen in training.

Training text is ``"{a}+{b}={a+b}<eos>"`` for a, b in 0..99; the loss is taken
only on the answer digits and ``<eos>``.  The prompt for inference is
``"{a}+{b}="`` and greedy decoding is expected to emit the decimal sum then
``<eos>``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch

HELDOUT_FILE = "heldout.json"
HELDOUT_SIZE = 200
MAX_OPERAND = 99
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHARS = "0123456789+="
VOCAB_SIZE = 16  # 15 real tokens, padded to 16


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------


def build_tokenizer() -> Any:
    """Return a character-level ``PreTrainedTokenizerFast`` (no auto specials)."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for i, ch in enumerate(CHARS):
        vocab[ch] = 3 + i
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        model_max_length=32,
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tokenizer: Any, out: Path) -> None:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` to ``out``.

    ``tokenizer_class`` is pinned to ``PreTrainedTokenizerFast`` so that
    transformers 4.x (which has no ``TokenizersBackend``) loads ``tokenizer.json``
    verbatim.  transformers 5.x always maps ``model_type: qwen2`` to
    ``Qwen2Tokenizer`` (a merge-less byte-level BPE over the same vocab); for
    this all-ASCII, one-token-per-character alphabet it produces identical ids,
    which ``test/unit/test_demo_model.py`` checks.
    """
    tokenizer.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def encode(tokenizer: Any, text: str) -> list[int]:
    """Encode ``text`` to ids, one per character, without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def all_pairs() -> list[tuple[int, int]]:
    """Every (a, b) with a, b in 0..99."""
    return [(a, b) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]


def make_heldout(seed: int) -> list[tuple[int, int]]:
    """Deterministically pick ``HELDOUT_SIZE`` pairs that are never trained on."""
    rng = random.Random(seed)
    return sorted(rng.sample(all_pairs(), HELDOUT_SIZE))


def load_heldout(directory: str | Path) -> list[tuple[int, int]]:
    """Load the held-out ``[a, b]`` pairs written next to the model."""
    data = json.loads((Path(directory) / HELDOUT_FILE).read_text())
    return [(int(a), int(b)) for a, b in data]


def build_examples(
    tokenizer: Any, pairs: Sequence[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``labels`` (loss on answer + eos only).

    Right padding needs no attention mask under causal attention: pads only
    follow the real tokens and are ignored in the loss.
    """
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id
    seqs: list[list[int]] = []
    labs: list[list[int]] = []
    for a, b in pairs:
        prompt = encode(tokenizer, f"{a}+{b}=")
        answer = encode(tokenizer, str(a + b)) + [eos_id]
        seqs.append(prompt + answer)
        labs.append([-100] * len(prompt) + answer)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labs)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(lab)] = torch.tensor(lab)
    return ids, labels


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


def build_model(tokenizer: Any) -> Any:
    """A freshly initialised tiny ``Qwen2ForCausalLM``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(  # type: ignore[call-arg]  # rope_theta goes through **kwargs; the stubs do not list it
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        use_sliding_window=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        initializer_range=0.02,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    model.generation_config.do_sample = False
    model.generation_config.max_new_tokens = 5
    return model


# --------------------------------------------------------------------------
# Greedy decoding helpers (used by tests)
# --------------------------------------------------------------------------


@torch.no_grad()
def _greedy_batch(model: Any, prompt_ids: list[list[int]], eos_id: int, max_new_tokens: int) -> list[list[int]]:
    """Greedy-decode equal-length prompts in one batch (no padding, no KV cache)."""
    ids = torch.tensor(prompt_ids, dtype=torch.long, device=model.device)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    out: list[list[int]] = [[] for _ in prompt_ids]
    for _ in range(max_new_tokens):
        logits = model(input_ids=ids, use_cache=False).logits[:, -1, :]
        nxt = logits.argmax(dim=-1)
        for i, t in enumerate(nxt.tolist()):
            if not done[i]:
                out[i].append(t)
        done |= nxt == eos_id
        if bool(done.all()):
            break
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return out


def _decode_answer(tokenizer: Any, ids: list[int]) -> str:
    """Decode generated ids up to (excluding) the first ``<eos>``."""
    eos_id = tokenizer.eos_token_id
    if eos_id in ids:
        ids = ids[: ids.index(eos_id)]
    return tokenizer.decode(ids, skip_special_tokens=True)


def greedy_answers(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[int, int]],
    max_new_tokens: int = 5,
) -> list[str]:
    """Greedy answers for many prompts ``"a+b="``, batched by prompt length."""
    eos_id = tokenizer.eos_token_id
    prompts = [encode(tokenizer, f"{a}+{b}=") for a, b in pairs]
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    answers = [""] * len(pairs)
    for idxs in groups.values():
        gen = _greedy_batch(model, [prompts[i] for i in idxs], eos_id, max_new_tokens)
        for i, g in zip(idxs, gen):
            answers[i] = _decode_answer(tokenizer, g)
    return answers


def greedy_answer(model: Any, tokenizer: Any, a: int, b: int, max_new_tokens: int = 5) -> str:
    """Greedy answer string (digits before ``<eos>``) for the prompt ``"a+b="``."""
    return greedy_answers(model, tokenizer, [(a, b)], max_new_tokens)[0]


def accuracy(model: Any, tokenizer: Any, pairs: Sequence[tuple[int, int]]) -> float:
    """Fraction of ``pairs`` whose greedy answer equals ``str(a + b)``."""
    answers = greedy_answers(model, tokenizer, pairs)
    return sum(ans == str(a + b) for ans, (a, b) in zip(answers, pairs)) / len(pairs)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def train(args: argparse.Namespace) -> None:
    """Build tokenizer + model, train, evaluate on held-out sums and save."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    heldout = make_heldout(args.seed)
    held = set(heldout)
    train_pairs = [p for p in all_pairs() if p not in held]
    ids, labels = build_examples(tokenizer, train_pairs)

    model = build_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model params: {n_params:,}; train examples: {len(train_pairs)}; held-out: {len(heldout)}")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = max(1, args.steps // 20)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, args.steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + torch.cos(torch.tensor(frac * torch.pi)).item())

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    gen = torch.Generator().manual_seed(args.seed)
    probe = train_pairs[:: max(1, len(train_pairs) // 200)][:200]

    t0 = time.time()
    model.train()
    perm = torch.randperm(len(train_pairs), generator=gen)
    pos = 0
    for step in range(args.steps):
        if pos + args.batch > len(perm):
            perm = torch.randperm(len(train_pairs), generator=gen)
            pos = 0
        idx = perm[pos : pos + args.batch]
        pos += args.batch
        out_ = model(input_ids=ids[idx], labels=labels[idx], use_cache=False)
        # HF shifts labels internally; pads/prompt are -100.
        loss = out_.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            model.eval()
            acc = accuracy(model, tokenizer, probe)
            model.train()
            print(
                f"step {step + 1:5d}  loss {loss.item():.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                f"train-probe acc {acc:.3f}  ({time.time() - t0:.1f}s)",
                flush=True,
            )
    train_s = time.time() - t0

    model.eval()
    held_acc = accuracy(model, tokenizer, heldout)
    print(f"training time: {train_s:.1f}s")
    print(f"held-out accuracy (fp32): {held_acc:.4f}")
    bf16 = copy.deepcopy(model).to(torch.bfloat16).eval()
    print(f"held-out accuracy (whole model in bf16): {accuracy(bf16, tokenizer, heldout):.4f}")

    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tokenizer, out)
    (out / HELDOUT_FILE).write_text(json.dumps([[a, b] for a, b in heldout]) + "\n")
    print(f"saved to {out}")


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo/qwen2-add", help="output directory")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=250)
    train(ap.parse_args(argv))


if __name__ == "__main__":
    main()
