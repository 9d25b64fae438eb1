"""`axc-fuzz`: seeded mutation fuzzing of every reader a user feeds files to.

    axc-fuzz --trials 10000                      # every reader, 10,000 trials each
    axc-fuzz --reader ir --reader bin --trials 300 --seed 7
    axc-fuzz --replay fuzz-findings/ir/0-17.mlir # rerun one saved input, show its outcome

A trial mutates a valid seed input (the tiny checkpoint's `config.json`, its safetensors
file, its IR, a `.axmodel` built from it, a request to the HTTP servers over the built
demo model, ...), runs the tool's entry point (or the server's ASGI app) in-process on it
and sorts the outcome: `ok` (exit 0, a 2xx), `refused` (exit 1 with the one stderr line
`tool: error: ...` and no output left, a 4xx with a one-line message) or a finding:
`traceback` (printed anywhere, whatever the exit code; also a 5xx), `bad-error` (another
exit code, an empty message, more lines - any line break `str.splitlines` knows - or
output left behind), `hang` (over --limit seconds; the worker process running the trials
is killed and restarted) or `crash` (the worker died). Each finding's input is saved
under --findings with its outcome and replay command. Trial `i` of reader `r` with seed `s` is the same
input whatever else ran, so `--seed S --reader R --trials N` reproduces a run.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import math
import multiprocessing
import os
import random
import re
import resource
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axc.errors import ArgumentParser

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp

    from axc.axmodel import AxModel

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one BLAS thread per trial, as axc-llm-build (set before numpy loads)

FIXTURE = Path(__file__).resolve().parents[1] / "test" / "fixtures" / "tiny-qwen2"
DEMO = Path(__file__).resolve().parents[1] / "demo" / "qwen2-add"
FINDINGS = ("traceback", "bad-error", "hang", "crash")
MEMORY_LIMIT = 6 << 30
"""Address-space limit of the worker: a mutated size asking for more is a MemoryError."""

Mutator = Callable[[bytes, random.Random], bytes]


# --- mutations ------------------------------------------------------------------------------


def flip_bytes(data: bytes, rng: random.Random, focus: tuple[int, int] | None = None) -> bytes:
    """Set or flip one to four bytes, within `focus` (start, end) when given."""
    raw = bytearray(data)
    low, high = focus or (0, len(raw))
    if high <= low:
        return data
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(low, high)
        if rng.random() < 0.5:
            raw[position] = rng.randrange(256)
        else:
            raw[position] ^= 1 << rng.randrange(8)
    return bytes(raw)


INTERESTING_BYTES = (b"\x00", b"\xff", b'"', b"\\", b"\n", b"{", b"}", b"[", b"<", b">", b"-1", b"99999999999999999999", b"\xc3")


def edit_bytes(data: bytes, rng: random.Random) -> bytes:
    """One generic byte-level edit: flips, a cut, a deleted/duplicated span or an insertion."""
    if not data:
        return rng.choice(INTERESTING_BYTES)
    kind = rng.randrange(6)
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.choice((1, 2, 8, 64, 4096)))
    if kind == 0:
        return flip_bytes(data, rng)
    if kind == 1:
        return data[:start]
    if kind == 2:
        return data[:start] + data[end:]
    if kind == 3:
        return data[:end] + data[start:end] * rng.choice((1, 2, 100)) + data[end:]
    if kind == 4:
        return data[:start] + rng.choice(INTERESTING_BYTES) + data[start:]
    return data[:start] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[start:]


INTERESTING_VALUES: tuple[object, ...] = (
    0, -1, 1, 2, 3, 7, 1 << 31, 1 << 63, -(1 << 63), 10**30, 0.5, -0.0, 1e308, float("nan"), float("inf"),
    True, False, None, "", "x", "qwen2", "llama", "bfloat16", "gptq", "F32", "I64", "x" * 5000,
    [], [1], [1, 2, 3], [-1], [[]], {}, {"a": 1}, {"rope_type": "yarn", "factor": 0},
)


DEEP = "\x00deep\x00"
"""A placeholder value that `dump_json` replaces by 100,000 nested lists."""


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    assert isinstance(value, list)
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


def _delete(value: object, path: tuple[object, ...]) -> object:
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_delete(v, rest) if rest and k == head else v) for k, v in value.items() if rest or k != head}
    assert isinstance(value, list)
    return [(_delete(v, rest) if rest and i == head else v) for i, v in enumerate(value) if rest or i != head]


def _get(value: object, path: tuple[object, ...]) -> object:
    for part in path:
        value = value[part]  # type: ignore[index]  # the path was recorded from this same JSON value
    return value


def edit_json_value(value: object, rng: random.Random) -> object:
    """One structural edit: a value replaced, scaled, retyped or deleted, or a key added."""
    paths = _paths(value)
    path = rng.choice(paths[1:] or paths)
    old = _get(value, path)
    kind = rng.randrange(8)
    if kind == 0 and path:
        return _delete(value, path)
    if kind == 1 and isinstance(old, (int, float)) and not isinstance(old, bool):
        return _replace(value, path, rng.choice((old * 2, old + 1, old - 1, -old, old * 1000, float(old), str(old))))
    if kind == 2:
        return _replace(value, path, DEEP if rng.random() < 0.3 else [[old]])
    if kind == 3 and isinstance(value, dict):
        key = rng.choice(("rope_scaling", "quantization_config", "head_dim", "torch_dtype", "tie_word_embeddings",
                          "num_key_value_heads", "rope_parameters", "dtype", "__metadata__", "attention_bias"))
        return {**value, key: rng.choice(INTERESTING_VALUES)}
    if kind == 4 and isinstance(old, str) and old:
        return _replace(value, path, old[: rng.randrange(len(old))] + rng.choice(("", "\x00", "é", old)))
    return _replace(value, path, rng.choice(INTERESTING_VALUES))


def dump_json(value: object) -> bytes:
    depth = 100_000
    return json.dumps(value, indent=1).replace(json.dumps(DEEP), "[" * depth + "]" * depth, 1).encode()


def edit_json(data: bytes, rng: random.Random) -> bytes:
    """Structural JSON edits (most trials) or byte edits of the JSON text."""
    if rng.random() < 0.25:
        return edit_bytes(data, rng)
    value: object = json.loads(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        value = edit_json_value(value, rng)
    text = dump_json(value)
    return edit_bytes(text, rng) if rng.random() < 0.1 else text


def edit_safetensors(data: bytes, rng: random.Random, focus: str = "header") -> bytes:
    """Edit the JSON header (re-encoded with a consistent length prefix) or the raw bytes;
    with `focus="any"`, the tensor data half the time."""
    (size,) = struct.unpack("<Q", data[:8])
    header, body = data[8 : 8 + size], data[8 + size :]
    if focus == "any" and rng.random() < 0.5:
        return data[: 8 + size] + (flip_bytes(body, rng) if rng.random() < 0.8 else edit_bytes(body, rng))
    kind = rng.randrange(6)
    if kind == 0:
        return edit_bytes(data, rng)
    if kind == 1:
        return flip_bytes(data, rng, (0, 8 + size))
    new = edit_json(header, rng) if kind < 4 else _edit_tensor_entry(json.loads(header), rng)
    return struct.pack("<Q", len(new)) + new + body


SAME_SIZE_DTYPES = (("BF16", "F16", "I16", "U16"), ("F32", "I32", "U32"), ("F64", "I64", "U64"), ("I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"))


def _edit_tensor_entry(header: dict[str, object], rng: random.Random) -> bytes:
    """An edit the safetensors library accepts (sizes still add up), for axc's own checks to
    judge: a dtype of the same width, a reshaped, renamed, swapped or extra tensor."""
    keys = [k for k in header if k != "__metadata__"]
    key = rng.choice(keys)
    info: dict[str, Any] = dict(header[key])  # type: ignore[call-overload]  # a header entry is a dict (safetensors' format)
    kind = rng.randrange(5)
    if kind == 0:
        family = next((f for f in SAME_SIZE_DTYPES if info["dtype"] in f), SAME_SIZE_DTYPES[0])
        header[key] = {**info, "dtype": rng.choice(family)}
    elif kind == 1:
        shape = list(info["shape"])
        count = math.prod(shape)
        header[key] = {**info, "shape": rng.choice(([count], shape[::-1], [1, *shape], [*shape, 1], [count, 1]))}
    elif kind == 2:
        header[key[: rng.randrange(len(key))] + rng.choice(("", "0", "1", ".weight", "é"))] = header.pop(key)
    elif kind == 3:
        other = rng.choice(keys)
        header[key], header[other] = header[other], header[key]
    else:
        header[rng.choice(("lm_head.weight", "model.layers.1.mlp.up_proj.weight", "extra", "model.layers.0.self_attn.o_proj.bias"))] = info
    return json.dumps(header).encode()


def edit_state_dict(data: bytes, rng: random.Random) -> bytes:
    """A valid checkpoint with odd contents: a tensor renamed (or keyed by a number), retyped,
    reshaped, transposed, emptied or replaced by a container of tensors."""
    import torch

    state = torch.load(io.BytesIO(data), weights_only=True)
    key = rng.choice(list(state))
    value = state[key]
    kind = rng.randrange(6)
    if kind == 0:
        state[rng.choice((7, key + ".x", key.replace("weight", "bias"), "", key.upper()))] = state.pop(key)
    elif kind == 1:
        state[key] = value.to(rng.choice((torch.int64, torch.float64, torch.bool, torch.complex64, torch.uint8, torch.float8_e4m3fn)))
    elif kind == 2:
        state[key] = value.reshape(-1) if rng.random() < 0.5 else value[None]
    elif kind == 3:
        state[key] = value.t() if value.dim() == 2 else value[::2]
    elif kind == 4:
        state[key] = value[:0]
    else:
        state[key] = rng.choice(([value], {"weight": value}, (value, value)))
    out = io.BytesIO()
    torch.save(state, out)
    return out.getvalue()


def edit_pickle_zip(data: bytes, rng: random.Random) -> bytes:
    """Edit a torch zip checkpoint: raw bytes, its contents (still a valid file), or one member
    (its pickle most often) re-zipped."""
    if rng.random() < 0.3:
        return edit_state_dict(data, rng)
    if rng.random() < 0.3:
        return edit_bytes(data, rng)
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    pickles = [i for i, (info, _) in enumerate(members) if info.filename.endswith(".pkl")]
    chosen = rng.choice(pickles) if pickles and rng.random() < 0.8 else rng.randrange(len(members))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for i, (info, raw) in enumerate(members):
            if i == chosen:
                raw = edit_bytes(raw, rng) if rng.random() < 0.5 else flip_bytes(raw, rng)
            target.writestr(info, raw)
    return out.getvalue()


IR_TOKENS = ('"', "%", "<", ">", "{", "}", "(", ")", ":", "x", "?", "0", "-1", "99999999999", "bf16", "f32", "i8",
             "ui32", "tensor<", "dense<", "@", "^bb0", "//", "\\", "\n", "é", "#", "!")


ATTRIBUTE = re.compile(r'(\w+) = (-?[0-9][0-9.e+-]*|"[^"]*")(?: : (i64|f64))?')
ATTRIBUTE_VALUES = {
    "i64": ("0", "-1", "3", "7", "1024", "99999999999", "-9223372036854775808"),
    "f64": ("0.0", "-1.0", "1.0e+300", "0x7FF8000000000000", "0x7FF0000000000000", "1.0e-300"),
    "string": ('""', '"gelu"', '"bogus"', '"/nonexistent"', '"model"', '"silu"'),
}
DIM = re.compile(r"(?<=[<x])([0-9]+)(?=[x>])")


def edit_ir(data: bytes, rng: random.Random) -> bytes:
    """Token-level IR edits: a quote lost, a number, attribute or type changed, a line cut or
    copied, or one dimension changed throughout."""
    text = data.decode("utf-8", "replace")
    kind = rng.randrange(9)
    if kind == 0:
        return edit_bytes(data, rng)
    if kind == 7:
        values = list(ATTRIBUTE.finditer(text))
        if values:
            found = rng.choice(values)
            value = rng.choice(ATTRIBUTE_VALUES[found.group(3) or "string"])
            return (text[: found.start(2)] + value + text[found.end(2) :]).encode()
    if kind == 8:
        dims = sorted(set(DIM.findall(text)))
        if dims:  # one dimension changed in every type: consistent IR, inconsistent model
            return re.sub(rf"(?<=[<x]){rng.choice(dims)}(?=[x>])", rng.choice(("0", "1", "3", "17", "64")), text).encode()
    lines = text.split("\n")
    row = rng.randrange(len(lines))
    line = lines[row]
    if kind == 1 and '"' in line:
        quotes = [i for i, c in enumerate(line) if c == '"']
        cut = rng.choice(quotes)
        lines[row] = line[:cut] + line[cut + 1 :]
    elif kind == 2:
        digits = [i for i, c in enumerate(line) if c.isdigit()]
        if digits:
            at = rng.choice(digits)
            lines[row] = line[:at] + rng.choice(("0", "3", "17", "-1", "65536", "99999999999999999999", "1.5", "")) + line[at + 1 :]
    elif kind == 3:
        del lines[row]
    elif kind == 4:
        lines.insert(rng.randrange(len(lines)), line)
    elif kind == 5:
        at = rng.randrange(len(line) + 1)
        lines[row] = line[:at] + rng.choice(IR_TOKENS) + line[at:]
    else:
        for old, new in (("bf16", "f32"), ("f32", "i8"), ("x16", "x15"), ("x8", "x9"), ("1x", "2x"), ("%0", "%1")):
            if old in line and rng.random() < 0.5:
                lines[row] = line.replace(old, new, 1)
                break
        else:
            lines[row] = ""
    return "\n".join(lines).encode()


# --- readers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """A file a user hands to a tool: where it lives in a trial, how it mutates, the command."""

    name: str
    tool: str
    target: str
    """The mutated file, relative to the corpus directory the trials run in."""
    argv: tuple[str, ...]
    mutate: Mutator
    outputs: tuple[str, ...] = ("out.mlir", "out", "out.params.safetensors", "params.safetensors")
    entry: str = ""
    """`module:function` of the tool's entry point (default: the console script `tool`'s)."""

    def main(self) -> Callable[[], object]:
        module, _, function = (self.entry or ENTRY_POINTS[self.tool]).partition(":")
        return getattr(importlib.import_module(module), function)


def edit_axmodel(data: bytes, rng: random.Random) -> bytes:
    """`.axmodel` edits: raw bytes, a cut, or a command stream or the parameter blob edited and
    re-wrapped with fresh checksums (so the edit reaches the decoder behind the container)."""
    import dataclasses

    from axc.axmodel import to_proto
    from axc.isa import encoding

    choice = rng.randrange(9)
    if choice < 3:
        return flip_bytes(data, rng) if rng.random() < 0.7 else edit_bytes(data, rng)
    if choice == 3:
        return data[: rng.randrange(len(data))]
    if choice == 4:
        return _edit_metadata(data, rng)
    model = _decoded(data)
    if choice < 7:
        k = rng.randrange(len(model.groups))
        focus = (0, encoding.HEADER.size) if rng.random() < 0.2 else None
        groups = list(model.groups)
        groups[k] = dataclasses.replace(groups[k], commands=flip_bytes(groups[k].commands, rng, focus))
        new = dataclasses.replace(model, groups=tuple(groups))
    else:
        focus = (0, 512) if rng.random() < 0.7 else None
        new = dataclasses.replace(model, params=flip_bytes(model.params, rng, focus))
    return to_proto(new).SerializeToString(deterministic=True)


def _edit_metadata(data: bytes, rng: random.Random) -> bytes:
    """One metadata value of the container edited (a JSON one structurally)."""
    import onnx

    proto = onnx.ModelProto()
    proto.ParseFromString(data)
    prop = rng.choice(proto.metadata_props)
    edit = edit_json if prop.value.startswith("{") else edit_bytes
    prop.value = edit(prop.value.encode(), rng).decode("utf-8", "replace")
    return proto.SerializeToString()


@lru_cache(maxsize=1)
def _decoded(data: bytes) -> AxModel:
    """The seed `.axmodel`, decoded once per worker."""
    from axc.axmodel import parse_axmodel

    return parse_axmodel(data, "seed")


# --- the HTTP servers: request bodies ----------------------------------------------------------

UID = "UID"
"""Replaced by a fresh session uid (GET /get_uid) when the request is sent."""
REQUESTS: dict[str, tuple[tuple[str, str, object], ...]] = {
    "tokenizer-uid": (
        ("POST", "/encode", {"uid": UID, "text": "1+1=", "last_reply": "2"}),
        ("POST", "/decode", {"uid": UID, "token_ids": [3, 4, 5]}),
        ("POST", "/reset", {"uid": UID, "system_prompt": "Add."}),
        ("GET", "/bos_id?uid=UID", None),
    ),
    "tokenizer-plain": (
        ("POST", "/encode", {"text": "1+1=", "img_prompt": False}),
        ("POST", "/decode", {"token_ids": [3, 4, 5]}),
    ),
    "serve": (
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "1+1="}], "max_tokens": 3, "seed": 1}),
        ("POST", "/v1/chat/completions", {
            "model": "qwen2-add", "messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": "2+3="}],
            "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.7, "top_p": 0.9, "stop": ["\n"],
            "max_tokens": 3,
        }),
    ),
}
PATHS = ("/", "/health", "/v1/models", "/encode", "/decode", "/get_uid", "/reset", "/eos_id", "/v1/chat/completions/x")
SERVERS = {"tokenizer-uid": "axc-tokenizer-server", "tokenizer-plain": "axc-tokenizer-server", "serve": "axc-serve"}


def request_text(method: str, path: str, body: object) -> bytes:
    """A request file: `METHOD /path` on the first line, the body after it."""
    return f"{method} {path}\n".encode() + (b"" if body is None else json.dumps(body).encode())


def edit_request(data: bytes, rng: random.Random, server: str) -> bytes:
    """One of the server's seed requests with its JSON body edited (now and then another
    path or method)."""
    method, path, body = rng.choice(REQUESTS[server])
    if rng.random() < 0.05:
        path = rng.choice(PATHS)
    if rng.random() < 0.05:
        method = rng.choice(("GET", "POST", "PUT", "DELETE"))
    raw = json.dumps(body).encode() if body is not None else b""
    return f"{method} {path}\n".encode() + (edit_json(raw, rng) if raw else edit_bytes(raw, rng))


@cache
def _server(server: str, directory: Path) -> tuple[Any, asyncio.AbstractEventLoop]:
    """The server's ASGI app over the built demo model, and an event loop to run it on."""
    from axc.runtime.tokenizer import ChatTokenizer

    if server == "serve":
        from axc.runtime.openai_server import Model, openai_app

        app = openai_app(Model.load(directory))
    else:
        from axc.runtime.tokenizer_server import tokenizer_app

        app = tokenizer_app(ChatTokenizer.load(directory), server.removeprefix("tokenizer-"))
    return app, asyncio.new_event_loop()


def _asgi(app: Any, loop: asyncio.AbstractEventLoop, method: str, target: str, body: bytes) -> tuple[int, bytes]:
    """Send one HTTP request to `app` in this process: the status and the whole body."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }
    response: dict[str, Any] = {"status": 0, "body": []}
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client stays connected until the response is done
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
        elif message["type"] == "http.response.body":
            response["body"].append(message.get("body", b""))

    loop.run_until_complete(app(scope, receive, send))
    return response["status"], b"".join(response["body"])


def _error_message(payload: bytes) -> object:
    data = json.loads(payload)
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("message") if isinstance(error, dict) else error


def _request_main(server: str) -> None:
    """Send the request of `<server>.http` to the server (an exception or a 5xx is the
    finding); a 4xx must carry a one-line message, reported as `tool: error: ...`, exit 1."""
    tool = SERVERS[server]
    app, loop = _server(server, Path("built-demo").resolve())
    head, _, body = Path(f"{server}.http").read_bytes().partition(b"\n")
    method, _, target = head.decode("utf-8", "replace").partition(" ")
    if UID.encode() in body or UID in target:
        status, uid = _asgi(app, loop, "GET", "/get_uid", b"")
        fresh = json.loads(uid)["uid"]
        body, target = body.replace(UID.encode(), fresh.encode()), target.replace(UID, fresh)
    status, payload = _asgi(app, loop, method, target, body)
    if status >= 500 or status < 200:
        raise RuntimeError(f"{tool} answered HTTP {status}: {payload[:500]!r}")
    events = [line[6:] for line in payload.split(b"\n") if line.startswith(b"data: {")]
    errors = [m for m in map(_error_message, events if status < 400 else [payload]) if m is not None]
    if status < 400 and not errors:
        return
    message = errors[0] if errors else None
    if not isinstance(message, str) or len(message.splitlines()) != 1 or not message.strip():
        print(f"{tool}: HTTP {status} without a one-line error message:\n{payload[:500]!r}", file=sys.stderr)
        sys.exit(2)
    if status < 400 and server != "serve":
        return  # the tokenizer server's {"error": "Invalid uid"} comes with 200, as the vendor's
    print(f"{tool}: error: HTTP {status}: {message}", file=sys.stderr)
    sys.exit(1)


def tokenizer_uid_main() -> None:
    _request_main("tokenizer-uid")


def tokenizer_plain_main() -> None:
    _request_main("tokenizer-plain")


def serve_main() -> None:
    _request_main("serve")


ENTRY_POINTS = {
    tool: f"axc.tools.{tool.replace('-', '_')}:main" for tool in ("axc-translate", "axc-opt", "axc-run", "axc-llm-build")
}
PIPELINE = "specialize-groups{kv-cache-len=15 prefill-len=8}"
DECODE_INPUTS = tuple(f"--input={n}=inputs/{n}.npy" for n in ("K_cache", "V_cache", "indices", "input", "mask"))

READERS: dict[str, Reader] = {
    r.name: r
    for r in (
        Reader("config", "axc-translate", "model/config.json", ("--import-hf", "model", "-o", "out.mlir"), edit_json),
        Reader(
            "model-config", "axc-translate", "vendor.json",
            ("--import-hf", "model", "--model-config", "vendor.json", "-o", "out.mlir"), edit_json,
        ),
        Reader(
            "safetensors-header", "axc-translate", "model/model.safetensors",
            ("--import-hf", "model", "-o", "out.mlir"), edit_safetensors,
        ),
        Reader(
            "safetensors-data", "axc-run", "model/model.safetensors",
            ("params.mlir", "--func", "params", "--output-dir", "out"), partial(edit_safetensors, focus="any"),
        ),
        Reader("bin", "axc-translate", "model-bin/pytorch_model.bin", ("--import-hf", "model-bin", "-o", "out.mlir"), edit_pickle_zip),
        Reader(
            "bin-legacy", "axc-translate", "model-legacy/pytorch_model.bin",
            ("--import-hf", "model-legacy", "-o", "out.mlir"), edit_bytes,
        ),
        Reader("ir", "axc-opt", "tiny.mlir", ("tiny.mlir", "-p", PIPELINE, "-o", "out.mlir"), edit_ir),
        Reader(
            "axmodel-import", "axc-translate", "layer.axmodel",
            ("--import-axmodel", "layer.axmodel", "-o", "out.mlir"), edit_axmodel,
        ),
        Reader(
            "axmodel-sim", "axc-run", "layer.axmodel",
            ("layer.axmodel", "--group", "0", *DECODE_INPUTS, "--output-dir", "out"), edit_axmodel,
        ),
        *(
            Reader(server, tool, f"{server}.http", (), partial(edit_request, server=server), outputs=(),
                   entry=f"axc.tools.axc_fuzz:{server.replace('-', '_')}_main")
            for server, tool in SERVERS.items()
        ),
    )
}


def make_corpus(directory: Path, model: Path = FIXTURE) -> Path:
    """The seed inputs of every reader, from a one-layer cut of the tiny checkpoint `model`
    (one layer keeps trials fast; the readers see the same structure)."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    from axc.atomic import write_text
    from axc.frontend.config import VENDOR_KEYS, load_config
    from axc.dialects.axc import set_module_scopes
    from axc.frontend.hf_import import MODEL_SCOPE, import_hf
    from axc.textio import module_text

    for sub in ("model", "model-bin", "model-legacy", "inputs"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    raw = json.loads((model / "config.json").read_text())
    raw["num_hidden_layers"] = 1
    raw.pop("layer_types", None)
    for sub in ("model", "model-bin", "model-legacy"):
        (directory / sub / "config.json").write_text(json.dumps(raw, indent=2))
    tensors = {k: v for k, v in load_file(model / "model.safetensors").items() if ".layers." not in k or ".layers.0." in k}
    save_file(tensors, directory / "model" / "model.safetensors", metadata={"format": "pt"})
    torch.save(tensors, directory / "model-bin" / "pytorch_model.bin")
    torch.save(tensors, directory / "model-legacy" / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    config = load_config(directory / "model")
    canonical = {v: k for k, v in VENDOR_KEYS.items() if k != "max_position_embedings"}
    vendor = {key: getattr(config, name) for name, key in canonical.items() if hasattr(config, name)}
    (directory / "vendor.json").write_text(json.dumps(vendor, indent=1))
    module = import_hf(directory / "model")
    set_module_scopes(module, {MODEL_SCOPE: "model"})  # relative: a copy of the corpus reads its own
    write_text(module_text(module), directory / "tiny.mlir")
    write_text(module_text(_params_module(module)), directory / "params.mlir")
    kv_dim, hidden, history = config.kv_dim, config.hidden_size, 15
    for name, value in {
        "K_cache": np.zeros((1, history, kv_dim), np.float32),
        "V_cache": np.zeros((1, history, kv_dim), np.float32),
        "indices": np.zeros((1, 1), np.uint32),
        "input": np.ones((1, 1, hidden), np.float32),
        "mask": np.zeros((1, 1, history + 1), np.float32),
    }.items():
        np.save(directory / "inputs" / f"{name}.npy", value)
    _build_layer(directory)
    _build_demo(directory)
    for reader in READERS.values():
        (directory / SEEDS / reader.target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(directory / reader.target, directory / SEEDS / reader.target)
    (directory / SEEDS / "version").write_text(CORPUS_VERSION)
    return directory


def _params_module(module: ModuleOp) -> ModuleOp:
    """One function, `@params`, returning every parameter of `module`: the least IR to parse
    for reading all of a checkpoint's tensor data."""
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.ir import Block, Region

    from axc.dialects.axc import ParamOp, module_scopes, set_module_scopes

    types = {op.param: op.result.type for op in module.walk() if isinstance(op, ParamOp)}
    params = [ParamOp(param, kind) for param, kind in types.items()]
    body = Block([*params, func.ReturnOp(*(op.result for op in params))])
    result = ModuleOp([func.FuncOp("params", ((), list(types.values())), Region(body))])
    set_module_scopes(result, module_scopes(module))
    return result


def _build_layer(directory: Path) -> None:
    """Layer 0 of the tiny model built for AX650 (decode group only): the `.axmodel` seed."""
    argv = ("--input_path", "model", "--output_path", "built", "--kv_cache_len", "15", "--chip", "AX650")
    code, stderr, _ = _run_tool("axc-llm-build", argv, directory)
    if code:
        raise RuntimeError(f"building the .axmodel seed failed: {stderr}")
    (layer,) = (directory / "built").glob("*_l0_together.axmodel")
    shutil.copyfile(layer, directory / "layer.axmodel")
    shutil.rmtree(directory / "built")


def _build_demo(directory: Path) -> None:
    """The demo model (it adds) built for AX650: what the HTTP servers serve."""
    argv = ("--input_path", str(DEMO), "--output_path", "built-demo", "--kv_cache_len", "15", "--prefill_len", "8")
    code, stderr, _ = _run_tool("axc-llm-build", argv, directory)
    if code:
        raise RuntimeError(f"building the demo model failed: {stderr}")
    for server, requests in REQUESTS.items():
        (directory / f"{server}.http").write_bytes(request_text(*requests[0]))


def _run_tool(tool: str, argv: tuple[str, ...], cwd: Path, main: Callable[[], object] | None = None) -> tuple[int, str, str]:
    """Run a tool's entry point in-process in `cwd`: its exit code, captured stderr and stdout."""
    main = main or Reader("", tool, "", (), edit_bytes).main()
    stderr, stdout = io.StringIO(), io.StringIO()
    here = Path.cwd()
    saved_argv = sys.argv
    sys.argv = [tool, *argv]
    os.chdir(cwd)
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        os.chdir(here)
        sys.argv = saved_argv
    return code, stderr.getvalue(), stdout.getvalue()


TRACEBACK = "Traceback (most recent call last)"


def classify(tool: str, code: int, stderr: str, stdout: str = "", left: tuple[str, ...] = ()) -> str:
    """`ok` (exit 0), `refused` (exit 1, the one stderr line `tool: error: <message>` and no
    output `left`) or a finding: `traceback` (printed anywhere, whatever the exit code) or
    `bad-error` (another exit code, no message, more lines - `\r`, `\v`, `\x1c`, `\u2028`...
    break lines too - or output left behind)."""
    if TRACEBACK in stderr or TRACEBACK in stdout:
        return "traceback"
    if code == 0:
        return "ok"
    lines, prefix = stderr.splitlines(), f"{tool}: error: "
    if code == 1 and len(lines) == 1 and lines[0].startswith(prefix) and lines[0][len(prefix) :].strip() and not left:
        return "refused"
    return "bad-error"


SEEDS = ".seeds"
"""The corpus keeps a pristine copy of every reader's file here; trials run in the corpus."""
CORPUS_VERSION = "5"
"""Bumped when the corpus changes (or the IR it holds), so a kept --work corpus is rebuilt."""


def trial_input(reader: Reader, corpus: Path, seed: int, trial: int) -> bytes:
    rng = random.Random(f"{seed}/{reader.name}/{trial}")
    return reader.mutate((corpus / SEEDS / reader.target).read_bytes(), rng)


def restore(reader: Reader, corpus: Path) -> None:
    """Put the reader's seed file back and remove what the tool wrote."""
    shutil.copyfile(corpus / SEEDS / reader.target, corpus / reader.target)
    for path in written(reader, corpus):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def written(reader: Reader, corpus: Path) -> list[Path]:
    """The reader's outputs in the corpus, and temporaries beside them (`.out.mlir.*`)."""
    found = [corpus / name for name in reader.outputs if (corpus / name).exists()]
    return found + [path for name in reader.outputs for path in corpus.glob(f".{name}.*")]


def run_trial(reader: Reader, data: bytes, corpus: Path) -> tuple[str, str]:
    """Run the tool with `data` as the reader's file in the corpus: (outcome, detail)."""
    (corpus / reader.target).write_bytes(data)
    try:
        code, stderr, stdout = _run_tool(reader.tool, reader.argv, corpus, reader.main())
        left = tuple(path.name for path in written(reader, corpus)) if code else ()
        outcome = classify(reader.tool, code, stderr, stdout, left)
        detail = stderr.strip() + (f"\n(stdout:)\n{stdout.strip()}" if TRACEBACK in stdout else "")
        detail += f"\n(refused, but left {', '.join(left)})" if left else ""
    except Exception:  # noqa: BLE001 - any escape from the entry point is the finding
        outcome, detail = "traceback", traceback.format_exc()
    finally:
        restore(reader, corpus)
    return outcome, detail


# --- the worker and the driver -----------------------------------------------------------------


def _worker(conn: Connection, plan: list[tuple[Reader, int, int]], seed: int, corpus: Path) -> None:
    """Run trials `start..end` of each reader in `plan`, reporting each start and result."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    for reader, _, _ in plan:  # load what the tools import lazily before the clock runs
        outcome, detail = run_trial(reader, (corpus / SEEDS / reader.target).read_bytes(), corpus)
        if outcome != "ok":
            raise RuntimeError(f"the seed of reader {reader.name} is not accepted ({outcome}): {detail}")
    conn.send(("ready",))
    for reader, start, end in plan:
        for trial in range(start, end):
            data = trial_input(reader, corpus, seed, trial)
            conn.send(("start", reader.name, trial))
            outcome, detail = run_trial(reader, data, corpus)
            conn.send(("done", reader.name, trial, outcome, detail if outcome in FINDINGS else ""))
    conn.send(("finished",))


@dataclass
class Report:
    """Outcome counts per reader, findings kept for saving, wall time per reader."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    findings: list[tuple[str, int, str, str]] = field(default_factory=list)

    def findings_of(self, reader: str) -> int:
        return sum(self.counts.get(reader, Counter())[kind] for kind in FINDINGS)

    def lines(self) -> list[str]:
        kinds = ("ok", "refused", *FINDINGS)
        rows = [f"{'reader':<20}" + "".join(f"{k:>11}" for k in kinds) + f"{'wall s':>9}"]
        for name, counts in self.counts.items():
            rows.append(f"{name:<20}" + "".join(f"{counts[k]:>11}" for k in kinds) + f"{self.seconds[name]:>9.1f}")
        return rows


def _save(findings_dir: Path, reader: Reader, trial: int, outcome: str, detail: str, data: bytes, seed: int) -> Path:
    directory = findings_dir / reader.name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{seed}-{trial}{Path(reader.target).suffix}"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(
        f"reader {reader.name}, seed {seed}, trial {trial}: {outcome}\n"
        f"replay: axc-fuzz --replay {path} --reader {reader.name}\n"
        f"command (in a corpus copy, with this file as {reader.target}): {reader.tool} {' '.join(reader.argv)}\n\n{detail}\n"
    )
    return path


def prepare(work: Path) -> Path:
    """The corpus of `READERS` under `work`, built once and then reused."""
    corpus = work / "corpus"
    version = corpus / SEEDS / "version"
    if not version.is_file() or version.read_text() != CORPUS_VERSION:
        make_corpus(corpus)
    for reader in READERS.values():
        restore(reader, corpus)
    return corpus


PROGRESS_EVERY = 1000
"""Trials between progress lines, so a stopped run still tells its counts so far."""


def fuzz(
    readers: list[Reader], trials: int, corpus: Path, seed: int = 0, limit: float = 10.0,
    findings_dir: Path | None = None, progress: Callable[[str], None] | None = None,
) -> Report:
    """Run `trials` trials of each reader in a worker process (in `corpus`, which holds every
    reader's file and its seed under `.seeds/`); on a hang or a crash, kill the worker and
    start another at the next trial."""
    report = Report()
    by_name = {reader.name: reader for reader in readers}
    context = multiprocessing.get_context("spawn")
    done = dict.fromkeys(by_name, 0)
    for name in by_name:
        report.counts[name] = Counter()
        report.seconds[name] = 0.0
    while any(n < trials for n in done.values()):
        plan = [(by_name[name], n, trials) for name, n in done.items() if n < trials]
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=_worker, args=(send, plan, seed, corpus), daemon=True)
        worker.start()
        send.close()
        current: tuple[str, int] | None = None
        clock, ready = time.perf_counter(), False
        while True:
            kind, message = "", None
            if not receive.poll(limit if ready else 600.0):
                kind = "hang"
            else:
                try:
                    message = receive.recv()
                except EOFError:
                    kind = "crash"
            if message is not None and message[0] == "finished":
                worker.join()
                break
            if message is not None and message[0] == "ready":
                clock, ready = time.perf_counter(), True
                continue
            if message is not None and message[0] == "start":
                current = (message[1], message[2])
                continue
            if message is not None:
                _, name, trial, kind, detail = message
            else:
                worker.kill()
                worker.join()
                if current is None:
                    raise RuntimeError(f"the fuzz worker failed before its first trial ({kind})")
                name, trial = current
                detail = f"killed after {limit} s" if kind == "hang" else f"worker died (exit {worker.exitcode})"
                restore(by_name[name], corpus)
            report.seconds[name] += time.perf_counter() - clock
            clock = time.perf_counter()
            _record(report, by_name[name], trial, kind, detail, seed, corpus, findings_dir)
            done[name], current = trial + 1, None
            if progress is not None and (done[name] == trials or done[name] % PROGRESS_EVERY == 0):
                progress(f"{name}: {done[name]}/{trials} trials {dict(report.counts[name])} in {report.seconds[name]:.1f} s")
            if message is None:
                break
        receive.close()
    return report


def _record(
    report: Report, reader: Reader, trial: int, kind: str, detail: str, seed: int, corpus: Path,
    findings_dir: Path | None,
) -> None:
    report.counts[reader.name][kind] += 1
    if kind in FINDINGS:
        report.findings.append((reader.name, trial, kind, detail))
        if findings_dir is not None:
            _save(findings_dir, reader, trial, kind, detail, trial_input(reader, corpus, seed, trial), seed)




def parser() -> ArgumentParser:
    p = ArgumentParser(prog="axc-fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--reader", action="append", choices=list(READERS), help="a reader to fuzz (default: all); repeatable")
    p.add_argument("--trials", type=int, default=1000, help="trials per reader (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    p.add_argument("--limit", type=float, default=10.0, help="seconds a trial may take before it is a hang (default 10)")
    p.add_argument("--findings", type=Path, default=Path("fuzz-findings"), help="where failing inputs go (default fuzz-findings/)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes, each fuzzing a share of the readers (default 1)")
    p.add_argument("--work", type=Path, help="keep the seed corpus here and reuse it")
    p.add_argument("--replay", type=Path, metavar="FILE", help="rerun one saved input (needs --reader, or its folder's name)")
    return p


def main() -> None:
    args = parser().parse_args()
    with tempfile.TemporaryDirectory(prefix="axc-fuzz-") as tmp:
        corpus = prepare(args.work or Path(tmp))
        if args.replay is not None:
            name = (args.reader or [args.replay.parent.name])[0]
            if name not in READERS:
                parser().error(f"pass --reader for {args.replay} (one of {', '.join(READERS)})")
            outcome, detail = run_trial(READERS[name], args.replay.read_bytes(), corpus)
            print(f"{name}: {outcome}\n{detail}")
            sys.exit(2 if outcome in FINDINGS else 0)
        readers = [READERS[name] for name in args.reader or READERS]
        start = time.perf_counter()
        shares = [readers[k :: args.jobs] for k in range(min(max(args.jobs, 1), len(readers)))]
        copies = [corpus] + [Path(shutil.copytree(corpus, corpus.with_name(f"corpus-{k}"), dirs_exist_ok=True))
                             for k in range(1, len(shares))]  # readers of one file must not share it
        show = partial(print, flush=True)  # progress lines survive a run that is stopped
        with ThreadPoolExecutor(len(shares)) as pool:  # each thread only waits on its worker
            reports = list(pool.map(
                lambda share, copy: fuzz(share, args.trials, copy, args.seed, args.limit, args.findings, progress=show),
                shares, copies,
            ))
        report = Report(findings=sum((part.findings for part in reports), []))
        for reader, part in ((r, next(p for p in reports if r.name in p.counts)) for r in readers):
            report.counts[reader.name], report.seconds[reader.name] = part.counts[reader.name], part.seconds[reader.name]
    print("\n".join(report.lines()))
    total = sum(report.findings_of(reader.name) for reader in readers)
    saved = f", saved under {args.findings}/" if total else ""
    print(f"{args.trials} trials per reader, seed {args.seed}, {time.perf_counter() - start:.1f} s: {total} findings{saved}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
