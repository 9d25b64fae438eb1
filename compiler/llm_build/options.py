"""The options of `axc-llm-build`: the vendor's `pulsar2 llm_build` flags, verbatim."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from axc.errors import AxcError, ArgumentParser

WEIGHT_TYPES = ("fp16", "bf16", "fp32", "s8", "s4", "fp8_e5m2", "fp8_e4m3")
POST_WEIGHT_TYPES = ("bf16", "s8", "fp8_e5m2", "fp8_e4m3")
HIDDEN_TYPES = ("fp16", "bf16", "fp32")
CHIPS = ("AX620E", "AX650")
NPU_MODES = ("NPU1", "NPU2", "NPU3")
CHECK_LEVELS = (0, 1, 2)
DEFAULT_IMAGE_SIZE = 224
DEFAULT_TENSOR_PARALLEL_SIZE = 0
CONV_EU_ENV = "FLOAT_MATMUL_USE_CONV_EU"
"""The vendor's environment switch: float matmuls on AX650's convolution units."""


@dataclass(frozen=True)
class BuildOptions:
    """One build, as the user asked for it (`weight_type` None: s8, or a GPTQ checkpoint's bits)."""

    input_path: Path
    output_path: Path
    prefill_len: int = 0
    parallel: int = 1
    model_config: Path | None = None
    kv_cache_len: int = 127
    post_topk: int = 0
    post_weight_type: str = "s8"
    hidden_state_type: str = "bf16"
    weight_type: str | None = None
    check_level: int = 0
    chip: str = "AX650"
    prompt: str = "1+1="
    last_kv_cache_len: tuple[int, ...] = field(default_factory=tuple)
    npu_mode: str = "NPU1"
    embed_npy: bool = True
    float_matmul_use_conv_eu: bool = False  # from the environment (CONV_EU_ENV), as the vendor reads it

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("input_path", "output_path", "model_config"):
            data[key] = None if data[key] is None else str(data[key])
        data["last_kv_cache_len"] = list(self.last_kv_cache_len)
        return data


def parser(prog: str = "axc-llm-build") -> ArgumentParser:
    p = ArgumentParser(
        prog=prog,
        description="Build a Hugging Face decoder LLM into the AXERA runtime's model directory "
        "(the job of `pulsar2 llm_build`, with the same flags).",
    )
    p.add_argument("--input_path", required=True, type=Path, help="Hugging Face model directory")
    p.add_argument("--output_path", required=True, type=Path, help="directory to write (replaced when complete)")
    p.add_argument("--prefill_len", type=int, default=0, help="tokens per prefill chunk; 0 = decode only (default 0)")
    p.add_argument("--parallel", type=int, default=1, help="worker processes building layers (default 1)")
    p.add_argument("--model_config", type=Path, default=None, help="vendor model config JSON completing config.json")
    p.add_argument("--kv_cache_len", type=int, default=127, help="KV cache rows of the decode group (default 127)")
    p.add_argument("--post_topk", type=int, default=0, help="post model returns top-K ids and probabilities (default 0: logits)")
    p.add_argument("--post_weight_type", choices=POST_WEIGHT_TYPES, default="s8", help="lm_head storage (default s8)")
    p.add_argument("-t", "--hidden_state_type", choices=HIDDEN_TYPES, default="bf16", help="activation type (default bf16)")
    p.add_argument(
        "-w", "--weight_type", choices=WEIGHT_TYPES, default=None,
        help="decoder weight storage (default s8, or the bits of a GPTQ checkpoint)",
    )
    p.add_argument(
        "-c", "--check_level", type=int, choices=CHECK_LEVELS, default=0,
        help="0 build only, 1 check every layer file in the simulator, 2 also run --prompt (default 0)",
    )
    p.add_argument("--chip", choices=CHIPS, default="AX650", type=str.upper, help="target chip (default AX650)")
    p.add_argument("--prompt", default="1+1=", help="prompt of -c 2 (default '1+1=')")
    p.add_argument(
        "--last_kv_cache_len", type=int, nargs="+", action="extend", default=[],
        help="one prefill group per value, whose history (cached rows) is that value, beside the "
        "history-0 group; strictly increasing, value + prefill_len <= kv_cache_len; repeat the flag or list several values",
    )
    p.add_argument("--npu_mode", choices=NPU_MODES, default="NPU1", type=str.upper, help="NPU cores per model (default NPU1)")
    p.add_argument(
        "--no_embed_npy", dest="embed_npy", action="store_false",
        help="skip model.embed_tokens.weight.npy (the fp32 table the vendor's Python runners read)",
    )
    p.add_argument(
        "--image_size", type=int, default=DEFAULT_IMAGE_SIZE,
        help=f"vision-language models only: not supported, must stay {DEFAULT_IMAGE_SIZE}",
    )
    p.add_argument(
        "--tensor_parallel_size", type=int, default=DEFAULT_TENSOR_PARALLEL_SIZE,
        help="multi-chip builds: not supported, must stay 0 (or 1)",
    )
    return p


def from_args(args: argparse.Namespace) -> BuildOptions:
    """The options of parsed arguments; flags axc accepts but cannot honour are refused here."""
    if args.image_size != DEFAULT_IMAGE_SIZE:
        raise AxcError(
            f"--image_size {args.image_size}: vision-language models are not supported by axc yet; "
            "drop --image_size to build the language model"
        )
    if args.tensor_parallel_size not in (0, 1):
        raise AxcError(
            f"--tensor_parallel_size {args.tensor_parallel_size}: tensor-parallel builds over several chips "
            "are not supported by axc; drop the flag"
        )
    values = {f.name: getattr(args, f.name) for f in fields(BuildOptions) if f.name != "float_matmul_use_conv_eu"}
    return BuildOptions(
        **values
        | {"last_kv_cache_len": tuple(args.last_kv_cache_len), "float_matmul_use_conv_eu": float_matmul_use_conv_eu(os.environ)}
    )


def float_matmul_use_conv_eu(environ: Mapping[str, str]) -> bool:
    """FLOAT_MATMUL_USE_CONV_EU: 1 on; 0, empty or unset off."""
    value = environ.get(CONV_EU_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise AxcError(
            f"{CONV_EU_ENV}={value!r}: expected 1 (float matmuls on the convolution units) or 0; "
            f"set it to 1 or 0, or unset it"
        )
    return value == "1"
