"""An OpenAI-compatible chat server over a built directory (as `axllm serve`), a Starlette app.

`GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (`messages`, `stream` as
server-sent events in OpenAI's chunk format, `max_tokens`, `temperature`, `top_p`, `stop`,
`seed`; usage counts). The model runs one request at a time, as on the board; up to
`queue_size` more wait, beyond that 429. A streaming client that disconnects frees the
model after the step in flight. Errors are OpenAI's JSON `{"error": {message, type, param,
code}}`: 400 bad JSON or fields, 404 unknown path or model, 413 body over the bound, 429
queue full.

```python
app = openai_app(Model.load(Path("out/qwen2")), ServeOptions(queue_size=4))
```
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from axc.errors import AxcError
from axc.runtime.chat import TextGeneration, generate
from axc.runtime.engine import ContextFull, Engine, describe_json
from axc.runtime.http import MAX_BODY_BYTES, RequestError, read_json
from axc.runtime.sampling import POST_CONFIG, PostConfig, Sampler
from axc.runtime.tokenizer import ChatTokenizer, Message, check_messages

MAX_STOPS = 4
MAX_SEED = 2**63 - 1
ERROR_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error", 500: "server_error"}


@dataclass(frozen=True)
class ServeOptions:
    queue_size: int = 4
    """Requests that may wait while one runs; more get 429."""
    max_body_bytes: int = MAX_BODY_BYTES


@dataclass
class Model:
    """What the server runs: engine, tokenizer, the directory's sampling settings."""

    engine: Engine
    tokenizer: ChatTokenizer
    post: PostConfig
    name: str

    @classmethod
    def load(cls, directory: Path, name: str | None = None) -> Model:
        engine = Engine(directory)
        tokenizer = ChatTokenizer.load(directory)
        post = PostConfig.load(directory / POST_CONFIG)
        return cls(engine, tokenizer, post, name or model_name(directory))


def model_name(directory: Path) -> str:
    try:
        name = json.loads((directory / "config.json").read_text()).get("model_name")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else directory.resolve().name


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    include_usage: bool = False


def bad(message: str, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, message, code, param)


def number(data: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise bad(f"{name} must be a number in [{low}, {high}]", name)
    return float(value)


def integer(data: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad(f"{name} must be an integer in [{low}, {high}]", name)
    return value


def parse_request(data: Any, model: Model) -> ChatRequest:
    """The fields of a chat completion request this server honours (400 on bad ones)."""
    if not isinstance(data, dict):
        raise bad("request body must be a JSON object")
    name = data.get("model")
    if name is not None and name != model.name:
        raise RequestError(404, f"The model '{str(name)[:80]}' does not exist (this server runs '{model.name}')", "model_not_found", "model")
    try:
        messages = check_messages(data.get("messages"))
    except AxcError as error:
        raise bad(str(error), "messages") from None
    stream = data.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad("stream must be a boolean", "stream")
    integer(data, "n", 1, 1)  # one choice only
    limit = model.engine.layout.kv_cache_len
    max_tokens = integer(data, "max_tokens", 1, 1 << 30)
    if max_tokens is None:
        max_tokens = integer(data, "max_completion_tokens", 1, 1 << 30)
    stop = data.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(s, str) and 0 < len(s) <= 256 for s in stops):
        raise bad(f"stop must be a string or a list of at most {MAX_STOPS} non-empty strings", "stop")
    options = data.get("stream_options")
    if options is not None and not (isinstance(options, dict) and isinstance(options.get("include_usage", False), bool)):
        raise bad("stream_options must be an object with a boolean include_usage", "stream_options")
    return ChatRequest(
        messages=messages,
        stream=bool(stream),
        max_tokens=min(max_tokens, limit) if max_tokens is not None else None,
        temperature=number(data, "temperature", 0.0, 2.0),
        top_p=number(data, "top_p", 0.0, 1.0),
        stop=stops,
        seed=integer(data, "seed", 0, MAX_SEED),  # numpy seeds are non-negative
        include_usage=bool(options and options.get("include_usage")),
    )


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 429 else None
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


@dataclass
class Slot:
    """One request on the model at a time, at most `queue_size` waiting."""

    queue_size: int
    admitted: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def admit(self) -> None:
        if self.admitted > self.queue_size:
            raise RequestError(429, f"the model is busy and {self.queue_size} requests are waiting; retry later", "rate_limit_exceeded")
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    @property
    def busy(self) -> bool:
        return self.lock.locked()


class ReleasingStream(StreamingResponse):
    """A stream that gives the model back however the response ends (also before the
    body is iterated, when the client is gone early)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def openai_app(model: Model, options: ServeOptions = ServeOptions()) -> Starlette:
    slot = Slot(options.queue_size)
    created = int(time.time())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model.name, "busy": slot.busy, "waiting": max(0, slot.admitted - 1)})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": model.name, "object": "model", "created": created, "owned_by": "axc"}]})

    def start(req: ChatRequest) -> TextGeneration:
        post = model.post.with_request(req.temperature, req.top_p)
        budget = req.max_tokens or model.engine.layout.kv_cache_len
        return generate(model.engine, model.tokenizer, req.messages, Sampler(post, req.seed), budget, req.stop)

    def usage(run: TextGeneration) -> dict[str, Any]:
        s = run.stats
        return {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens, "total_tokens": s.prompt_tokens + s.completion_tokens}

    async def completions(request: Request) -> Response:
        req = parse_request(await read_json(request, options.max_body_bytes), model)
        slot.admit()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slot.lock.release()
                slot.leave()

        try:
            await slot.lock.acquire()
        except BaseException:
            slot.leave()
            raise
        try:
            run = await anyio.to_thread.run_sync(start, req)
        except ContextFull as error:
            release()
            raise bad(str(error), "messages", "context_length_exceeded") from None
        except AxcError as error:
            release()
            raise bad(str(error), "messages") from None
        except BaseException:
            release()
            raise
        ident, stamp = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not req.stream:
            try:
                while await anyio.to_thread.run_sync(run.step) is not None:
                    if await request.is_disconnected():
                        run.generation.finish("abort")
                        break
            except AxcError as error:
                raise bad(str(error), "messages", "context_length_exceeded" if isinstance(error, ContextFull) else None) from None
            finally:
                release()
            return JSONResponse({
                "id": ident, "object": "chat.completion", "created": stamp, "model": model.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": run.text}, "finish_reason": run.stats.finish_reason, "logprobs": None}],
                "usage": usage(run), "axc": describe_json(run.stats, model.engine.figures),
            })

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            return sse({"id": ident, "object": "chat.completion.chunk", "created": stamp, "model": model.name,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

        async def events() -> AsyncIterator[str]:
            try:
                yield chunk({"role": "assistant", "content": ""}, None)
                while (piece := await anyio.to_thread.run_sync(run.step)) is not None:
                    if piece:
                        yield chunk({"content": piece}, None)
                yield chunk({}, run.stats.finish_reason)
                if req.include_usage:
                    yield sse({"id": ident, "object": "chat.completion.chunk", "created": stamp, "model": model.name,
                               "choices": [], "usage": usage(run), "axc": describe_json(run.stats, model.engine.figures)})
                yield "data: [DONE]\n\n"
            except AxcError as error:
                yield sse(error_body(500, str(error)))
            finally:
                release()

        return ReleasingStream(events(), release)

    async def request_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return error_response(exc.status, exc.message, exc.param, exc.code)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = f"no route {request.method} {request.url.path}" if status in (404, 405) else str(exc)
        return error_response(status, message, None, "not_found" if status == 404 else None)

    async def server_error(request: Request, exc: Exception) -> Response:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return error_response(500, f"internal error: {first}")

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ],
        exception_handlers={RequestError: request_error, HTTPException: http_error, Exception: server_error},
    )
