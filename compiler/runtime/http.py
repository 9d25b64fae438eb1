"""What both HTTP servers share: bounded JSON bodies, one-line errors, and running an ASGI
app on uvicorn (in the foreground for the tools, in a thread for tests and benchmarks).

```python
data = await read_json(request)              # RequestError(413 | 400) on a bad body
with ServerThread(app) as server:            # 127.0.0.1, a free port
    httpx.get(server.url + "/health")
```
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from starlette.requests import Request

from axc.errors import AxcError

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted (413 beyond)."""
START_TIMEOUT_S = 30.0


@dataclass
class RequestError(Exception):
    """A bad request, answered with `status` and a one-line `message`."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None

    def __str__(self) -> str:
        return self.message


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body, read at most `limit` bytes far."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise RequestError(413, f"request body over {limit} bytes", "body_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"request body over {limit} bytes", "body_too_large")
    try:
        return json.loads(bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"request body is not valid JSON ({error})", "invalid_json") from None
    except RecursionError:
        raise RequestError(400, "request body is not valid JSON (nested too deeply)", "invalid_json") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), or a one-line error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise AxcError(f"--host {host}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise AxcError(f"cannot listen on {host}:{port} ({error.strerror}); pick another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def server_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)


def serve(app: Any, sock: socket.socket) -> None:
    """Run `app` on the bound socket until interrupted."""
    uvicorn.Server(server_config(app)).run(sockets=[sock])


class ServerThread:
    """`app` served by uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, app: Any, host: str = "127.0.0.1"):
        self.sock = bind(host, 0)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(server_config(app))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(START_TIMEOUT_S)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
