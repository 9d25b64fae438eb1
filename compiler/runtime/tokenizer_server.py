"""The board runtime's tokenizer HTTP server (both protocols) as a Starlette app.

Plain: `GET /bos_id`, `GET /eos_id`, `POST /encode {text, img_prompt?}` → `{token_ids}`,
`POST /decode {token_ids}` → `{text}`. Uid: `GET /get_uid` → `{uid}`, `GET
/bos_id?uid=`, `GET /eos_id?uid=`, `POST /encode {uid, text, last_reply?}` →
`{token_ids, diff}`, `POST /decode {uid, token_ids}` → `{text}`, `POST /reset {uid,
system_prompt?}` → `{token_ids}`. An unknown uid answers `{"error": "Invalid uid"}` (status
200, as the vendor's script); a malformed request `{"error": "..."}` with 400/404/413.

```python
app = tokenizer_app(ChatTokenizer.load(Path("out/qwen2")), "uid", system_prompt=None)
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from axc.errors import AxcError
from axc.runtime.http import RequestError, read_json
from axc.runtime.tokenizer import ChatTokenizer
from axc.runtime.tokenizer_service import INVALID_UID, PlainService, UidService, UnknownUid

PROTOCOLS = ("uid", "plain")
MAX_IDS = 1 << 16
Handler = Callable[[Request], Awaitable[Any]]


def field(data: Any, name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    if not isinstance(data, dict):
        raise RequestError(400, "request body must be a JSON object")
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise RequestError(400, f"{name}: missing or not a {getattr(kind, '__name__', 'value')}")
    return value


def token_ids(data: Any) -> list[int]:
    ids = field(data, "token_ids", list)
    if len(ids) > MAX_IDS or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
        raise RequestError(400, f"token_ids must be a list of at most {MAX_IDS} integers")
    return ids


def endpoint(handler: Callable[[Request], Awaitable[dict[str, Any]]]) -> Handler:
    async def run(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await handler(request))
        except UnknownUid:
            return JSONResponse({"error": INVALID_UID})
        except RequestError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        except AxcError as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    return run


def tokenizer_app(tokenizer: ChatTokenizer, protocol: str, system_prompt: str | None = None) -> Starlette:
    """The tokenizer server of `protocol` ('uid' or 'plain')."""
    routes: list[Route]
    if protocol == "plain":
        plain = PlainService(tokenizer, system_prompt)

        async def encode(request: Request) -> dict[str, Any]:
            data = await read_json(request)
            img = field(data, "img_prompt", bool, optional=True)
            return {"token_ids": plain.encode(field(data, "text", str), bool(img))}

        async def decode(request: Request) -> dict[str, Any]:
            return {"text": plain.decode(token_ids(await read_json(request)))}

        async def bos(request: Request) -> dict[str, Any]:
            return {"bos_id": tokenizer.bos_id}

        async def eos(request: Request) -> dict[str, Any]:
            return {"eos_id": tokenizer.eos_id}

        routes = [
            Route("/bos_id", endpoint(bos), methods=["GET"]),
            Route("/eos_id", endpoint(eos), methods=["GET"]),
            Route("/encode", endpoint(encode), methods=["POST"]),
            Route("/decode", endpoint(decode), methods=["POST"]),
        ]
    elif protocol == "uid":
        sessions = UidService(tokenizer, system_prompt)

        async def get_uid(request: Request) -> dict[str, Any]:
            return {"uid": sessions.new_uid()}

        async def uid_bos(request: Request) -> dict[str, Any]:
            sessions.session(request.query_params.get("uid"))
            return {"bos_id": tokenizer.bos_id}

        async def uid_eos(request: Request) -> dict[str, Any]:
            sessions.session(request.query_params.get("uid"))
            return {"eos_id": tokenizer.eos_id}

        async def uid_encode(request: Request) -> dict[str, Any]:
            data = await read_json(request)
            uid = field(data, "uid", str)
            sessions.session(uid)
            ids, diff = sessions.encode(uid, field(data, "text", str), field(data, "last_reply", str, optional=True))
            return {"token_ids": ids, "diff": diff}

        async def uid_decode(request: Request) -> dict[str, Any]:
            data = await read_json(request)
            uid = field(data, "uid", str)
            sessions.session(uid)
            return {"text": sessions.decode(uid, token_ids(data))}

        async def uid_reset(request: Request) -> dict[str, Any]:
            data = await read_json(request)
            uid = field(data, "uid", str)
            sessions.session(uid)
            return {"token_ids": sessions.reset(uid, field(data, "system_prompt", str, optional=True))}

        routes = [
            Route("/get_uid", endpoint(get_uid), methods=["GET"]),
            Route("/bos_id", endpoint(uid_bos), methods=["GET"]),
            Route("/eos_id", endpoint(uid_eos), methods=["GET"]),
            Route("/encode", endpoint(uid_encode), methods=["POST"]),
            Route("/decode", endpoint(uid_decode), methods=["POST"]),
            Route("/reset", endpoint(uid_reset), methods=["POST"]),
        ]
    else:
        raise AxcError(f"--protocol {protocol}: expected one of {', '.join(PROTOCOLS)}")

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return JSONResponse({"error": f"Invalid {request.method} endpoint"}, status_code=status)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse({"error": f"internal error: {first}"}, status_code=500)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: server_error})
