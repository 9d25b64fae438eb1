"""Files of the runtime's model directory besides the `.axmodel`s (ax-llm contract).

- `model.embed_tokens.weight.bfloat16.bin`: raw row-major `[vocab, hidden]` bf16, rounded
  to nearest even (the vendor's converter truncates), exactly vocab*hidden*2 bytes;
- `model.embed_tokens.weight.npy`: the same table as fp32 (the vendor's embed step leaves
  it and the vendor's Python runners read it; `--no_embed_npy` skips it);
- `config.json`: what newer runtimes read to find the files;
- `post_config.json`: the host sampler's settings (greedy by default);
- the tokenizer files, copied from the input directory;
- `run_<prefix>_<chip>.sh`: the board runtime's command line for this build, as the
  vendor's packages ship it (the tokenizer server: `axc-tokenizer-server DIR`).
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import ExitStack
from pathlib import Path

import ml_dtypes
import numpy as np

from axc.frontend.config import ModelConfig
from axc.frontend.families import get_family
from axc.frontend.hf_import import embedding_key
from axc.params import Checkpoint
from axc.runtime_contract import EMBED_FILENAME, EMBED_NPY_FILENAME, layer_filename, post_filename
from axc.atomic import atomic_output

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
    "chat_template.jinja",
)
GREEDY_POST_CONFIG = {
    "enable_temperature": False,
    "temperature": 0.9,
    "enable_repetition_penalty": False,
    "repetition_penalty": 1.2,
    "penalty_window": 20,
    "enable_top_p_sampling": False,
    "top_p": 0.8,
    "enable_top_k_sampling": True,
    "top_k": 1,
}
ROWS_PER_CHUNK = 8192
"""Rows of the embedding table read and written at a time (the estimate counts 6 bytes an element: bf16 and fp32)."""
TOKENIZER_URL = "http://127.0.0.1:12345"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The `.npy` header of a C-ordered array (written ahead of its raw rows)."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    return stream.getvalue()


def npy_bytes(vocab: int, hidden: int) -> int:
    """Size of the fp32 `.npy` table (the pre-build disk estimate)."""
    return len(npy_header((vocab, hidden), np.dtype(np.float32))) + vocab * hidden * 4


def write_embedding(checkpoint: Checkpoint, out_dir: Path, npy: bool = False) -> list[Path]:
    """Write the embedding table as raw bf16 (round to nearest even) and, with `npy`, as an
    fp32 `.npy`, reading and writing a chunk of rows at a time; the paths written."""
    key = embedding_key(checkpoint)
    shape = checkpoint.shape(key)
    paths = [out_dir / EMBED_FILENAME] + ([out_dir / EMBED_NPY_FILENAME] if npy else [])
    with ExitStack() as stack:
        streams = [stack.enter_context(atomic_output(path, "wb")) for path in paths]
        if npy:
            streams[1].write(npy_header(tuple(shape), np.dtype(np.float32)))
        for start in range(0, shape[0], ROWS_PER_CHUNK):
            rows = np.asarray(checkpoint.rows(key, start, start + ROWS_PER_CHUNK))
            narrow = rows if rows.dtype == np.dtype(ml_dtypes.bfloat16) else rows.astype(np.float32).astype(ml_dtypes.bfloat16)
            streams[0].write(_raw(narrow))
            if npy:
                streams[1].write(_raw(np.asarray(rows, np.float32)))
    return paths


def _raw(array: np.ndarray) -> memoryview:
    """The bytes of `array` in C order, without a copy when it is contiguous already."""
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # ndarray is a buffer; numpy's stubs lack __buffer__


def runtime_config(config: ModelConfig, prefill_len: int, tokenizer_file: str | None) -> dict:
    """The `config.json` newer ax-llm runtimes read from the model directory."""
    return {
        "model_name": config.model_name,
        "tokenizer_type": get_family(config.model_type).tokenizer_type(config.model_type),
        "url_tokenizer_model": tokenizer_file or "",
        "template_filename_axmodel": layer_filename(config.model_type, prefill_len, 0).replace("_l0_", "_l%d_"),
        "axmodel_num": config.num_hidden_layers,
        "filename_post_axmodel": post_filename(config.model_type),
        "filename_tokens_embed": EMBED_FILENAME,
        "tokens_embed_num": config.vocab_size,
        "tokens_embed_size": config.hidden_size,
    }


def run_script_name(model_type: str, chip: str) -> str:
    return f"run_{model_type}_{chip.lower()}.sh"


def has_chat_template(model_dir: Path) -> bool:
    if (model_dir / "chat_template.jinja").is_file():
        return True
    try:
        return bool(json.loads((model_dir / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def run_script(runtime: dict, chip: str, chat_template: bool) -> str:
    """The ax-llm command line for the build, from its runtime `config.json` (paths relative
    to the script's directory).

    The binary is the vendor's runtime for the chip (`main_ax650`, `main_ax620e`;
    `AXLLM_MAIN` overrides it); `TOKENIZER_URL` and `SYSTEM_PROMPT` override the defaults.
    """
    flags = [
        *([f'--system_prompt "${{SYSTEM_PROMPT:-{DEFAULT_SYSTEM_PROMPT}}}"'] if chat_template else []),
        f'--template_filename_axmodel "{runtime["template_filename_axmodel"]}"',
        f"--axmodel_num {runtime['axmodel_num']}",
        "--tokenizer_type 2",
        f'--url_tokenizer_model "${{TOKENIZER_URL:-{TOKENIZER_URL}}}"',
        f'--filename_post_axmodel "{runtime["filename_post_axmodel"]}"',
        f'--filename_tokens_embed "{runtime["filename_tokens_embed"]}"',
        f"--tokens_embed_num {runtime['tokens_embed_num']}",
        f"--tokens_embed_size {runtime['tokens_embed_size']}",
        "--use_mmap_load_embed 1",
        "--live_print 1",
        '--post_config_path "post_config.json"',
    ]
    return (
        "#!/bin/sh\n"
        f"# ax-llm on the {chip} board for this directory (written by axc-llm-build).\n"
        "# Start the tokenizer server first, on the board or a host it reaches:\n"
        "#   axc-tokenizer-server <this directory> --host 0.0.0.0 --port 12345\n"
        'cd "$(dirname "$0")" || exit 1\n'
        f'exec "${{AXLLM_MAIN:-./main_{chip.lower()}}}" \\\n'
        + "".join(f"  {flag} \\\n" for flag in flags)
        + '  "$@"\n'
    )


def write_run_script(runtime: dict, model_type: str, model_dir: Path, out_dir: Path, chip: str) -> str:
    name = run_script_name(model_type, chip)
    with atomic_output(out_dir / name) as stream:
        stream.write(run_script(runtime, chip, has_chat_template(model_dir)))
    (out_dir / name).chmod(0o755)
    return name


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")


def copy_tokenizer(model_dir: Path, out_dir: Path) -> list[str]:
    """Copy whichever tokenizer files the input has; returns their names."""
    copied = []
    for name in TOKENIZER_FILES:
        source = model_dir / name
        if source.is_file():
            shutil.copyfile(source, out_dir / name)
            copied.append(name)
    return copied


def write_runtime_files(
    config: ModelConfig, checkpoint: Checkpoint, model_dir: Path, out_dir: Path, prefill_len: int, chip: str = "AX650",
    embed_npy: bool = True,
) -> list[str]:
    """Everything but the `.axmodel` files; returns the names written."""
    embeddings = [p.name for p in write_embedding(checkpoint, out_dir, embed_npy)]
    tokenizer = copy_tokenizer(model_dir, out_dir)
    tokenizer_file = "tokenizer.json" if "tokenizer.json" in tokenizer else None
    runtime = runtime_config(config, prefill_len, tokenizer_file)
    write_json(out_dir / "config.json", runtime)
    write_json(out_dir / "post_config.json", GREEDY_POST_CONFIG)
    script = write_run_script(runtime, config.model_type, model_dir, out_dir, chip)
    return [*embeddings, "config.json", "post_config.json", script, *tokenizer]
